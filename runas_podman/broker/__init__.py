"""The root broker of `runas`: its wire protocol (protocol), the client side (client),
the socket-activated server that authenticates and authorizes each request (server),
its caches (authcache), and `broker --listen` for supervisors other than systemd
(listen). `python -m runas_podman.broker` serves one connection (__main__).
May import: run, bus, host, core.
"""
