"""The root broker's client side (`runas --via-broker`, `-S`, or no polkit): send the
typed request with the stdio fds (a pty's peer for those that are terminals), answer the
password prompts or let pkttyagent answer polkit's, forward the pty until the broker
reports the status. Without systemd, root runs the plan itself (elevate_native).
"""

from __future__ import annotations

import asyncio
import getpass
import os
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runas_podman.broker.protocol import (
    BROKER_SOCKET,
    MAX_CONNECTIONS,
    MAX_PER_UID,
    Authentication,
    BrokerAction,
    BrokerRequest,
    LineReader,
    request_environ,
    send,
)
from runas_podman.core.elevate import Caller, ElevateRequest
from runas_podman.core.errors import RunasError
from runas_podman.core.model import Stdio
from runas_podman.run.signals import on_terminating_signals, release, set_once

if TYPE_CHECKING:
    from runas_podman.core.model import LaunchPlan
    from runas_podman.run.ptyfwd import PtyForwarder
    from runas_podman.run.session import Terminal


def _read_first_line(fd: int) -> str:
    """The password line of stdin (-S), byte by byte: the rest is the command's."""
    line = bytearray()
    while True:
        byte = os.read(fd, 1)
        if not byte or byte == b"\n":
            return line.decode(errors="replace")
        line += byte


@dataclass(frozen=True)
class BrokerCall:
    """How the client asks: which authentication, what for, and -k/-n/-S."""

    authentication: Authentication = Authentication.PASSWORD
    action: BrokerAction = BrokerAction.RUN
    interactive: bool = True
    password_from_stdin: bool = False


def run_through_broker(
    options: ElevateRequest, caller: Caller, terminal: Terminal, call: BrokerCall
) -> int:
    """broker_session() in a loop of its own, for callers that have none."""
    return asyncio.run(broker_session(options, caller, terminal, call))


async def broker_session(
    options: ElevateRequest, caller: Caller, terminal: Terminal, call: BrokerCall,
    stdio: tuple[int, int, int] = (0, 1, 2),
) -> int:  # fmt: skip
    """The client side: send the request with the caller's stdio (or a pty's peer), answer
    the password prompts (or let pkttyagent answer polkit's), then forward the pty until
    the broker reports the status. The prompts block the loop: they wait for a person."""
    from runas_podman.run.polkit_agent import close_agent, open_agent
    from runas_podman.run.ptyfwd import PtyForwarder

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.connect(BROKER_SOCKET)
    except OSError as error:
        sock.close()
        raise RunasError(
            f"the root broker does not answer at {BROKER_SOCKET} ({error.strerror}): "
            "install it with `runas-podman install-broker`"
            + (", or use polkit (without -S)" if call.password_from_stdin else "")
        ) from None
    pty = options.stdio is Stdio.PTY and call.action is BrokerAction.RUN
    forwarder = (
        PtyForwarder(terminal.tint, terminal.title, terminal.through, stdio) if pty else None
    )
    polkit = call.authentication is Authentication.POLKIT
    agent = open_agent() if polkit and call.interactive else None
    stdin_read = False
    try:
        request = BrokerRequest(
            options=options,
            environ=request_environ(options, caller.environ),
            on_tty=caller.on_tty,
            authentication=call.authentication,
            action=call.action,
            interactive=call.interactive,
        )
        try:
            send(sock, request.to_message(), forwarder.unit_stdio() if forwarder else list(stdio))
        except OSError as error:  # refused: the socket's connection limit, or a broker crash
            raise RunasError(
                f"the root broker closed the connection ({error.strerror}): it serves at "
                f"most {MAX_CONNECTIONS} clients at once, {MAX_PER_UID} of one user; try again"
            ) from None
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
                if call.password_from_stdin:
                    # Read only when asked: with a cached authentication stdin is the command's.
                    if stdin_read:  # stdin had one line, and it was not accepted
                        raise RunasError(
                            "authentication failed: the password on stdin (-S) was wrong"
                        )
                    answer, stdin_read = _read_first_line(stdio[0]), True
                elif not call.interactive:
                    raise RunasError("a password is required, and -n forbids asking")
                else:
                    try:
                        answer = getpass.getpass(str(message["prompt"]))
                    except EOFError:
                        raise RunasError("no password given") from None
                send(sock, {"password": answer})
            elif "status" in message:  # -v, -K: nothing was started
                return int(message["status"])
            elif message.get("started"):
                close_agent(agent)  # its work is done; the pty is the command's now
                agent = None
                return await _follow(sock, reader, forwarder)
    finally:
        close_agent(agent)
        if forwarder is not None:
            forwarder.stop()
        sock.close()


async def _follow(sock: socket.socket, reader: LineReader, forwarder: PtyForwarder | None) -> int:
    """Forward the pty (if any) until the broker reports the status; a signal ends it."""
    loop = asyncio.get_running_loop()
    outcome = on_terminating_signals(loop)
    if forwarder is not None:
        forwarder.start()

    def readable() -> None:
        try:
            message = reader.read()
        except (OSError, ValueError):
            message = None
        if message is None:
            set_once(outcome, -1)
        elif "status" in message:
            set_once(outcome, int(message["status"]))
        elif "error" in message and not outcome.done():
            outcome.set_exception(RunasError(str(message["error"])))

    loop.add_reader(sock, readable)
    try:
        status = await outcome
    finally:
        release(loop, outcome)
        loop.remove_reader(sock)
        if forwarder is not None:
            forwarder.stop()  # inside the loop that runs it
    if status == -1:
        raise RunasError("the broker closed the connection before the command ended")
    return status


# --- server --------------------------------------------------------------------------


# --- listen mode: a foreground broker for runit, s6, OpenRC ---------------------------


async def elevate_native(
    plan: LaunchPlan, request: ElevateRequest, caller: Caller, terminal: Terminal,
    call: BrokerCall, stdio: tuple[int, int, int] = (0, 1, 2),
) -> int:  # fmt: skip
    """`runas` without systemd: root runs the plan here (run.native); anyone else through
    a broker that listens (`runas-podman broker --listen`), or gets one line."""
    from runas_podman.run.native import Client, native_session, not_root_message

    if os.geteuid() == 0:
        client = Client(stdio=stdio, tint=terminal.tint, title=terminal.title,
                        ruser=caller.name, through=terminal.through)  # fmt: skip
        return await native_session(plan, client)
    if not os.path.exists(BROKER_SOCKET):
        raise RunasError(not_root_message("runas") + f" (none listens at {BROKER_SOCKET})")
    return await broker_session(request, caller, terminal, call, stdio)
