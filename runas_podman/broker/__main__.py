"""`python -m runas_podman.broker`: one connection of runas-broker.socket (server.main)."""

from runas_podman.broker.server import main

main()
