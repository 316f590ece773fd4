"""runas-podman: run podman (or any command) as a service user through systemd."""

__version__ = "0.1.0"

# The root-only launch server's socket (cli.server): both ends of its wire name it here,
# where the console scripts' fast path finds it without importing anything else.
LAUNCH_SOCKET = "/run/runas-podman-launch.sock"
