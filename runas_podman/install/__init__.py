"""What `runas-podman install` writes on the host: the PAM file, the broker's units, the
polkit action, man pages and completions of the Click commands it is handed (install),
and the completion scripts and their lookups (completion).
May import: manage, broker, run, bus, host, core; never cli (it is handed the commands).
"""
