"""Look-ups on the local system that the plan needs: users and executables."""

from __future__ import annotations

import grp
import os
import pwd

from .errors import EXIT_NOT_FOUND, RunasError
from .plan import ServiceUser, resolve_executable


def service_user(name_or_uid: str) -> ServiceUser:
    try:
        numeric = name_or_uid.isascii() and name_or_uid.isdigit()
        entry = pwd.getpwuid(int(name_or_uid)) if numeric else pwd.getpwnam(name_or_uid)
    except (KeyError, OverflowError):
        raise RunasError(
            f"unknown user '{name_or_uid}': create it first "
            f"(e.g. useradd --system --create-home {name_or_uid})"
        ) from None
    try:
        group = grp.getgrgid(entry.pw_gid).gr_name
    except KeyError:
        group = str(entry.pw_gid)
    shell = entry.pw_shell or "/bin/sh"
    return ServiceUser(entry.pw_name, entry.pw_uid, entry.pw_gid, group, entry.pw_dir, shell)


def is_executable_file(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def executable(name: str, what: str | None = None) -> str:
    """The absolute path the unit will run, or a 127 error naming what to install."""
    path = resolve_executable(name, is_executable_file)
    if path is None:
        hint = f"install it (apt-get install {what})" if what else "give an absolute path"
        raise RunasError(
            f"{name}: command not found in systemd's search path: {hint}", EXIT_NOT_FOUND
        )
    return path


def slice_of(pid: int | str) -> str | None:
    """The slice a process runs in, from /proc/PID/cgroup (v2 or the systemd v1 hierarchy)."""
    try:
        with open(f"/proc/{pid}/cgroup") as cgroup:
            lines = cgroup.read().splitlines()
    except OSError:
        return None
    for line in lines:
        _id, controllers, path = line.split(":", 2)
        if controllers in ("", "name=systemd"):
            slices = [part for part in path.split("/") if part.endswith(".slice")]
            if slices:
                return slices[-1]
    return None
