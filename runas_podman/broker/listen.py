"""`runas-podman broker --listen`: the broker in the foreground for supervisors other
than systemd (runit, s6, OpenRC). One forked root process per connection runs serve()
as the socket-activated broker does; the limits (in all, per uid) are held before the
fork, and an accept or fork error is waited out, never the end.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import time
from typing import TYPE_CHECKING

from runas_podman.broker.protocol import BROKER_SOCKET, MAX_CONNECTIONS, MAX_PER_UID, send
from runas_podman.broker.server import log, peer_credentials, serve
from runas_podman.core.errors import RunasError

if TYPE_CHECKING:
    pass


# --- client -------------------------------------------------------------------------


# --- server --------------------------------------------------------------------------


# --- listen mode: a foreground broker for runit, s6, OpenRC ---------------------------


class _Stop(Exception):
    """SIGTERM or SIGINT to a listening broker: stop accepting, remove the socket."""


def listen(path: str = BROKER_SOCKET) -> int:
    """Accept connections on `path` (0666) in the foreground, one forked root process per
    connection, each running serve() exactly as a socket-activated broker@.service does.
    For hosts whose supervisor is not systemd; it runs until SIGTERM or SIGINT."""
    import stat

    if os.geteuid() != 0:
        raise RunasError("the broker must run as root (it starts commands as other users)")
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise RunasError(f"{path} exists and is not a socket: choose another --listen path")
        os.unlink(path)  # a broker before this one left it
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    children: dict[int, int] = {}  # pid -> the peer uid it serves

    def reap(_signum: int = 0, _frame: object = None) -> None:
        _reap(children)

    def stop(_signum: int, _frame: object) -> None:
        raise _Stop

    try:
        server.bind(path)
        os.chmod(path, 0o666)  # anyone may ask; serve() decides who is answered
        server.listen(64)
        signal.signal(signal.SIGCHLD, reap)
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        log(f"listening on {path}")
        while True:
            _accept_one(server, children)
    except _Stop:
        log("stopping")
        return 0
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        server.close()


def _accept_one(server: socket.socket, children: dict[int, int]) -> None:
    """Accept one connection and fork its broker process; the limits (MAX_CONNECTIONS
    in all, MAX_PER_UID per peer uid) are held before the fork. An error of accept or
    fork (out of fds, processes, memory) is logged and waited out, never the end."""
    try:
        conn, _address = server.accept()
    except InterruptedError:
        return
    except OSError as error:  # EMFILE, ENFILE, ENOBUFS, ECONNABORTED...
        log(f"accept failed ({error.strerror}): retrying")
        time.sleep(0.1)
        return
    try:
        _reap(children)
        _pid, uid, _gid = peer_credentials(conn)
        busy = (
            f"the broker serves at most {MAX_CONNECTIONS} clients at once"
            if len(children) >= MAX_CONNECTIONS
            else f"you have {MAX_PER_UID} connections to the broker open already (its "
            "limit per user): let one end"
            if list(children.values()).count(uid) >= MAX_PER_UID
            else None
        )
        if busy is not None:
            with contextlib.suppress(OSError):
                send(conn, {"error": f"{busy}; try again"})
            return
        # SIGCHLD held until the child is listed: a child that ends at once is reaped
        # after it is known, never before (which would leave it listed for good).
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGCHLD])
        try:
            pid = os.fork()
        except OSError as error:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGCHLD])
            log(f"fork failed ({error.strerror}): connection of uid {uid} refused")
            with contextlib.suppress(OSError):
                send(conn, {"error": "the broker cannot start a process now; try again"})
            time.sleep(0.1)
            return
        if pid == 0:  # pragma: no cover - the connection's own process
            _serve_forked(server, conn)
        children[pid] = uid
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGCHLD])
    finally:
        conn.close()


def _reap(children: dict[int, int]) -> None:
    while children:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            children.clear()
            return
        if pid == 0:
            return
        children.pop(pid, None)


def _serve_forked(server: socket.socket, conn: socket.socket) -> None:
    """In the forked child: default signals, the listening socket closed, serve()."""
    status = 0
    try:
        for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGCHLD])
        server.close()
        serve(conn)
    except BaseException:  # serve() answers every failure itself; a bug ends the child
        status = 1
    finally:
        with contextlib.suppress(OSError):
            conn.close()
        sys.stderr.flush()
        os._exit(status)
