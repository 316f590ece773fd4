"""The wheel+PAM path of `runas`: a root broker authenticates the caller, then starts the unit.

For systems without polkit, or for `runas -S`. The broker is socket-activated
(`runas-broker.socket`, Accept=yes: one root process per connection). Authentication
and authorization happen there, never in the caller's process:

- who the caller is comes from the socket's peer credentials (SO_PEERCRED), its working
  directory and slice from /proc/PID, never from the request;
- the caller must be in group `wheel`, and must give its own password, which the broker
  checks with PAM (service `runas`, three tries, pam_unix's delay on each failure);
- the request (command and options) goes through the same plan builder as the CLI.

Protocol: one JSON object per line. The client sends its request with its three stdio
fds (or a pty peer three times) attached; the broker may answer {"prompt": ...} (the
client replies {"password": ...}), then {"started": true}, then {"status": N}, or
{"error": "..."} at any point. If the client goes away, the broker ends the lifeline and
the unit stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import grp
import json
import os
import pwd
import signal
import socket
import struct
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from .elevate import PAM_SERVICE
from .errors import RunasError

BROKER_SOCKET = "/run/runas-broker.sock"
ADMIN_GROUP = "wheel"
TRIES = 3
POLKIT_SERVICE_FILE = "/usr/share/dbus-1/system-services/org.freedesktop.PolicyKit1.service"
MAX_REQUEST = 1 << 20
# A connection that says nothing must not hold a broker process (and a MaxConnections
# slot) forever: the request must arrive within REQUEST_TIMEOUT, each password answer
# within PASSWORD_TIMEOUT (a person typing).
REQUEST_TIMEOUT = 10.0
PASSWORD_TIMEOUT = 60.0


def polkit_installed() -> bool:
    return os.path.exists(POLKIT_SERVICE_FILE)


def send(sock: socket.socket, message: Mapping[str, Any], fds: Sequence[int] = ()) -> None:
    data = (json.dumps(message) + "\n").encode()
    if fds:
        socket.send_fds(sock, [data], list(fds))
    else:
        sock.sendall(data)


class LineReader:
    """JSON lines from a socket; the fds of the first message are kept."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""
        self.fds: list[int] = []

    def read(self) -> dict[str, Any] | None:
        while b"\n" not in self.buffer:
            if len(self.buffer) > MAX_REQUEST:
                raise RunasError("message too long")
            data, fds, _flags, _addr = socket.recv_fds(self.sock, 65536, 3)
            self.fds += fds
            if not data:
                return None
            self.buffer += data
        line, _, self.buffer = self.buffer.partition(b"\n")
        try:
            message = json.loads(line)
        except ValueError:
            raise RunasError("a broker message that is not JSON") from None
        if not isinstance(message, dict):
            raise RunasError("a broker message must be a JSON object")
        return message


_REQUEST_TYPES: dict[str, tuple[type, ...]] = {
    "command": (list,), "options": (dict,), "environ": (dict,), "stdio": (str,),
    "tty_path": (str, type(None)), "on_tty": (bool,),
}  # fmt: skip


def check_request(request: Mapping[str, Any]) -> None:
    """Refuse a request whose fields are not what the client sends, before any use."""
    for key, value in request.items():
        if key not in _REQUEST_TYPES:
            raise RunasError(f"bad broker request: unknown field '{key}'")
        if not isinstance(value, _REQUEST_TYPES[key]):
            raise RunasError(f"bad broker request: '{key}' has the wrong type")
    if not all(isinstance(arg, str) for arg in request.get("command") or []):
        raise RunasError("bad broker request: the command must be a list of strings")
    environ = request.get("environ") or {}
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in environ.items()):
        raise RunasError("bad broker request: the environment must map strings to strings")


# --- client -------------------------------------------------------------------------


def environ_for_request(options: Mapping[str, Any], environ: Mapping[str, str]) -> dict[str, str]:
    """Only the caller's variables the plan may read: nothing else leaves the client."""
    names = {"TERM", "SYSTEMD_RUN_SHELL_PROMPT_PREFIX"}
    for text in options.get("preserve_env") or ():
        names.update(filter(None, text.split(",")))
    names.update(text for text in options.get("setenv") or () if "=" not in text)
    return {name: environ[name] for name in names if name in environ}


