"""What this machine says: users, groups and executables (lookup), /proc (procfs), paths
root may open for someone (safepath), the distribution's PAM stack and os-release
(hostfiles), hints that fit the host (hints), doing things as a user (privileges), and
whether systemd is PID 1 (backend).
May import: core.
"""
