"""Doing things as a service user: never as root inside paths the user controls.

A root process that creates or replaces files in a user's home follows the user's
symlinks (~/.config -> /etc, a planted staging file -> /etc/shadow). So such work runs
in a forked child that has dropped to the user first; only bytes come back.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from runas_podman.core.errors import RunasError
from runas_podman.core.model import ServiceUser


def drop_to(user: ServiceUser) -> None:
    """Become `user` for good (in a child process)."""
    os.setgroups([])
    os.setgid(user.gid)
    os.setuid(user.uid)


def run_as(user: ServiceUser, action: Callable[[], bytes], what: str) -> bytes:
    """Run `action` as `user` in a child; its bytes, or RunasError naming `what` failed."""
    result_read, result_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        status = 1
        try:
            os.close(result_read)
            drop_to(user)
            os.umask(0o022)
            payload = action()
            status = 0
        except OSError as error:
            payload = f"{error.strerror or error}: {error.filename or ''}".rstrip(": ").encode()
        except Exception as error:  # reported to the parent, which raises it as one line
            payload = str(error).encode()
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(result_write, view) :]
        finally:
            os._exit(status)
    os.close(result_write)
    chunks = []
    with os.fdopen(result_read, "rb") as result:
        while chunk := result.read(65536):
            chunks.append(chunk)
    _, wait_status = os.waitpid(pid, 0)
    payload = b"".join(chunks)
    if os.waitstatus_to_exitcode(wait_status) != 0:
        raise RunasError(f"{what} as {user.name}: {payload.decode(errors='replace')}")
    return payload


def fd_as(user: ServiceUser, make: Callable[[], int]) -> int:
    """The fd `make()` returns when run as `user` (in a child that dropped to it), passed
    back over a socket pair; or the OSError the user got, raised here."""
    import socket

    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        status = 1
        try:
            ours.close()
            drop_to(user)
            socket.send_fds(theirs, [b"ok"], [make()])
            status = 0
        except OSError as error:
            theirs.sendall(str(error.errno or 5).encode())
        finally:
            os._exit(status)
    theirs.close()
    try:
        data, fds, _flags, _address = socket.recv_fds(ours, 64, 1)
    finally:
        ours.close()
        os.waitpid(pid, 0)
    if fds:
        return fds[0]
    code = int(data) if data.isdigit() else 5
    raise OSError(code, os.strerror(code))


def open_as(user: ServiceUser, path: str, flags: int) -> int:
    """`path` opened with `user`'s rights: the user's manager would open it so."""
    if os.geteuid() == user.uid:
        return os.open(path, flags)
    try:
        return fd_as(user, lambda: os.open(path, flags))
    except OSError as error:
        raise OSError(error.errno, error.strerror, path) from None
