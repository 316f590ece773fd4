"""The fd relay: how secret fds reach a command on a manager too old to pass them.

systemd < 253 has no OpenFile=, < 257 no ExtraFileDescriptors; but every version takes
a unit's standard input as an fd. So the launcher makes stdin one end of a socket pair
and runs this script first: it receives, in one SCM_RIGHTS message, the command's real
stdin and the secret fds with their names, puts them at 0 and 3, 4, ... (the order the
native properties use), sets LISTEN_FDS, LISTEN_FDNAMES and LISTEN_PID to its own pid,
which the command keeps across exec (podman forwards the fds only then), and execs the
command. Standard library only, run with `python -I -S`: it starts fast, as the service
user, and imports nothing from anywhere the user could write.

Usage (by the launcher): python -I -S fdrelay.py -- COMMAND [ARGS...]
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys

MAX_FDS = 253  # SCM_MAX_FD
EXIT_FDS = 202  # systemd's EXIT_FDS: "setting up the passed file descriptors"


def receive(sock: socket.socket) -> tuple[int, list[int], list[str]]:
    """(real stdin, secret fds, their names) from the launcher's one message."""
    data, fds, _flags, _address = socket.recv_fds(sock, 65536, MAX_FDS)
    header = json.loads(data.decode())
    names = [str(name) for name in header["names"]]
    if len(fds) != 1 + len(names):
        raise ValueError(f"expected {1 + len(names)} fds, got {len(fds)}")
    return fds[0], fds[1:], names


def place(stdin: int, secrets: list[int]) -> None:
    """stdin at 0 and the secrets at 3, 4, ...: each first copied above every target
    (F_DUPFD never replaces an open fd), then put in place."""
    above = 3 + len(secrets)
    moved = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, above) for fd in [stdin, *secrets]]
    for fd in {stdin, *secrets}:
        os.close(fd)
    os.dup2(moved[0], 0, inheritable=True)
    for i, fd in enumerate(moved[1:]):
        os.dup2(fd, 3 + i, inheritable=True)
    for fd in moved:
        os.close(fd)


def main(argv: list[str]) -> None:
    if len(argv) < 3 or argv[1] != "--":
        sys.stderr.write("fdrelay: usage: fdrelay.py -- COMMAND [ARGS...]\n")
        os._exit(EXIT_FDS)
    command = argv[2:]
    try:
        with socket.socket(fileno=os.dup(0)) as sock:
            stdin, secrets, names = receive(sock)
        place(stdin, secrets)
    except (OSError, ValueError, KeyError) as error:
        sys.stderr.write(f"fdrelay: no fds from the launcher: {error}\n")
        os._exit(EXIT_FDS)
    environ = dict(os.environ)
    if secrets:
        environ.update(
            LISTEN_FDS=str(len(secrets)), LISTEN_FDNAMES=":".join(names),
            LISTEN_PID=str(os.getpid()),
        )  # fmt: skip
    try:
        os.execve(command[0], command, environ)
    except OSError as error:
        sys.stderr.write(f"fdrelay: cannot execute {command[0]}: {error.strerror}\n")
        os._exit(203)  # systemd's EXIT_EXEC


if __name__ == "__main__":
    main(sys.argv)
