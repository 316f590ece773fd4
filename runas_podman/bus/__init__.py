"""The D-Bus peers: systemd's manager (systemd_bus), a user's own manager reached as
that user (user_bus), polkit's Authority (polkit).
May import: host, core.
"""
