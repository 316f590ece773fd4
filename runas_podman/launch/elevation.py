"""`runas`: an elevation request → authorization → a fresh unit (or -k/-K/-v).

Reads top to bottom: stdio chosen, the plan made here (every usage error before anything
starts), then the route: root or polkit straight to systemd, the root broker (wheel+PAM,
per-command polkit), or natively where systemd is not PID 1.
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING

from runas_podman.core.elevate import (
    MANAGE_UNITS_ACTION,
    PAM_FILE,
    RUN_ACTION,
    Caller,
    ElevateRequest,
    choose_stdio,
    decorations,
)
from runas_podman.core.errors import RunasError, UsageError
from runas_podman.core.model import through_pty
from runas_podman.launch.request import (
    CachedAction,
    CallerStdio,
    ElevationRequest,
    Route,
)

if TYPE_CHECKING:
    from runas_podman.broker.client import BrokerCall
    from runas_podman.broker.protocol import BrokerAction


async def launch_elevation(elevation: ElevationRequest, stdio: CallerStdio) -> int:
    stdio_mode = choose_stdio(elevation.pty, elevation.pipe, *stdio.ttys)
    elevation = dataclasses.replace(
        elevation, request=dataclasses.replace(elevation.request, stdio=stdio_mode)
    )
    if elevation.cached is not None:
        return await cached_authorization(elevation, stdio)
    return await elevate(elevation, stdio)


def broker_call(
    route: Route, caller_uid: int, action: BrokerAction | None = None
) -> BrokerCall | None:
    """The broker call for this route, or None for the direct systemd+polkit path."""
    if caller_uid == 0 and not route.via_broker:
        return None  # root needs nobody's authorization (nor the broker module)
    from runas_podman.broker.client import BrokerCall
    from runas_podman.broker.protocol import Authentication, BrokerAction
    from runas_podman.bus.polkit import polkit_installed

    if route.stdin_password or not polkit_installed():
        authentication = Authentication.PASSWORD
    elif route.via_broker:
        authentication = Authentication.POLKIT
    else:
        return None
    return BrokerCall(
        authentication=authentication,
        interactive=route.interactive,
        password_from_stdin=route.stdin_password,
        action=action or BrokerAction.RUN,
    )


async def cached_authorization(elevation: ElevationRequest, stdio: CallerStdio) -> int:
    """-k, -K, -v: forget the caller's cached authorizations (polkit's temporary ones for
    runas's actions, and the broker's own), or authenticate without running anything."""
    from runas_podman.broker.protocol import BrokerAction

    request, caller, cached = elevation.request, elevation.caller, elevation.cached
    if request.command and cached is not CachedAction.RESET:
        assert cached is not None
        raise UsageError(
            f"{cached.value} runs nothing: drop the command, or use -k to forget first"
        )
    if cached in (CachedAction.RESET, CachedAction.REMOVE):
        await forget_cached_authorizations(request, caller)
        if cached is CachedAction.REMOVE or not request.command:
            return 0
        return await elevate(elevation, stdio)
    if caller.uid == 0:
        return 0  # -v: root is never asked
    call = broker_call(elevation.route, caller.uid, action=BrokerAction.VALIDATE)
    if call is not None:
        return await _broker(request, caller, call, stdio)
    return await validate_with_polkit(MANAGE_UNITS_ACTION, elevation.route, caller)


async def forget_cached_authorizations(request: ElevateRequest, caller: Caller) -> None:
    """polkit's temporary authorizations of this session for runas's two actions, then the
    broker's cache entries of this uid (if a broker is installed)."""
    from runas_podman.broker.client import BrokerCall
    from runas_podman.broker.protocol import BROKER_SOCKET, BrokerAction
    from runas_podman.bus import polkit
    from runas_podman.bus.polkit import polkit_installed

    if caller.uid == 0:
        return  # root is never asked, so nothing is cached for it
    if polkit_installed():
        await polkit.forget(frozenset({MANAGE_UNITS_ACTION, RUN_ACTION}))
    if os.path.exists(BROKER_SOCKET):
        await _broker(request, caller, BrokerCall(action=BrokerAction.FORGET), CallerStdio())