def _read_first_line(fd: int) -> str:
    """The password line of stdin (-S), byte by byte: the rest is the command's."""
    line = bytearray()
    while True:
        byte = os.read(fd, 1)
        if not byte or byte == b"\n":
            return line.decode(errors="replace")
        line += byte


def run_through_broker(
    command: Sequence[str],
    options: Mapping[str, Any],
    caller: Any,
    stdio: str,
    tint: str | None,
    title: str | None,
    password_from_stdin: bool,
) -> int:
    from .ptyfwd import PtyForwarder

    password = _read_first_line(0) if password_from_stdin else None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.connect(BROKER_SOCKET)
    except OSError as error:
        sock.close()
        raise RunasError(
            f"the wheel+PAM broker does not answer at {BROKER_SOCKET} ({error.strerror}): "
            "install it with `runas-podman install-broker`, or use polkit (without -S)"
        ) from None
    forwarder = PtyForwarder(tint, title) if stdio == "pty" else None
    try:
        request = {
            "command": list(command),
            "options": {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()},
            "environ": environ_for_request(options, caller.environ),
            "stdio": stdio,
            "tty_path": forwarder.path if forwarder else None,
            "on_tty": caller.on_tty,
        }
        send(sock, request, [forwarder.peer] * 3 if forwarder else [0, 1, 2])
        if forwarder:
            forwarder.close_peer()
        reader = LineReader(sock)
        while True:
            message = reader.read()
            if message is None:
                raise RunasError("the broker closed the connection")
            if "error" in message:
                raise RunasError(str(message["error"]))
            if "prompt" in message:
                if password_from_stdin:
                    if password is None:  # stdin had one line, and it was not accepted
                        raise RunasError(
                            "authentication failed: the password on stdin (-S) was wrong"
                        )
                    answer, password = password, None
                else:
                    try:
                        answer = getpass.getpass(str(message["prompt"]))
                    except EOFError:
                        raise RunasError("no password given") from None
                send(sock, {"password": answer})
            elif message.get("started"):
                return asyncio.run(_follow(sock, reader, forwarder))
    finally:
        if forwarder is not None:
            forwarder.stop()
        sock.close()


async def _follow(sock: socket.socket, reader: LineReader, forwarder: Any) -> int:
    """Forward the pty (if any) until the broker reports the status; a signal ends it."""
    loop = asyncio.get_running_loop()
    outcome: asyncio.Future[int] = loop.create_future()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(signum, _set, outcome, 128 + signum)
    if forwarder is not None:
        forwarder.start()

    def readable() -> None:
        try:
            message = reader.read()
        except (OSError, ValueError):
            message = None
        if message is None:
            _set(outcome, -1)
        elif "status" in message:
            _set(outcome, int(message["status"]))
        elif "error" in message:
            outcome.set_exception(RunasError(str(message["error"])))

    loop.add_reader(sock, readable)
    try:
        status = await outcome
    finally:
        loop.remove_reader(sock)
        if forwarder is not None:
            forwarder.stop()  # inside the loop that runs it
    if status == -1:
        raise RunasError("the broker closed the connection before the command ended")
    return status


def _set(future: asyncio.Future[int], value: int) -> None:
    if not future.done():
        future.set_result(value)


# --- server --------------------------------------------------------------------------


def peer_credentials(conn: socket.socket) -> tuple[int, int, int]:
    data = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", data)
    return pid, uid, gid


def in_admin_group(name: str, gid: int) -> bool:
    try:
        admin = grp.getgrnam(ADMIN_GROUP).gr_gid
    except KeyError:
        return False
    return admin in os.getgrouplist(name, gid)


def authenticate(conn: socket.socket, reader: LineReader, name: str) -> bool:
    import pam

    checker = pam.pam()
    for attempt in range(TRIES):
        prefix = "" if attempt == 0 else "Sorry, try again.\n"
        send(conn, {"prompt": f"{prefix}[runas] password for {name}: "})
        answer = reader.read()
        if answer is None:
            return False
        if checker.authenticate(name, str(answer.get("password", "")), service=PAM_SERVICE):
            return True
    return False


