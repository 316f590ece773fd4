"""`python -m runas_podman` is `runas-podman`."""

from runas_podman.entry import runas_podman

runas_podman()
