"""Look-ups on the local system that the plan needs: users and executables."""

from __future__ import annotations

import grp
import os
import pwd
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from runas_podman.core.errors import (
    EXIT_NOT_FOUND,
    RunasError,
    UsageError,
    is_utf8,
    shell_join,
    shown,
)
from runas_podman.core.model import UNIT_SEARCH_PATH, ServiceUser

if TYPE_CHECKING:
    pass


def resolve_executable(
    name: str, is_executable: Callable[[str], bool], search_path: Sequence[str] = UNIT_SEARCH_PATH
) -> str | None:
    """An absolute path for `name` (searched in systemd's fixed path), or None."""
    if "/" in name:
        return name if name.startswith("/") and is_executable(name) else None
    for directory in search_path:
        candidate = f"{directory}/{name}"
        if is_executable(candidate):
            return candidate
    return None


def checked_identity(value: str, what: str) -> str:
    """A -u/-g value as given, refused when it could silently mean something else.

    An empty value must never fall back to a default (`runas -u "$UNSET"` would be root),
    and control characters or stray bytes never name an account on purpose.
    """
    if not value.strip():
        raise UsageError(f"{what} {shown(value)} is empty: give a name or a numeric id")
    if not is_utf8(value) or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise UsageError(
            f"{what} {shown(value)} contains control characters or bytes that are not UTF-8: "
            "give a plain name or a numeric id"
        )
    if value != value.strip():
        raise UsageError(f"{what} {shown(value)} has leading or trailing blanks: remove them")
    return value


def _is_number(text: str) -> bool:
    return text.isascii() and text.isdigit()


def service_user(name_or_uid: str, what: str = "user", setup_hint: bool = True) -> ServiceUser:
    """The account `name_or_uid` names (a numeric value is a uid), or a usage error
    (`setup_hint`: it names the command that makes a service user, as the docs do)."""
    checked_identity(name_or_uid, what)
    numeric = _is_number(name_or_uid)
    try:
        entry = pwd.getpwuid(int(name_or_uid)) if numeric else pwd.getpwnam(name_or_uid)
    except (KeyError, OverflowError, ValueError):
        if numeric:
            raise UsageError(
                f"unknown {what} {shown(name_or_uid)}: no account has uid {name_or_uid}"
            ) from None
        create = shell_join(["runas-podman", "setup", "-u", name_or_uid, "--create"])
        hint = f"create it first: {create}" if setup_hint else "see getent passwd"
        raise UsageError(f"unknown {what} {shown(name_or_uid)}: no such account ({hint})") from None
    try:
        group = grp.getgrgid(entry.pw_gid).gr_name
    except KeyError:
        group = str(entry.pw_gid)
    shell = entry.pw_shell or "/bin/sh"
    return ServiceUser(entry.pw_name, entry.pw_uid, entry.pw_gid, group, entry.pw_dir, shell)


def group_name(name_or_gid: str) -> str:
    """The group `name_or_gid` names (a numeric value is a gid), or a usage error."""
    checked_identity(name_or_gid, "group")
    try:
        if _is_number(name_or_gid):
            return grp.getgrgid(int(name_or_gid)).gr_name
        return grp.getgrnam(name_or_gid).gr_name
    except (KeyError, OverflowError, ValueError):
        kind = "gid" if _is_number(name_or_gid) else "name"
        raise UsageError(
            f"unknown group {shown(name_or_gid)}: no group has this {kind} (see getent group)"
        ) from None


def group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def is_executable_file(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def executable(name: str, what: str | None = None) -> str:
    """The absolute path the unit will run, or a 127 error naming what to install (an
    empty name: a usage error, as systemd-run refuses `systemd-run ""`)."""
    if not name:
        raise UsageError("the command is empty: give the program to run")
    path = resolve_executable(name, is_executable_file)
    if path is None:
        if what:
            from runas_podman.host.hints import install_hint

            hint = f"install it ({install_hint(what)})"
        elif name.startswith("/"):
            hint = "no executable file there: check the path"
        else:
            hint = "give an absolute path"
        raise RunasError(
            f"{name}: command not found in systemd's search path: {hint}", EXIT_NOT_FOUND
        )
    return path
