"""`python -m runas_podman` is `runas-podman`."""

from .cli import main

main()
