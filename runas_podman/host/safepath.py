"""Which file a path names, decided only by people the caller trusts.

A file handed over with `--open-file` on the system manager is opened by PID 1, as root.
If anyone else controls a directory or a symlink on the way (a service user's home, a
world-writable directory), that person decides which file root opens: `test` replaces
/home/test/app.conf by a link to /etc/shadow and reads it on fd 3. So the path is walked
here component by component, the way the kernel resolves it, with O_PATH|O_NOFOLLOW
openat() calls relative to the directory before (nothing is followed unseen), and it is
refused unless every directory, symlink and the file itself belong to root or the caller
and no directory is writable by anyone else.

Why systemd opening the path again afterwards is not a race: once every component is
root's or the caller's and no one else may write to a directory on the way, no one else
can change what the path resolves to. A sticky directory (/tmp) lets others create
entries but not rename or remove one they do not own, so it passes when the entry in it
belongs to root or the caller; a missing entry passes only where no one else could
create it. Where runas-podman opens the file itself (the fd relay, the native backend),
open_trusted opens it by that same walk, so no path is looked up twice.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runas_podman.core.model import OpenFile

MAX_SYMLINKS = 40  # as the kernel's path walk


@dataclass(frozen=True)
class Untrusted:
    """The component of a path that someone the caller does not trust controls."""

    component: str
    problem: str


def _owner(st: os.stat_result) -> str:
    import pwd

    try:
        return f"{pwd.getpwuid(st.st_uid).pw_name} (uid {st.st_uid})"
    except KeyError:
        return f"uid {st.st_uid}"


def find_untrusted(path: str, trusted_uids: Collection[int]) -> Untrusted | None:
    """The first component of absolute `path` that someone outside `trusted_uids` controls.

    A component that does not exist is as safe as the directory that would hold it:
    fine where only trusted users may create it, untrusted where others may (a
    world-writable /tmp, sticky or not: `test` creates /tmp/appcfg the moment a unit
    appears, with db.conf -> /etc/shadow in it).
    """
    untrusted, fd = _walk(path, trusted_uids, None)
    assert fd is None
    return untrusted


class NotTrusted(Exception):
    """open_trusted refused the path: someone the caller does not trust controls it."""

    def __init__(self, untrusted: Untrusted) -> None:
        super().__init__(f"{untrusted.component} {untrusted.problem}")
        self.untrusted = untrusted


def open_trusted(path: str, flags: int, trusted_uids: Collection[int]) -> int:
    """PATH opened by the walk that checks it (no path is looked up twice): each
    directory relative to the one before, the file itself with O_NOFOLLOW and O_NONBLOCK
    (a FIFO planted there never blocks root; the flag is cleared afterwards), and only
    if it is the very file the walk checked. NotTrusted, or the OSError of the open
    (ENOENT for a missing file)."""
    untrusted, fd = _walk(path, trusted_uids, flags)
    if untrusted is not None:
        raise NotTrusted(untrusted)
    if fd is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
    return fd


def _walk(path: str, trusted_uids: Collection[int], open_flags: int | None) -> tuple[
    Untrusted | None, int | None
]:  # fmt: skip
    """find_untrusted's walk; with OPEN_FLAGS, the last component opened (see open_trusted)."""
    if not path.startswith("/"):
        raise ValueError("the path must be absolute")
    pending = [part for part in path.split("/") if part]
    shown = ""  # the path resolved so far, for messages
    links = 0
    untrusted_devices = fuse_devices()
    directory = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        parent = os.fstat(directory)
        while pending:
            name = pending.pop(0)
            if name == ".":
                continue
            writable_by_others = parent.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
            try:
                fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=directory)
            except OSError as error:
                if error.errno == errno.ENOENT and writable_by_others:
                    return Untrusted(
                        f"{shown}/{name}",
                        f"does not exist, and {shown or '/'} is writable by others, who "
                        "could create it",
                    ), None
                if error.errno in (errno.ENOENT, errno.ENOTDIR):
                    return None, None
                return Untrusted(f"{shown}/{name}", f"cannot be examined ({error.strerror})"), None
            st = os.fstat(fd)
            here = os.path.normpath(f"{shown}/{name}") if name == ".." else f"{shown}/{name}"
            if st.st_dev in untrusted_devices:
                os.close(fd)
                return Untrusted(
                    here, "is on a FUSE file system, whose mounter reports any owner it likes"
                ), None
            sticky = parent.st_mode & stat.S_ISVTX
            if writable_by_others and not (sticky and st.st_uid in trusted_uids):
                os.close(fd)
                return Untrusted(
                    shown or "/", "is writable by others, who could replace what is in it"
                ), None
            if st.st_uid not in trusted_uids:
                os.close(fd)
                what = "a symlink owned by" if stat.S_ISLNK(st.st_mode) else "owned by"
                return Untrusted(here, f"is {what} {_owner(st)}"), None
            if stat.S_ISLNK(st.st_mode):
                os.close(fd)
                links += 1
                if links > MAX_SYMLINKS:
                    return Untrusted(here, f"leads through more than {MAX_SYMLINKS} symlinks"), None
                target = os.readlink(name, dir_fd=directory)
                pending[:0] = [part for part in target.split("/") if part]
                if target.startswith("/"):
                    os.close(directory)
                    directory = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
                    parent = os.fstat(directory)
                    shown = ""
                continue
            if not pending and open_flags is not None:
                os.close(fd)
                return None, _open_last(directory, name, open_flags, st)
            os.close(directory)
            directory, parent, shown = fd, st, here
        return None, None
    finally:
        with contextlib.suppress(OSError):
            os.close(directory)


