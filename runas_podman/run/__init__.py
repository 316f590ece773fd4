"""A plan run to its end: the launch (launcher: lifeline, start, wait, outcome), the
session around it (session: bus, polkit agent, pty), the pty forwarder, the fd relay for
old systemd, signals, pkttyagent, the native backend without systemd (native), and a
runas request resolved on this host (resolve).
May import: bus, host, core.
"""
