"""runas-podman: run podman (or any command) as a service user through systemd."""

__version__ = "0.1.0"
