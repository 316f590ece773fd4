"""`python -m runas_podman` is `runas-podman`."""

from .entry import runas_podman

runas_podman()