def serve(conn: socket.socket) -> None:
    from . import lookup
    from .elevate import Caller
    from .runas_cli import plan_for

    pid, uid, gid = peer_credentials(conn)
    reader = LineReader(conn)
    try:
        conn.settimeout(REQUEST_TIMEOUT)
        request = reader.read()
        if request is None:
            return
        check_request(request)
        if len(reader.fds) != 3:
            raise RunasError("bad broker request: it must carry 3 fds (stdin, stdout, stderr)")
        name = pwd.getpwuid(uid).pw_name
        if uid != 0:
            if not in_admin_group(name, gid):
                raise RunasError(
                    f"{name} is not in group {ADMIN_GROUP}: the wheel+PAM path is for its members"
                )
            conn.settimeout(PASSWORD_TIMEOUT)
            if not authenticate(conn, reader, name):
                raise RunasError(f"authentication failed for {name}")
        conn.settimeout(None)
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            cwd = "/"
        caller = Caller(
            name=name, uid=uid, gid=gid, cwd=cwd,
            environ={str(k): str(v) for k, v in dict(request.get("environ") or {}).items()},
            slice=lookup.slice_of(pid), hostname=socket.gethostname(),
            on_tty=bool(request.get("on_tty")),
        )  # fmt: skip
        stdio = "pty" if request.get("stdio") == "pty" else "pipe"
        plan, _hue = plan_for(
            request.get("command") or [], request.get("options") or {}, caller, stdio
        )
        tty_path = request.get("tty_path") if stdio == "pty" else None
        status = asyncio.run(_launch(conn, reader, plan, tty_path))
        log(f"{name} (uid {uid}) ran {plan.unit} as {plan.user.name}: status {status}")
        with contextlib.suppress(OSError):  # the client may be gone: then nobody reads it
            send(conn, {"status": status})
    except TimeoutError:
        log(f"uid {uid} sent no request or answer in time: connection closed")
        with contextlib.suppress(OSError):
            send(conn, {"error": "the broker waited too long for your request or answer"})
    except RunasError as error:
        log(f"refused uid {uid}: {error.message}")
        with contextlib.suppress(OSError):
            send(conn, {"error": error.message})
    except Exception as error:  # BusCallError, click's BadParameter, bad JSON, a bug: say so
        log(f"failed for uid {uid}: {type(error).__name__}: {error}")
        with contextlib.suppress(OSError):
            send(conn, {"error": f"the broker failed: {error}"})
    finally:
        for fd in reader.fds:
            os.close(fd)


async def _launch(conn: socket.socket, reader: LineReader, plan: Any, tty_path: str | None) -> int:
    from .launcher import run_plan
    from .systemd_bus import SystemdBus, connected

    loop = asyncio.get_running_loop()
    client_gone: asyncio.Future[int] = loop.create_future()

    def readable() -> None:  # the client sends nothing more: data or EOF means it is gone
        with contextlib.suppress(OSError):
            if conn.recv(4096):
                return
        _set(client_gone, 128 + signal.SIGHUP)

    async with connected(SystemdBus.connect_system()) as bus:
        loop.add_reader(conn, readable)
        try:
            fds = reader.fds
            return await run_plan(
                plan, bus, stdio=(fds[0], fds[1], fds[2]),
                tty_path=tty_path, on_started=lambda: _tell_started(conn),
                stop_when=client_gone,
            )  # fmt: skip
        finally:
            loop.remove_reader(conn)


def _tell_started(conn: socket.socket) -> None:
    with contextlib.suppress(OSError):  # a client gone by now is noticed by the reader
        send(conn, {"started": True})


def log(line: str) -> None:
    """One line per request in the journal (the service's stderr)."""
    print(f"runas-broker: {line}", file=sys.stderr, flush=True)


def main() -> None:
    """Entry point of runas-broker@.service: the accepted connection is fd 3.

    (systemd gives the service /dev/null on 0-2: no closed stdio to fill here.)
    """
    if os.environ.get("LISTEN_FDS") != "1":
        sys.exit("runas-broker: start me through runas-broker.socket (expects one socket on fd 3)")
    conn = socket.socket(fileno=3)
    try:
        serve(conn)
    finally:
        conn.close()


if __name__ == "__main__":
    main()
