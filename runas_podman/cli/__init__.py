"""The Click layer: declares options, converts them, calls below. `runas-podman`
(runas_podman, with the service-user commands of manage), `runas` (runas), and running a
command with one-line errors and documented statuses (common).
May import: everything below. Nothing below imports cli.
"""
