"""The broker driver: abuses runas's root broker and checks after each abuse that it serves.

Runs inside the testbed as root; raw connections are made with the effective uid of
alice (in group wheel, password given) or test (not in wheel), which is what the
broker reads from SO_PEERCRED; the real clients run as them through setpriv.

Input, JSON on stdin: {"phase": "abuse"|"idle", "password": TEXT}
- abuse: each bad request on its own connection (as alice, who answers the password
  prompt so that the request gets as far as it can; most differ from the request runas
  itself sends in one field), its answer, then a normal request. Output:
  {"started_at": epoch, "abuses": [{"name", "answer", "health"}]}.
- idle: 20 connections (as test) that never send anything; while they are held: the
  broker instances, a normal request, concurrent clients (alice right, test outside
  wheel, alice wrong password); whether the broker closes the idle connections by
  itself (within 20 s); then what clients get while idle connections fill the
  socket's MaxConnections, and recovery once all are closed. Output: figures and
  every client's result.
A "health" or client result is [status, stdout, stderr].
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import pwd
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

SOCKET = "/run/runas-broker.sock"
REPLY_TIMEOUT = 15.0
# Below the broker's per-uid limit (16): the idle ones are test's, and test still asks
# twice itself meanwhile (and is refused for not being in wheel, not for the limit).
IDLE_CONNECTIONS = 12
IDLE_WAIT = 20.0  # how long the idle connections are held at most, waiting for the broker
LIMIT_PROBES = 9  # clients sent while idle connections fill the socket


def line(value: Any) -> bytes:
    return json.dumps(value).encode() + b"\n"


def valid_request() -> dict[str, Any]:
    """A normal request (echo, as test, pipe mode), built by runas's own client code, so
    that each abuse below differs from what runas sends in one place only."""
    from runas_podman.broker.protocol import BrokerRequest
    from runas_podman.core.elevate import ElevateRequest

    options = ElevateRequest(command=("echo", "abuse-launched"), user="test")
    return BrokerRequest(options=options, environ={}).to_message()


def changed(message: dict[str, Any], **values: Any) -> bytes:
    """MESSAGE as a line, with values set at paths ("__" between names: options__user=5
    sets options.user)."""
    message = copy.deepcopy(message)
    for path, value in values.items():
        *parents, name = path.split("__")
        target = message
        for parent in parents:
            target = target[parent]
        target[name] = value
    return line(message)


def abuses(valid: dict[str, Any]) -> list[tuple[str, bytes, int, bytes]]:
    """(name, payload, number of fds sent with it, answer to a password prompt)."""
    request = line(valid)
    return [
        ("not JSON", b"this is not json\n", 3, b""),
        ("not JSON, no fds", b"this is not json\n", 0, b""),
        ("bytes that are not UTF-8", b"\xff\xfe{\n", 3, b""),
        ("an empty line", b"\n", 3, b""),
        ("a list instead of an object", b"[]\n", 3, b""),
        ("a number instead of an object", b"5\n", 3, b""),
        ("null instead of an object", b"null\n", 3, b""),
        ("two objects on one line", request[:-1] + request, 3, b""),
        ("version 1", changed(valid, version=1), 3, b""),
        ("version 3", changed(valid, version=3), 3, b""),
        ('version "2"', changed(valid, version="2"), 3, b""),
        ('authentication = "none"', changed(valid, authentication="none"), 3, b""),
        ("authentication = 1", changed(valid, authentication=1), 3, b""),
        ('action = "shell"', changed(valid, action="shell"), 3, b""),
        ("an unknown top-level field forget_first", changed(valid, forget_first=True), 3, b""),
        ("interactive = 0", changed(valid, interactive=0), 3, b""),
        ("an unknown field", changed(valid, extra=1), 3, b""),
        ("options = []", changed(valid, options=[]), 3, b""),
        ("options.command = 5", changed(valid, options__command=5), 3, b""),
        ("options.command = [5]", changed(valid, options__command=[5]), 3, b""),
        ('options.command = "echo"', changed(valid, options__command="echo"), 3, b""),
        ("options.user = 5", changed(valid, options__user=5), 3, b""),
        ('options.properties = "CPUWeight=5"',
         changed(valid, options__properties="CPUWeight=5"), 3, b""),
        ('options.nice = "high"', changed(valid, options__nice="high"), 3, b""),
        ("options.nice = true", changed(valid, options__nice=True), 3, b""),
        ('options.unit = ["x"]', changed(valid, options__unit=["x"]), 3, b""),
        ('options.stdio = "bogus"', changed(valid, options__stdio="bogus"), 3, b""),
        ("environ = [1, 2]", changed(valid, environ=[1, 2]), 3, b""),
        ('environ = {"A": 5}', changed(valid, environ={"A": 5}), 3, b""),
        ('options.stdio = "pty", tty_path = 5',
         changed(valid, options__stdio="pty", tty_path=5), 3, b""),
        ("a valid request with 1 fd", request, 1, b""),
        ("a password answer that is a list", request, 3, b"[]\n"),
        ("a password answer that is not JSON", request, 3, b"password\n"),
        ('a password answer {"password": 5}', request, 3, line({"password": 5})),
        ("deeply nested JSON (100 kB)", b"[" * 50_000 + b"]" * 50_000 + b"\n", 3, b""),
        ("an oversized request (1.5 MiB line)",
         changed(valid, options__command=["echo", "x" * (3 << 19)]), 3, b""),
        ("an oversized request without a newline (2 MiB)", b"x" * (2 << 20), 3, b""),
    ]  # fmt: skip


@contextlib.contextmanager
def effective(user: str) -> Iterator[None]:
    """Run the block with USER's effective uid and gid (the broker's SO_PEERCRED view)."""
    entry = pwd.getpwnam(user)
    os.setegid(entry.pw_gid)
    os.seteuid(entry.pw_uid)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def connect(user: str) -> socket.socket:
    with effective(user):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(SOCKET)
    return sock


def send(sock: socket.socket, payload: bytes, fds: int) -> str | None:
    """Send PAYLOAD (the first part with FDS copies of /dev/null); an error as text."""
    null = os.open(os.devnull, os.O_RDWR)
    try:
        sent = socket.send_fds(sock, [payload[:65536]], [null] * fds) if fds else 0
        sock.sendall(payload[sent:])
    except OSError as error:
        return f"sending failed: {error.strerror}"
    finally:
        os.close(null)
    return None


def replies(sock: socket.socket, answer: bytes, password: str) -> str:
    """Read the broker's lines until it ends the exchange: what it said, in a few words.

    The first password prompt gets ANSWER (if any), the others the right password."""
    sock.settimeout(REPLY_TIMEOUT)
    buffer = b""
    said: list[str] = []
    while True:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            return " / ".join([*said, f"no answer in {REPLY_TIMEOUT:.0f} s"])
        except OSError as error:
            return " / ".join([*said, f"connection error: {error.strerror}"])
        if not data:
            return " / ".join([*said, "closed"])
        buffer += data
        while b"\n" in buffer:
            raw, _, buffer = buffer.partition(b"\n")
            message = json.loads(raw)
            if "prompt" in message:
                said.append("prompt")
                sock.sendall(answer or line({"password": password}))
                answer = b""
            elif "error" in message:
                said.append(f"error: {message['error']}")
            elif "started" in message:
                said.append("started")
            else:
                said.append(json.dumps(message))


def client(user: str, command: list[str], stdin: str) -> list[Any]:
    """runas as USER (with its groups): [status, stdout, stderr]."""
    result = subprocess.run(
        ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "runas", *command],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return [result.returncode, result.stdout, result.stderr]


def health(password: str, tag: str) -> list[Any]:
    return client("alice", ["-S", "-u", "test", "echo", f"ok-{tag}"], f"{password}\n")


def broker_instances() -> int:
    listing = subprocess.run(
        ["systemctl", "list-units", "--plain", "--no-legend", "--state=active", "runas-broker@*"],
        capture_output=True,
        text=True,
    )
    return len(listing.stdout.splitlines())


def concurrent(jobs: list[tuple[str, list[str], str]]) -> list[list[Any]]:
    processes = [
        subprocess.Popen(
            ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "runas", *command],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for user, command, _stdin in jobs
    ]
    results = []
    for process, (_user, _command, stdin) in zip(processes, jobs, strict=True):
        stdout, stderr = process.communicate(stdin, timeout=60)
        results.append([process.returncode, stdout, stderr])
    return results


class IdleConnection:
    """A connection that never sends anything; what the broker sent it, and whether it
    closed it."""

    def __init__(self, user: str) -> None:
        self.sock = connect(user)
        self.received = b""
        self.closed_by_broker = False

    def poll(self) -> bool:
        """Read what arrived, without waiting; True while the broker keeps it open."""
        while not self.closed_by_broker:
            try:
                data = self.sock.recv(65536, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return True
            except OSError:
                data = b""
            self.received += data
            self.closed_by_broker = not data
        return False

    def close(self) -> None:
        self.sock.close()


def abuse_phase(password: str) -> dict[str, Any]:
    started_at = time.time()
    results = []
    for number, (name, payload, fds, answer) in enumerate(abuses(valid_request())):
        sock = connect("alice")
        try:
            failure = send(sock, payload, fds)
            said = replies(sock, answer, password)
        finally:
            sock.close()
        results.append(
            {
                "name": name,
                "answer": f"{failure} / {said}" if failure else said,
                "health": health(password, str(number)),
            }
        )
    return {"started_at": started_at, "abuses": results}


def socket_limit() -> int:
    shown = subprocess.run(
        ["systemctl", "show", "--property=MaxConnections", "--value", "runas-broker.socket"],
        capture_output=True,
        text=True,
    )
    return int(shown.stdout)


def wait_for_instances(count: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while broker_instances() != count and time.monotonic() < deadline:
        time.sleep(0.1)
    return broker_instances()


def fill_up_and_probe(password: str, baseline: int) -> tuple[int, int, list[list[Any]]]:
    """Idle connections up to the socket's MaxConnections, then clients: what do they get?

    systemd accepts and drops each connection over the limit: a client that sends its
    request before the drop reads a reset, one that sends after it writes into a closed
    socket. Some clients are slow to send (a pty to set up, a long --preserve-env list
    to put into the request), so that both happen. Returns (limit, broker processes
    held, client results); the connections are closed again.
    """
    limit = socket_limit()
    filling = [IdleConnection("test") for _ in range(limit)]
    held = wait_for_instances(baseline + limit, 5) - baseline
    many_names = ",".join(f"N{i}" for i in range(16_000))  # ~100 kB (one argv string: <128 KiB)
    modes = [[], ["--pty"], ["--preserve-env", many_names]]
    results = [
        client("alice", [*modes[i % 3], "-S", "-u", "test", "echo", "ok"], f"{password}\n")
        for i in range(LIMIT_PROBES)
    ]
    for connection in filling:
        connection.close()
    return limit, held, results


def idle_phase(password: str) -> dict[str, Any]:
    baseline = broker_instances()
    idle = [IdleConnection("test") for _ in range(IDLE_CONNECTIONS)]
    opened = time.monotonic()
    held = wait_for_instances(baseline + IDLE_CONNECTIONS, 10) - baseline
    health_while_idle = health(password, "idle")
    jobs = [("alice", ["-S", "-u", "test", "echo", f"c-{i}"], f"{password}\n") for i in range(6)]
    jobs += [("test", ["-S", "-u", "test", "echo", "denied"], "whatever\n")] * 2
    jobs += [("alice", ["-S", "-u", "test", "echo", "denied"], "wrong-password\n")] * 2
    concurrent_results = concurrent(jobs)
    # Does the broker let go of the idle connections by itself?
    deadline = opened + IDLE_WAIT
    while sum(connection.poll() for connection in idle) and time.monotonic() < deadline:
        time.sleep(0.1)
    idle_still_open = sum(connection.poll() for connection in idle)
    idle_seconds = time.monotonic() - opened
    told = sorted({c.received.decode(errors="replace").strip() for c in idle if c.received})
    for connection in idle:
        connection.close()
    wait_for_instances(baseline, 15)
    limit, at_limit, clients_at_limit = fill_up_and_probe(password, baseline)
    after_close = wait_for_instances(baseline, 15) - baseline
    return {
        "idle_connections": IDLE_CONNECTIONS,
        "broker_instances_held": held,
        "health_while_idle": health_while_idle,
        "concurrent": concurrent_results,
        "idle_still_open": idle_still_open,
        "idle_seconds": idle_seconds,
        "idle_told": told,
        "socket_limit": limit,
        "broker_instances_at_limit": at_limit,
        "clients_at_limit": clients_at_limit,
        "instances_after_close": after_close,
        "health_after_close": health(password, "after"),
    }


def main() -> None:
    spec = json.load(sys.stdin)
    phase = abuse_phase if spec["phase"] == "abuse" else idle_phase
    json.dump(phase(spec["password"]), sys.stdout)


if __name__ == "__main__":
    main()
