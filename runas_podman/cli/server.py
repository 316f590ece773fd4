"""The root-only launch server (runas-podman-launch.socket), in the style of Mercurial's
chg: one warm process that has imported the package, forking a child per connection
that runs the unchanged command line with the client's stdio, cwd, umask and
environment, and sends back its exit status.

Trust: only root connects (the socket is 0600, and every connection's SO_PEERCRED uid
must be 0), from the mount namespace this server sees (not a container's or a chroot's,
whose paths would mean other files); anything else is refused and the client runs the
command itself. The child runs exactly what the client would have run in-process: root
asking root to do what root could do itself.

Wire (entry.py is the client): the client sends b"RPL1", a 4-byte length and, with
SCM_RIGHTS, its fds 0, 1, 2 and its cwd; then the NUL-separated payload (program,
umask in octal, argc, argv..., NAME=VALUE...). The server answers b"A" (taken) or b"R"
(refused: run it yourself). Then each byte from the client is a signal to deliver, EOF
is a hangup (the client is gone: the launch stops as on SIGHUP), and the server ends
with b"X" and the status in 4 bytes.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import sys
import threading
import time
from typing import NamedTuple, NoReturn

from runas_podman import LAUNCH_SOCKET, __version__
from runas_podman.core.errors import one_line

WIRE_MAGIC = b"RPL2"
SO_PEERPIDFD = 77  # Linux >= 6.5: the peer as a pidfd, immune to pid reuse
MAX_PAYLOAD = 4 << 20  # argv and environment: above the kernel's own limit for execve
READ_TIMEOUT = 5.0  # for the request itself: a client that stalls there is dropped
IDLE_SECONDS = 120.0  # then the server exits; the socket starts it again when needed
PROGRAMS = ("runas-podman", "runas")
INSTALL = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the package's


def install_stamp() -> frozenset[tuple[str, int, int]]:
    """The package's modules as they are on disk (name, inode, mtime): an upgrade or a
    reinstall in place (same version, same directory) changes them, and a server still
    running the code it loaded before must not serve the new install's clients."""
    stamp = set()
    for directory, _dirs, files in os.walk(INSTALL):
        for name in files:
            if name.endswith(".py"):
                with contextlib.suppress(OSError):
                    info = os.stat(os.path.join(directory, name))
                    stamp.add((os.path.join(directory, name), info.st_ino, info.st_mtime_ns))
    return frozenset(stamp)


STARTED_WITH = install_stamp()  # in the server: taken at start, before anything is loaded


class Request(NamedTuple):
    prog: str
    version: str  # the client's runas-podman version and install directory: the server
    install: str  # runs only its own install's command lines
    umask: int
    argv: list[str]
    environ: dict[str, str]
    fds: list[int]  # stdin, stdout, stderr, cwd


def log(line: str) -> None:
    print(f"runas-podman-launch: {one_line(line)}", file=sys.stderr, flush=True)


def peer(conn: socket.socket) -> tuple[int, int, int]:
    import struct

    data = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", data)
    return pid, uid, gid


def unconfined_root_here(pid: int) -> str | None:
    """Why process PID (uid 0) is not root as this server is, or None: it must share the
    server's mount and user namespaces and root directory, and hold the server's
    capabilities without no_new_privs or a seccomp filter (a confined root asks as
    what it is, in-process, and systemd decides)."""
    try:
        for namespace in ("mnt", "user"):
            if os.readlink(f"/proc/{pid}/ns/{namespace}") != os.readlink(
                f"/proc/self/ns/{namespace}"
            ):
                return f"another {namespace} namespace"
        theirs, ours = os.stat(f"/proc/{pid}/root"), os.stat("/proc/self/root")
        if (theirs.st_dev, theirs.st_ino) != (ours.st_dev, ours.st_ino):
            return "another root directory (a chroot)"
        status, own = _status(f"/proc/{pid}/status"), _status("/proc/self/status")
    except OSError as error:
        return f"its /proc entry cannot be read ({error.strerror})"
    if int(status.get("CapEff", "0"), 16) & int(own.get("CapEff", "0"), 16) != int(
        own.get("CapEff", "0"), 16
    ):
        return "fewer capabilities than root's"
    if status.get("NoNewPrivs", "0") != "0" or status.get("Seccomp", "0") != "0":
        return "no_new_privs or a seccomp filter"
    return None


def _status(path: str) -> dict[str, str]:
    with open(path) as file:
        return dict(line.rstrip("\n").partition(":\t")[::2] for line in file if ":\t" in line)


def peer_pidfd(conn: socket.socket) -> int | None:
    """The peer as a pidfd (SO_PEERPIDFD), or None where the kernel has none (< 6.5)."""
    try:
        return conn.getsockopt(socket.SOL_SOCKET, SO_PEERPIDFD)
    except OSError:
        return None


