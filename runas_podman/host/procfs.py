"""What /proc says about a process: its stat fields, its start time, its cgroup path,
the logind session and the slice that path puts it in. The one reader of /proc/PID/stat
and /proc/PID/cgroup (polkit's subject, the broker's caller, --slice-inherit)."""

from __future__ import annotations

import re

from runas_podman.core.errors import RunasError

SESSION_SCOPE = re.compile(r"session-([A-Za-z0-9]+)\.scope")


def stat_fields(pid: int) -> list[bytes]:
    """/proc/PID/stat from field 3 (state) on: [0] is field 3, [3] session (6), [4]
    tty_nr (7), [19] starttime (22). OSError when the process is gone."""
    with open(f"/proc/{pid}/stat", "rb") as stat:
        text = stat.read()
    # The command name (field 2) is in parentheses and may hold spaces and ')'.
    return text[text.rindex(b")") + 2 :].split()


def process_start_time(pid: int) -> int:
    """Field 22 of /proc/PID/stat (clock ticks since boot), as polkit reads it."""
    try:
        return int(stat_fields(pid)[19])
    except OSError:
        raise RunasError(f"process {pid} is gone: it cannot be authorized") from None


def systemd_cgroup_path(text: str) -> str | None:
    """The path of a /proc/PID/cgroup text in systemd's hierarchy: cgroup2's line first
    (a container on a host with v1 hierarchies also shows a stale name=systemd line, "/";
    a hybrid host keeps both in step), else the name=systemd line of the v1 layout."""
    paths: dict[str, str] = {}
    for line in text.splitlines():
        _id, controllers, path = line.split(":", 2)
        paths.setdefault(controllers, path)
    return next((p for p in (paths.get(""), paths.get("name=systemd")) if p and p != "/"), None)


def cgroup_path(pid: int | str) -> str | None:
    try:
        with open(f"/proc/{pid}/cgroup") as cgroup:
            return systemd_cgroup_path(cgroup.read())
    except OSError:
        return None


def session_from_cgroup(text: str) -> str | None:
    """The logind session of a /proc/PID/cgroup text, as logind finds it: the first unit
    of the path after the slices must be session-ID.scope. (A user may make a scope of
    that name deeper down, inside its own user@UID.service: that is no session.)"""
    path = systemd_cgroup_path(text)
    if path is None:
        return None
    unit = next((part for part in path.split("/") if part and not part.endswith(".slice")), "")
    match = SESSION_SCOPE.fullmatch(unit)
    return match.group(1) if match else None


def session_of(pid: int | str) -> str | None:
    """The logind session PID is in (session_from_cgroup), or None."""
    try:
        with open(f"/proc/{pid}/cgroup") as cgroup:
            return session_from_cgroup(cgroup.read())
    except OSError:
        return None


def slice_of(pid: int | str) -> str | None:
    """The innermost slice a process runs in (for --slice-inherit), or None."""
    path = cgroup_path(pid)
    slices = [part for part in (path or "").split("/") if part.endswith(".slice")]
    return slices[-1] if slices else None
