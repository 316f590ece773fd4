"""Which backend runs a plan: systemd (D-Bus) where it is PID 1, else the native one.

Small on purpose: every launch asks, and the native backend (native.py: ctypes, libpam)
and its decisions (native_plan.py) load only when it is chosen.
"""

from __future__ import annotations

import os

SYSTEMD_RUNTIME = "/run/systemd/system"


def systemd_running() -> bool:
    """As sd_booted(): systemd is PID 1 when /run/systemd/system is a directory."""
    import stat

    try:
        return stat.S_ISDIR(os.lstat(SYSTEMD_RUNTIME).st_mode)
    except OSError:
        return False


def choose_backend(requested: str | None, systemd_runs: bool) -> tuple[str, str | None]:
    """(backend, note): the one asked for, else native where systemd is not PID 1, with a
    one-line note saying so."""
    if requested not in (None, "auto"):
        return str(requested), None
    if systemd_runs:
        return "dbus", None
    return "native", (
        "systemd is not PID 1 here (no /run/systemd/system): running the command natively "
        "(--backend native)"
    )