def still_alive(pidfd: int | None) -> bool:
    """The peer checked by its pid is still that process (its pid not reused)."""
    if pidfd is None:
        return True  # no pidfd: the checks above are as good as the pid
    try:
        signal.pidfd_send_signal(pidfd, 0)
        return True
    except OSError:
        return False


def _read_exactly(conn: socket.socket, size: int, deadline: float) -> bytes:
    data = bytearray()
    while len(data) < size:
        left = deadline - time.monotonic()
        if left <= 0:
            raise ValueError("the request was not sent in time")
        conn.settimeout(left)
        chunk = conn.recv(min(size - len(data), 1 << 16))
        if not chunk:
            raise ValueError("the client closed the connection mid-request")
        data += chunk
    return bytes(data)


def read_request(conn: socket.socket) -> Request:
    """The request, or ValueError naming what is wrong with it (its fds closed)."""
    deadline = time.monotonic() + READ_TIMEOUT
    conn.settimeout(READ_TIMEOUT)
    header, fds, _flags, _address = socket.recv_fds(conn, 8, 8)
    try:
        if len(header) != 8 or header[:4] != WIRE_MAGIC or len(fds) != 4:
            raise ValueError("not a launch request")
        size = int.from_bytes(header[4:], "big")
        if size > MAX_PAYLOAD:
            raise ValueError(f"a request of {size} bytes")
        fields = _read_exactly(conn, size, deadline).split(b"\0")
        prog, version, install = fields[0].decode(), fields[1].decode(), os.fsdecode(fields[2])
        umask, argc = int(fields[3], 8), int(fields[4])
        if prog not in PROGRAMS or not 0 <= argc <= len(fields) - 5 or not 0 <= umask <= 0o777:
            raise ValueError("a malformed launch request")
        argv = [os.fsdecode(field) for field in fields[5 : 5 + argc]]
        environ = {}
        for item in fields[5 + argc :]:
            name, equals, value = item.partition(b"=")
            if equals and name:
                environ[os.fsdecode(name)] = os.fsdecode(value)
        return Request(prog, version, install, umask, argv, environ, fds)
    except (ValueError, IndexError, OSError) as error:  # UnicodeDecodeError is a ValueError
        for fd in fds:
            os.close(fd)
        if isinstance(error, (ValueError, OSError)):
            raise
        raise ValueError("a malformed launch request") from None


def _watch_client(conn: socket.socket) -> None:
    """Deliver the client's forwarded signals to this process (its loop acts on them as on
    its own); the client going away is a hangup. This thread blocks every signal, so each
    reaches the main thread, and waits there while the main thread holds it (native)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    while True:
        try:
            data = conn.recv(64)
        except OSError:
            data = b""
        if not data:
            os.kill(os.getpid(), signal.SIGHUP)
            return
        for signum in data:
            if signum in FORWARDABLE:
                os.kill(os.getpid(), signum)


FORWARDABLE = frozenset(
    int(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGWINCH, signal.SIGQUIT)
)


def serve(conn: socket.socket) -> NoReturn:
    """In the forked child: check the peer, take the request, run it, send the status."""
    try:
        pid, uid, _gid = peer(conn)
        pidfd = peer_pidfd(conn)
        why = "not uid 0" if uid != 0 else unconfined_root_here(pid)
        if why is None and not still_alive(pidfd):
            why = "it ended before it was checked"
        if why is not None:
            log(f"refused pid {pid} uid {uid}: {why} (only this host's root is served)")
            conn.sendall(b"R")
            os._exit(0)
        request = read_request(conn)
        changed = install_stamp() != STARTED_WITH
        if (request.version, request.install) != (__version__, INSTALL) or changed:
            # Another install, or this one upgraded since the server started: it runs its
            # own code; the server ends once idle, and the socket starts the new one.
            log(f"refused runas-podman {request.version} of {request.install}: this server "
                f"is {__version__} of {INSTALL}"
                + (", whose files changed since it started" if changed else ""))  # fmt: skip
            os.kill(os.getppid(), signal.SIGUSR1)
            _close(request.fds)
            conn.sendall(b"R")
            os._exit(0)
    except (OSError, ValueError) as error:
        log(f"dropped a connection: {error}")
        with contextlib.suppress(OSError):
            conn.sendall(b"R")
        os._exit(0)
    try:
        conn.sendall(b"A")
        conn.settimeout(READ_TIMEOUT)
        committed = conn.recv(1) == b"G"  # the client will not run it itself
        conn.settimeout(None)
    except OSError:
        committed = False
    if not committed:
        _close(request.fds)
        os._exit(0)  # the client is gone, or ran it itself: nothing started here
    status = 1 if request.prog == "runas" else 125
    try:
        _take_client_context(request)
        threading.Thread(target=_watch_client, args=(conn,), daemon=True).start()
        status = run(request, pid)
    except SystemExit as exit_:
        status = exit_.code if isinstance(exit_.code, int) else 1
    except BaseException:  # a bug: shown as in-process, with its traceback
        import traceback

        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        with contextlib.suppress(OSError):
            conn.sendall(b"X" + (status & 0xFFFFFFFF).to_bytes(4, "big"))
        os._exit(0)


def _close(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def _take_client_context(request: Request) -> None:
    """This process becomes the client's: its stdio, cwd, umask, environment, argv."""
    for number, fd in enumerate(request.fds[:3]):
        os.dup2(fd, number, inheritable=True)
    os.fchdir(request.fds[3])
    _close([fd for fd in request.fds if fd > 2])
    os.umask(request.umask)
    os.environ.clear()
    os.environ.update(request.environ)
    sys.argv = [request.prog, *request.argv]
    _fresh_std_streams()


