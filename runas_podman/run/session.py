"""The one session runner: a plan, a connection to its manager, and what the client adds
around the launch (a polkit agent, a pty forwarder). Used by `runas-podman`, by `runas`
and by the root broker alike; it is the only place that calls asyncio.run for a launch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import NamedTuple

from runas_podman.bus.systemd_bus import SystemdBus, connected
from runas_podman.core.model import LaunchPlan, Manager, Stdio
from runas_podman.run.launcher import run_plan


class Terminal(NamedTuple):
    """How a pty session looks on the caller's terminal (elevate.decorations), and which
    of the caller's stdio go through the pty (ptyfwd.through_pty)."""

    tint: str | None = None
    title: str | None = None
    through: tuple[bool, bool, bool] = (True, True, True)


class Report(NamedTuple):
    """What the client prints about the unit besides the command's output."""

    json: str | None = None  # "short" or "pretty": unit name and invocation ID once started
    summary: bool = False  # one line on stderr when the command ended (run time, CPU, ...)


class Remote(NamedTuple):
    """A session for a client elsewhere (the broker's caller): its stdio fds, its pty, and
    a watch the runner starts in its loop; the future it returns ends the session."""

    stdio_fds: tuple[int, int, int]
    tty_path: str | None
    watch_client: Callable[[], asyncio.Future[int]]
    on_started: Callable[[], None]


def connect_manager(plan: LaunchPlan) -> Awaitable[SystemdBus]:
    """A connection to the manager that runs the plan's unit: PID 1, or the user's own."""
    if plan.manager is Manager.USER:
        from runas_podman.bus.user_bus import connect_user_manager

        return connect_user_manager(plan.user)
    return SystemdBus.connect_system()


def run_session(
    plan: LaunchPlan,
    *,
    interactive: bool = False,
    terminal: Terminal | None = None,
    remote: Remote | None = None,
    report: Report | None = None,
) -> int:
    """Run `plan` to its end and return the status to exit with.

    Local: the unit gets the caller's stdio, or a pty forwarded to the caller's terminal
    (plan.stdio), and with `interactive` a polkit agent on that terminal until systemd
    has answered. `remote`: the unit gets the remote client's fds instead.
    """
    return asyncio.run(
        _session(plan, interactive, terminal or Terminal(), remote, report or Report())
    )


async def _session(
    plan: LaunchPlan,
    interactive: bool,
    terminal: Terminal,
    remote: Remote | None,
    report: Report,
) -> int:
    from runas_podman.run.polkit_agent import close_agent, open_agent

    async with connected(connect_manager(plan)) as bus:
        if remote is not None:
            return await run_plan(
                plan, bus, stdio_fds=remote.stdio_fds, tty_path=remote.tty_path,
                on_started=remote.on_started, stop_when=remote.watch_client(),
            )  # fmt: skip
        agent = open_agent() if interactive else None
        forwarder = None
        if plan.stdio is Stdio.PTY:
            from runas_podman.run.ptyfwd import PtyForwarder

            forwarder = PtyForwarder(terminal.tint, terminal.title, terminal.through)

        def started() -> None:
            close_agent(agent)  # authorization is over: the terminal is ours again
            if forwarder is not None:
                forwarder.close_peer()
                forwarder.start()

        try:
            if forwarder is None:
                return await run_plan(
                    plan, bus, interactive=interactive, on_started=started,
                    json=report.json, summary=report.summary,
                )  # fmt: skip
            return await run_plan(
                plan, bus, stdio_fds=forwarder.unit_stdio(), tty_path=forwarder.path,
                interactive=interactive, on_started=started, json=report.json,
                summary=report.summary,
            )  # fmt: skip
        finally:
            if forwarder is not None:
                forwarder.stop()
            close_agent(agent)


def manager_version(plan: LaunchPlan) -> tuple[int | None, str | None]:
    """The systemd version a `systemd-run` line for `plan` is rendered for, and a note when
    it is not the manager's own: the manager's Version over the bus, else the local
    systemd-run's, else the newest (None)."""
    import contextlib
    import shutil
    import subprocess

    from runas_podman.core.errors import RunasError
    from runas_podman.core.model import parse_systemd_version

    async def ask() -> int:
        async with connected(connect_manager(plan)) as bus:
            return parse_systemd_version(await bus.manager_version())

    with contextlib.suppress(RunasError, OSError):
        return asyncio.run(ask()), None
    systemd_run = shutil.which("systemd-run")
    if systemd_run is not None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            text = subprocess.run(
                [systemd_run, "--version"], capture_output=True, text=True, timeout=10
            ).stdout
            version = parse_systemd_version(text)
            if version:
                return version, (
                    f"the service manager did not answer: rendered for the local "
                    f"systemd-run {version}"
                )
    return (
        None,
        "neither the service manager nor systemd-run answered: rendered for the newest systemd",
    )
