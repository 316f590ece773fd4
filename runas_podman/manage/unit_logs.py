"""`runas-podman logs -u USER UNIT`: the journal of a unit that runs as USER, on either
manager, read by fields (works for root and any uid, where `journalctl --user -M USER@`
does not: "No machine 'USER@' known" as root).

A unit of USER's own manager logs with _SYSTEMD_USER_UNIT= (its processes) and USER_UNIT=
(the manager's lines about it); a unit of the system manager with User=USER, with
_SYSTEMD_UNIT= and UNIT= (PID 1's lines). Each term is held to USER's uid, or PID 1's.
"""

from __future__ import annotations

import os
import subprocess

from runas_podman.core.errors import RunasError
from runas_podman.core.model import ServiceUser
from runas_podman.core.unit import UNIT_TYPES


def is_unit_name(name: str) -> bool:
    """NAME.service, NAME.timer, ...: a unit; anything else is a container's name."""
    _stem, dot, suffix = name.rpartition(".")
    return bool(dot) and suffix in UNIT_TYPES


def journal_argv(user: ServiceUser, unit: str, follow: bool, lines: int | None) -> list[str]:
    uid = f"_UID={user.uid}"
    matches = [f"_SYSTEMD_USER_UNIT={unit}", uid, "+", f"USER_UNIT={unit}", uid,
               "+", f"_SYSTEMD_UNIT={unit}", uid, "+", f"UNIT={unit}", "_PID=1"]  # fmt: skip
    options = ["--no-pager", *(["--follow"] if follow else [])]
    if lines is not None:
        options.append(f"--lines={lines}")
    return ["journalctl", *options, *matches]


def show(user: ServiceUser, unit: str, follow: bool, lines: int | None) -> int:
    """Run journalctl for the unit on this process's stdio; its status."""
    if os.geteuid() not in (0, user.uid):
        raise RunasError(
            f"only root or {user.name} may read {user.name}'s journal: run this as root"
        )
    from runas_podman.host import lookup

    argv = journal_argv(user, unit, follow, lines)
    argv[0] = lookup.executable("journalctl", "systemd")
    return subprocess.run(argv, check=False, stdin=subprocess.DEVNULL).returncode