def run(request: Request, pid: int) -> int:
    from runas_podman.cli.common import Served, cli_status

    served = Served(caller_pid=pid)
    if request.prog == "runas":
        from runas_podman.cli.runas import EXIT_FAILURE, runas

        return cli_status(runas, "runas", request.argv, EXIT_FAILURE, obj=served)
    from runas_podman.cli.runas_podman import cli

    return cli_status(cli, "runas-podman", request.argv, obj=served)


def _fresh_std_streams() -> None:
    """Python's stdio objects for the client's fds (the server's were the journal's)."""
    for name, fd in (("stdin", 0), ("stdout", 1), ("stderr", 2)):
        line_buffered = fd == 2 or os.isatty(fd)
        # They live as long as the process: no context manager.
        stream = open(  # noqa: SIM115
            fd, "r" if fd == 0 else "w", buffering=1 if line_buffered else -1,
            encoding="utf-8", errors="surrogateescape" if fd < 2 else "backslashreplace",
            closefd=False,
        )  # fmt: skip
        setattr(sys, name, stream)


# What a served command imports, imported once before the first fork: every module of
# the launch path, and podman-py for the read-only podman commands (~80 ms cold).
PRELOADED = (
    "asyncio", "dbus_next.aio", "runas_podman.cli.runas", "runas_podman.cli.runas_podman",
    "runas_podman.cli.manage", "runas_podman.launch.elevation", "runas_podman.launch.launch",
    "runas_podman.launch.request", "runas_podman.launch.service", "runas_podman.run.launcher",
    "runas_podman.run.session", "runas_podman.run.resolve", "runas_podman.run.ptyfwd",
    "runas_podman.run.polkit_agent", "runas_podman.core.plan", "runas_podman.core.properties",
    "runas_podman.core.unitprops", "runas_podman.core.elevate", "runas_podman.core.gate",
    "runas_podman.core.podman_args", "runas_podman.host.lookup", "runas_podman.host.procfs",
    "runas_podman.host.backend", "runas_podman.host.safepath", "runas_podman.bus.user_bus",
    "runas_podman.manage.podman_api", "podman",
)  # fmt: skip


def preload() -> None:
    """What every launch would import, imported once before the first fork."""
    import importlib

    for name in PRELOADED:
        with contextlib.suppress(ImportError):  # podman-py missing: those commands say so
            importlib.import_module(name)


def listening_socket() -> socket.socket:
    if os.environ.get("LISTEN_FDS") != "1" or os.environ.get("LISTEN_PID") != str(os.getpid()):
        sys.exit(
            f"runas-podman-launch: start me through runas-podman-launch.socket ({LAUNCH_SOCKET})"
        )
    for name in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    return socket.socket(fileno=3)


def main() -> NoReturn:
    listener = listening_socket()
    preload()
    import gc

    gc.collect()
    gc.freeze()  # what the children share stays shared (no refcount writes from gc)
    children: set[int] = set()

    def reap(_signum: int = 0, _frame: object = None) -> None:
        """Children are reaped the moment they end (no zombie stays listed)."""
        for child in list(children):
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(child, os.WNOHANG)[0] == child:
                    children.discard(child)

    stale: list[bool] = []  # a client of a newer install came: end once idle

    signal.signal(signal.SIGCHLD, reap)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGUSR1, lambda *_: stale.append(True))
    last_activity = time.monotonic()
    while True:
        ready, _, _ = select.select([] if stale else [listener], [], [], 1.0)
        if ready:
            try:
                conn, _address = listener.accept()
            except OSError as error:  # EMFILE and the like: the next one may fare better
                log(f"accept failed: {error.strerror}")
                time.sleep(0.1)
                continue
            try:
                child = os.fork()
            except OSError as error:  # TasksMax: that client runs the command itself
                log(f"fork failed: {error.strerror}")
                conn.close()
                continue
            if child == 0:
                listener.close()
                for signum in (signal.SIGTERM, signal.SIGCHLD, signal.SIGUSR1):
                    signal.signal(signum, signal.SIG_DFL)
                serve(conn)
            children.add(child)
            conn.close()
            reap()  # one that ended before it was added
            last_activity = time.monotonic()
        elif children:
            last_activity = time.monotonic()
        elif stale or time.monotonic() - last_activity > IDLE_SECONDS:
            sys.exit(0)


if __name__ == "__main__":
    main()