async def _broker(
    request: ElevateRequest, caller: Caller, call: BrokerCall, stdio: CallerStdio
) -> int:
    from runas_podman.broker.client import broker_session
    from runas_podman.run.session import Terminal

    caller = dataclasses.replace(caller, on_tty=False)
    return await broker_session(request, caller, Terminal(None, None), call, stdio.fds)


async def validate_with_polkit(action: str, route: Route, caller: Caller) -> int:
    """-v on systemd's own path: forget this session's temporary authorization of ACTION
    (a session-wide agent's), then ask polkit for it as systemd would (pkttyagent prompts).
    What polkit keeps after pkttyagent's answer lasts as long as this process (polkit keeps
    per process): run0 -v has the same limit."""
    from runas_podman.bus import polkit
    from runas_podman.run.polkit_agent import close_agent, open_agent

    agent = open_agent() if route.interactive else None
    try:
        await polkit.forget(frozenset({action}))
        bus = await polkit.connect()
        try:
            subject = polkit.Subject.process(os.getpid(), caller.uid)
            result = await polkit.check_authorization(bus, subject, action, {},
                                                      route.interactive)  # fmt: skip
        finally:
            bus.disconnect()
    finally:
        close_agent(agent)
    if result.authorized:
        return 0
    if result.challenge and not route.interactive:
        raise RunasError(f"authentication is required for {action}, and -n forbids asking")
    raise RunasError(f"not authorized: polkit refused {action}")


async def elevate(elevation: ElevationRequest, stdio: CallerStdio) -> int:
    """Plan the request here (so every usage error is found before anything starts),
    then run it: directly through systemd (root, polkit) or through the root broker."""
    from runas_podman.host import lookup
    from runas_podman.launch.service import dry_run, native_chosen
    from runas_podman.run.resolve import resolve_elevation
    from runas_podman.run.session import Terminal, session

    request, route, prog = elevation.request, elevation.route, elevation.prog
    caller = dataclasses.replace(elevation.caller, on_tty=any(stdio.ttys))
    plan, hue = resolve_elevation(request, caller)
    if request.empower and (elevation.dry_run or stdio.ttys[2]):
        # Told to a person (or with --dry-run), never into a command's captured stderr.
        from runas_podman.manage.empower import GROUP, has_rule, missing_note

        note = missing_note(lookup.group_exists(GROUP), has_rule())
        if note is not None:
            stdio.err(f"{prog}: note: {note}")
    if elevation.dry_run:
        return await dry_run(plan, prog, stdio)
    if not os.path.exists(PAM_FILE):
        raise RunasError(
            f"the PAM service file {PAM_FILE} is missing: install it with "
            "`runas-podman install-pam` (see runas --help)"
        )
    tint, title = decorations(
        stdio.ttys[1], caller.environ, request.background, hue, plan.argv, caller.hostname
    )
    forced_pty = elevation.pty and not elevation.pipe
    terminal = Terminal(tint, title, through_pty(forced_pty, stdio.ttys))
    if native_chosen(route.backend, prog, stdio):
        from runas_podman.broker.client import BrokerCall, elevate_native

        native_call = BrokerCall(interactive=route.interactive,
                                 password_from_stdin=route.stdin_password)  # fmt: skip
        return await elevate_native(plan, request, caller, terminal, native_call, stdio.fds)
    call = broker_call(route, caller.uid)
    if call is not None:
        from runas_podman.broker.client import broker_session

        return await broker_session(request, caller, terminal, call, stdio.fds)
    interactive = route.interactive and caller.uid != 0
    return await session(plan, stdio=stdio.fds, interactive=interactive, terminal=terminal)
