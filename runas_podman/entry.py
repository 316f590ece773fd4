"""The console scripts `runas-podman` and `runas`.

`--version` alone is answered here, before Click or anything else is imported, with the
same line Click's version option prints. For root, a command the launch server serves is
handed to it (the fast path below, in the style of Mercurial's chg); every other command
line goes to the Click layer (cli/) unchanged, in this process.

The fast path imports nothing but the interpreter's built-in modules (_socket, _signal):
it must cost almost nothing before it knows whether a server answers.
"""

from __future__ import annotations

import os
import sys

from runas_podman import LAUNCH_SOCKET, __version__

TYPE_CHECKING = False  # `typing` alone costs ~5 ms of a --version in the testbed
if TYPE_CHECKING:
    import _socket
    from typing import NoReturn

# The runas-podman commands the server runs: the launches and the read-only ones.
SERVED = frozenset({"exec", "podman", "ps", "images", "inspect", "logs"})
WIRE_MAGIC = b"RPL2"
FORWARDED = ("SIGINT", "SIGTERM", "SIGHUP", "SIGWINCH", "SIGQUIT")
ANSWER_TIMEOUT = 10  # seconds for the server to take the command (or refuse it)
# Which install this client is: the server runs only what its own install would run.
INSTALL = os.path.dirname(os.path.abspath(__file__))


def _answer_version(prog: str) -> None:
    """Exit after printing the version if that is all the command line asks."""
    if sys.argv[1:] != ["--version"] and (prog != "runas" or sys.argv[1:] != ["-V"]):
        return
    try:
        os.write(1, f"{prog}, version {__version__}\n".encode())
    except OSError:
        return  # no stdout: the Click layer answers as it always did
    sys.exit(0)


def _wants_server(prog: str, args: list[str]) -> bool:
    """Root, the server not turned off, a command it serves, stdio open and in the
    foreground, and this process sees the host as PID 1 does (not in a container, a
    chroot, another mount namespace)."""
    if os.environ.get("RUNAS_PODMAN_SERVER") == "0" or os.getuid() != 0 or os.geteuid() != 0:
        return False
    own = args[: args.index("--")] if "--" in args else args
    if any(arg.startswith("--pass-fd") for arg in args):
        return False  # the server gets fds 0-2 only
    pairs = zip(own, own[1:], strict=False)  # noqa: RUF007 (itertools: one import more)
    if "--backend=native" in own or ("--backend", "native") in pairs:
        return False  # the command would run in the server's own cgroup and context
    if prog == "runas-podman":
        if not args or args[0] not in SERVED:
            return False
    elif any(arg in ("--no-server", "-h", "--help", "--version", "-V") for arg in own):
        return False  # (an argument of the command's that looks so: runs here, the same)
    try:
        for fd in (0, 1, 2):
            os.fstat(fd)  # a closed one would become this client's socket
            # A terminal this process does not own the foreground of (a background job):
            # in-process, the kernel stops it; the server would not be stopped.
            if os.isatty(fd) and os.tcgetpgrp(fd) != os.getpgrp():
                return False
        root, init_root = os.stat("/"), os.stat("/proc/1/root")
        return (root.st_dev, root.st_ino) == (init_root.st_dev, init_root.st_ino) and (
            os.readlink("/proc/self/ns/mnt") == os.readlink("/proc/1/ns/mnt")
        )
    except OSError:
        return False


def _through_server(prog: str) -> None:
    """Run the command line in the launch server and exit with its status; return (having
    changed nothing) when no server takes it, so it runs here as always."""
    args = sys.argv[1:]
    if not _wants_server(prog, args):
        return
    import _socket

    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        sock.connect(LAUNCH_SOCKET)
        cwd = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            umask = os.umask(0o022)
            os.umask(umask)
            fields = [prog.encode(), __version__.encode(), os.fsencode(INSTALL),
                      b"%o" % umask, b"%d" % len(args),
                      *map(os.fsencode, args),
                      *(name + b"=" + value for name, value in os.environb.items())]  # fmt: skip
            payload = b"\0".join(fields)
            fds = b"".join(fd.to_bytes(4, sys.byteorder) for fd in (0, 1, 2, cwd))
            header = WIRE_MAGIC + len(payload).to_bytes(4, "big")
            sock.sendmsg([header], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)])
            sock.sendall(payload)
        finally:
            os.close(cwd)
        sock.settimeout(ANSWER_TIMEOUT)
        answer = sock.recv(1)
        if answer == b"A":
            sock.settimeout(None)
            sock.sendall(b"G")  # committed: from here on the server runs it, not we
    except OSError:  # a timeout included: nothing runs there without our "G"
        sock.close()
        return
    if answer != b"A":
        sock.close()
        return  # refused, or gone before it started anything: run here
    sys.exit(_follow(sock, prog))


def _follow(sock: _socket.socket, prog: str) -> int:
    """Forward signals until the server sends the status; a server that ends first is said
    in one line (its launch went with it: the unit's lifeline ended)."""
    import _signal  # type: ignore[import-not-found]  # signal's C half: no enum import

    forwarded: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        forwarded.append(signum)
        try:  # noqa: SIM105 (contextlib is one import more)
            sock.send(bytes([signum]))
        except OSError:
            pass

    for name in FORWARDED:
        _signal.signal(getattr(_signal, name), forward)
    reply = b""
    while len(reply) < 5:
        try:
            chunk = sock.recv(5 - len(reply))
        except OSError:
            chunk = b""
        if not chunk:
            break
        reply += chunk
    if len(reply) == 5 and reply[:1] == b"X":
        return int.from_bytes(reply[1:], "big")
    if forwarded and forwarded[-1] != _signal.SIGWINCH:  # killed by what we passed on: so are we
        _signal.signal(forwarded[-1], _signal.SIG_DFL)
        os.kill(os.getpid(), forwarded[-1])
    line = (f"{prog}: the launch server ended before the command did, and stopped it with "
            "it: run it again (--no-server runs it in this process)\n")  # fmt: skip
    os.write(2, line.encode())
    return 1 if prog == "runas" else 125


def runas_podman() -> NoReturn:
    _answer_version("runas-podman")
    _through_server("runas-podman")
    from runas_podman.cli.runas_podman import main

    main()


def runas() -> NoReturn:
    _answer_version("runas")
    _through_server("runas")
    from runas_podman.cli.runas import main

    main()
