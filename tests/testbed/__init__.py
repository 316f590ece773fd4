"""The real systemd + podman testbed (see testbed.py and docs/testbed.md)."""
