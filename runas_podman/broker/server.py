"""The root broker's server: one connection, from who asks to the status.

Socket-activated (`runas-broker.socket`, Accept=yes: one root process per connection;
`python -m runas_podman.broker`) or forked by `broker --listen`. Everything about the
caller comes from the kernel, never from the request: SO_PEERCRED, /proc/PID read once
and checked against SO_PEERPIDFD, the terminal from the received fds. The request goes
through the same plan builder as the CLI (run.resolve); then either polkit's
org.runas_podman.run with the plan's details (authorize: per request, never from a
temporary authorization polkit keeps per process), or wheel membership and the
caller's password through PAM; then the very plan checked runs with the client's fds.
Bounded for everyone: a deadline per request, per answer and per polkit check, and a
number of connections per uid (take_slot).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import grp
import json
import os
import pwd
import signal
import socket
import struct
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from runas_podman.broker.authcache import (
    POLKIT_KEEP_SECONDS,
    AuthCache,
    CacheSettings,
    binding_of,
    load_settings,
)
from runas_podman.broker.protocol import (
    MAX_PER_UID,
    Authentication,
    BrokerAction,
    BrokerRequest,
    Deadline,
    LineReader,
    send,
)
from runas_podman.core.elevate import (
    DETAIL_KEYS,
    PAM_SERVICE,
    RUN_ACTION,
    Caller,
    authorization_details,
)
from runas_podman.core.errors import RunasError, one_line
from runas_podman.core.model import LaunchPlan, Stdio
from runas_podman.run.signals import set_once

if TYPE_CHECKING:
    pass

ADMIN_GROUP = "wheel"
TRIES = 3
# No connection holds a broker process (and a MaxConnections slot) for long unasked:
# the whole request must arrive within REQUEST_TIMEOUT of the connection (a deadline,
# not a limit per recv), each password answer within PASSWORD_TIMEOUT (a person typing),
# a polkit check within POLKIT_TIMEOUT (its agent asks a person); and one uid holds at
# most MAX_PER_UID connections at once (broker slots), so nobody locks others out.
REQUEST_TIMEOUT = 10.0
PASSWORD_TIMEOUT = 60.0
POLKIT_TIMEOUT = 120.0
SLOTS_DIR = "/run/runas-podman/broker-slots"


# --- client -------------------------------------------------------------------------


# --- server --------------------------------------------------------------------------


def peer_credentials(conn: socket.socket) -> tuple[int, int, int]:
    data = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", data)
    return pid, uid, gid


SO_PEERPIDFD = getattr(socket, "SO_PEERPIDFD", 77)  # Linux >= 6.5


def peer_pidfd(conn: socket.socket) -> int:
    """A pidfd of the peer (SO_PEERPIDFD), or -1 where the kernel has none (< 6.5);
    RunasError when the peer is gone already (its pid may be another process's now)."""
    try:
        return int(conn.getsockopt(socket.SOL_SOCKET, SO_PEERPIDFD))
    except OSError as error:
        if error.errno in (errno.ENOPROTOOPT, errno.EINVAL):
            return -1
        raise RunasError("your process ended before its request was read") from None


def check_same_process(pidfd: int) -> None:
    """After everything about the caller was read from /proc/PID (its directory, slice,
    session, terminal, start time for polkit): the process the pidfd pins is still
    there, so PID was not reused by another process meanwhile."""
    if pidfd < 0:
        return
    try:
        signal.pidfd_send_signal(pidfd, 0)
    except ProcessLookupError:
        raise RunasError("your process ended before its request was decided") from None


def in_admin_group(name: str, gid: int) -> bool:
    try:
        admin = grp.getgrnam(ADMIN_GROUP).gr_gid
    except KeyError:
        return False
    return admin in os.getgrouplist(name, gid)


def take_slot(uid: int, directory: str = SLOTS_DIR) -> int:
    """One of UID's MAX_PER_UID broker slots, held (flock) until this process ends or
    closes the fd it returns; RunasError when all are held. Shared by every broker
    process, socket-activated or forked by `broker --listen`."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    for slot in range(MAX_PER_UID):
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        fd = os.open(os.path.join(directory, f"{uid}.{slot}"), flags, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return fd
    raise RunasError(
        f"you have {MAX_PER_UID} connections to the broker open already (its limit per "
        "user): let one end, then try again"
    )


def client_terminal(fds: Sequence[int], uid: int) -> str | None:
    """The terminal among the received stdio fds (a pty session's), by the kernel's
    name for it, never a name the client sent; refused unless it is the caller's own."""
    for fd in fds:
        if os.isatty(fd):
            owner = os.fstat(fd).st_uid
            if owner != uid:
                raise RunasError(
                    f"the terminal you passed belongs to uid {owner}, not to you: run runas "
                    "on a terminal of your own, or with --pipe"
                )
            return os.ttyname(fd)
    return None


def authenticate(conn: socket.socket, reader: LineReader, name: str) -> bool:
    import pam

    checker = pam.pam()
    for attempt in range(TRIES):
        prefix = "" if attempt == 0 else "Sorry, try again.\n"
        send(conn, {"prompt": f"{prefix}[runas] password for {name}: "})
        answer = reader.read(Deadline(PASSWORD_TIMEOUT))
        if answer is None:
            return False
        if checker.authenticate(name, str(answer.get("password", "")), service=PAM_SERVICE):
            return True
    return False


def serve(conn: socket.socket) -> None:
    """One connection: who asks (peer credentials), the typed request, authentication,
    then the very plan the request resolves to, run with the client's fds."""
    deadline = Deadline(REQUEST_TIMEOUT)  # from the connection to the whole request
    pid, uid, gid = peer_credentials(conn)
    reader = LineReader(conn)
    slot = pidfd = -1
    try:
        pidfd = peer_pidfd(conn)
        slot = take_slot(uid)
        message = reader.read(deadline)
        if message is None:
            return
        request = BrokerRequest.from_message(message)
        if len(reader.fds) != 3:
            raise RunasError("bad broker request: it must carry 3 fds (stdin, stdout, stderr)")
        name = pwd.getpwuid(uid).pw_name
        if request.action is BrokerAction.FORGET:
            forgotten = forget(uid)
            log(f"{name} (uid {uid}) forgot its cached authentications"
                + ("" if forgotten else " (there were none)"))  # fmt: skip
            send(conn, {"status": 0})
            return
        if request.authentication is Authentication.POLKIT:
            if request.action is BrokerAction.VALIDATE:
                if uid != 0:
                    authorize(pid, uid, request, None)
                send(conn, {"status": 0})
                return
            plan = _plan(request, pid, uid, gid, name)
            tty_path = client_terminal(reader.fds, uid) if plan.stdio is Stdio.PTY else None
            if uid != 0:
                authorize(pid, uid, request, plan)
        else:
            if uid != 0:
                password_authentication(conn, reader, request, pid, uid, gid, name)
            if request.action is BrokerAction.VALIDATE:
                send(conn, {"status": 0})
                return
            plan = _plan(request, pid, uid, gid, name)
            tty_path = client_terminal(reader.fds, uid) if plan.stdio is Stdio.PTY else None
        check_same_process(pidfd)
        conn.settimeout(None)
        status = _run_plan(conn, reader.fds, plan, tty_path, name)
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
            send(conn, {"error": one_line(error.message)})
    except Exception as error:  # BusCallError, a bug: say so, in one line
        log(f"failed for uid {uid}: {type(error).__name__}: {error}")
        with contextlib.suppress(OSError):
            send(conn, {"error": one_line(f"the broker failed: {error}")})
    finally:
        for fd in reader.fds:
            os.close(fd)
        for fd in (slot, pidfd):
            if fd >= 0:
                os.close(fd)


def _plan(request: BrokerRequest, pid: int, uid: int, gid: int, name: str) -> LaunchPlan:
    """The plan of the request, with the caller as the kernel names it (SO_PEERCRED)."""
    from runas_podman.host.procfs import slice_of
    from runas_podman.run.resolve import resolve_elevation

    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        cwd = "/"
    caller = Caller(
        name=name, uid=uid, gid=gid, cwd=cwd, environ=request.environ,
        slice=slice_of(pid), hostname=socket.gethostname(), on_tty=request.on_tty,
    )  # fmt: skip
    plan, _hue = resolve_elevation(request.options, caller)
    return plan


def forget(uid: int) -> bool:
    """-k, -K: the broker's entries of UID, password and polkit ones; whether any were."""
    password = AuthCache(CacheSettings()).forget(uid)
    return AuthCache(CacheSettings(), kind="polkit").forget(uid) or password


def details_digest(details: Mapping[str, str], random_unit: bool = True) -> str:
    """What the broker's polkit cache entry is bound to: the exact details checked, but
    for the unit's name when the broker chose it at random (the caller chose nothing)."""
    import hashlib

    bound = {key: value for key, value in details.items() if key != "unit" or not random_unit}
    return hashlib.sha256(json.dumps(bound, sort_keys=True).encode()).hexdigest()


def authorize(pid: int, uid: int, request: BrokerRequest, plan: LaunchPlan | None) -> None:
    """polkit's org.runas_podman.run for the client process, with this plan's details:
    the plan checked is the plan started (nothing is resolved again). No plan: -v, which
    authenticates for no command in particular.

    Each check is for this request alone. polkit answers from a temporary authorization
    (kept after an auth_*_keep challenge) even where its rules now say no, and such an
    authorization names a process and an action, not a command: an answer that came
    from one (it carries polkit.temporary_authorization_id) is never accepted. (polkit
    lets no one but the subject's own session revoke it, so the broker cannot; the
    client process it names makes one request and ends.) What
    lets a later request skip the prompt is the broker's own entry, bound to the
    caller's uid, session and terminal and to these exact details (authcache), and only
    while polkit, asked without interaction, still answers "a challenge, kept after
    success": a rule that says no, or asks every time, still decides.
    """
    from runas_podman.bus import polkit

    if plan is None:
        details = {key: "" for key in DETAIL_KEYS} | {"command_line": "runas -v",
                                                      "user": "root"}  # fmt: skip
    else:
        details = authorization_details(request.options, plan)
    digest = details_digest(details, request.options.unit is None)
    binding = binding_of(pid, uid)
    kept = AuthCache(CacheSettings(enabled=True, timeout=POLKIT_KEEP_SECONDS), kind="polkit")
    if plan is None:
        kept.forget(uid)  # -v starts a fresh period

    async def check() -> tuple[polkit.Authorization, str]:
        bus = await polkit.connect()
        try:
            subject = polkit.Subject.process(pid, uid)
            quiet = await polkit.check_authorization(
                bus, subject, RUN_ACTION, details, False, timeout=REQUEST_TIMEOUT
            )
            if polkit.from_kept_authorization(quiet):
                return quiet, "temporary"
            if quiet.authorized or not quiet.challenge:
                return quiet, "rule"
            if quiet.retained and binding is not None and kept.valid(binding, digest):
                return quiet, "kept"
            if not request.interactive:
                return quiet, "rule"
            result = await polkit.check_authorization(
                bus, subject, RUN_ACTION, details, True, timeout=POLKIT_TIMEOUT
            )
            # Another request of the same process may have been authenticated between
            # the two checks: polkit then answers from what it kept, without asking.
            return result, "temporary" if polkit.from_kept_authorization(result) else "asked"
        finally:
            bus.disconnect()

    result, how = asyncio.run(check())
    what = f"'{details['command_line']}' as {details['user']}"
    if details["extras"]:
        what += " with " + ", ".join(details["extras"].splitlines())
    if how == "temporary":
        raise RunasError(
            f"not running {what}: polkit answered from an authorization it keeps for your "
            "process, which names no command; each runas process asks once (start a new one)"
        )
    if how == "kept":
        log(f"uid {uid}: the broker's kept authorization (session {binding and binding.session}) "
            f"for {what}")  # fmt: skip
        return
    if result.authorized:
        if how == "asked" and result.retained and binding is not None:
            kept.remember(binding, digest)
        log(f"uid {uid}: polkit authorized {what}")
        return
    if result.challenge and not request.interactive:
        raise RunasError(f"authentication is required to run {what}, and -n forbids asking")
    if result.dismissed or result.challenge:
        raise RunasError(f"authentication failed or was dismissed: not running {what}")
    raise RunasError(f"not authorized to run {what} (polkit action {RUN_ACTION})")


def password_authentication(
    conn: socket.socket, reader: LineReader, request: BrokerRequest,
    pid: int, uid: int, gid: int, name: str,
) -> None:  # fmt: skip
    """wheel membership, then the caller's password, unless the broker's own cache (off by
    default) holds a fresh authentication of this uid in this session on this terminal."""
    if not in_admin_group(name, gid):
        raise RunasError(
            f"{name} is not in group {ADMIN_GROUP}: the wheel+PAM path is for its members"
        )
    cache = AuthCache(load_settings())
    binding = binding_of(pid, uid)
    if request.action is BrokerAction.RUN and binding is not None and cache.valid(binding):
        log(f"{name} (uid {uid}): cached authentication (session {binding.session})")
        return
    if not authenticate(conn, reader, name):
        raise RunasError(f"authentication failed for {name}")
    if binding is not None:
        cache.remember(binding)


def _client_watch(conn: socket.socket) -> Callable[[], asyncio.Future[int]]:
    """A watch that is done when the client goes away (it sends nothing more once its
    request is answered, so data or EOF is that): 128+SIGHUP, as a hung-up terminal."""

    def watch_client() -> asyncio.Future[int]:
        loop = asyncio.get_running_loop()
        gone: asyncio.Future[int] = loop.create_future()

        def readable() -> None:
            with contextlib.suppress(OSError):
                if conn.recv(4096):
                    return
            loop.remove_reader(conn)
            set_once(gone, 128 + signal.SIGHUP)

        loop.add_reader(conn, readable)
        gone.add_done_callback(lambda _: loop.remove_reader(conn))
        return gone

    return watch_client


def _started(conn: socket.socket) -> Callable[[], None]:
    def started() -> None:
        with contextlib.suppress(OSError):  # a client gone by now is noticed by the watch
            send(conn, {"started": True})

    return started


def _run_plan(
    conn: socket.socket, fds: list[int], plan: LaunchPlan, tty_path: str | None, name: str
) -> int:
    """The plan through systemd where it is PID 1, else natively in this (root) process
    (the broker runs under `runas-podman broker --listen`); either way with the client's
    fds, and the client going away stops the command."""
    from runas_podman.host.backend import systemd_running
    from runas_podman.run.remote import Remote

    remote = Remote((fds[0], fds[1], fds[2]), tty_path, _client_watch(conn), _started(conn))
    if systemd_running():
        from runas_podman.run.session import run_session

        return run_session(plan, remote=remote)
    from runas_podman.run.native import Client, run_native

    return run_native(plan, Client(remote=remote, ruser=name))


# --- listen mode: a foreground broker for runit, s6, OpenRC ---------------------------


def log(line: str) -> None:
    """One line per request in the journal (the service's stderr), escaped: what a
    client sent never reaches a reader's terminal raw."""
    print(f"runas-broker: {one_line(line)}", file=sys.stderr, flush=True)


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