def open_for_root(open_file: OpenFile, fix: str) -> int | None:
    """An --open-file path opened here as root would be for the caller (the fd relay, the
    native backend): by open_trusted, for root and the caller only; None for a missing
    file with the graceful flag; else RunasError, one line, ending in FIX."""
    from runas_podman.core.errors import RunasError

    try:
        return open_trusted(open_file.path, open_file.open_flags, {0, os.geteuid()})
    except NotTrusted as error:
        raise RunasError(
            f"--open-file {open_file.path}: {error}, so root might open another file"
        ) from None
    except OSError as error:
        unopened(open_file, error, fix)  # raises unless graceful
        return None


def unopened(open_file: OpenFile, error: OSError, fix: str) -> None:
    """An --open-file path that could not be opened: skipped when graceful, else one line
    naming it (for root's opens here and the user's own in the fd relay alike)."""
    from runas_podman.core.errors import RunasError

    if "graceful" in open_file.flags:
        return
    raise RunasError(
        f"could not open an --open-file path ({open_file.path}): {error.strerror}; {fix}"
    ) from None


def fuse_devices(mountinfo: str = "/proc/self/mountinfo") -> frozenset[int]:
    """The device numbers of FUSE mounts: their owners are whatever the process serving
    them says (a user's FUSE mount with allow_other can show root's files and links)."""
    devices = set()
    try:
        with open(mountinfo) as file:
            for line in file:
                fields = line.split()
                if "-" not in fields:
                    continue
                fstype = fields[fields.index("-") + 1]
                if fstype == "fuse" or fstype.startswith(("fuse.", "fuseblk")):
                    major, _, minor = fields[2].partition(":")
                    devices.add(os.makedev(int(major), int(minor)))
    except (OSError, ValueError):
        pass
    return frozenset(devices)


def _open_last(directory: int, name: str, flags: int, checked: os.stat_result) -> int:
    """NAME in DIRECTORY opened with FLAGS, if it is still the file CHECKED."""
    fd = os.open(
        name, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC, dir_fd=directory
    )
    st = os.fstat(fd)
    if (st.st_dev, st.st_ino) != (checked.st_dev, checked.st_ino):
        os.close(fd)
        raise OSError(errno.ESTALE, "the file was replaced while it was checked")
    os.set_blocking(fd, True)
    return fd


def check_open_file_for_root(path: str, caller_uid: int) -> str | None:
    """Why PID 1 (root) must not open `path` for this caller, or None when it may.

    Deny by default: every component must be root's or the caller's (find_untrusted),
    and a caller other than root must be able to read the file itself, since root's
    open would otherwise hand over what the caller could not read.
    """
    untrusted = find_untrusted(path, {0, caller_uid})
    if untrusted is not None:
        return f"{untrusted.component} {untrusted.problem}"
    if caller_uid != 0:
        try:
            os.close(os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK))
        except PermissionError:
            return "you cannot read it yourself"
        except OSError:
            pass  # missing: systemd reports it (or skips it with the graceful flag)
    return None
