"""The one session runner: a plan, a connection to its manager, and what the client adds
around the launch (a polkit agent, a pty forwarder). Used by `runas-podman`, by `runas`
and by the root broker alike; it is the only place that calls asyncio.run for a launch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import NamedTuple

from runas_podman.bus.systemd_bus import SystemdBus, connected
from runas_podman.core.model import LaunchPlan, Manager, Stdio
from runas_podman.run.launcher import run_plan
from runas_podman.run.remote import Remote


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
    follow: str | None = None  # -v: the unit's journal on stdout, in this output mode


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
    """session() in a loop of its own, for callers that have none."""
    return asyncio.run(
        session(plan, interactive=interactive, terminal=terminal, remote=remote, report=report)
    )


async def session(
    plan: LaunchPlan,
    *,
    stdio: tuple[int, int, int] = (0, 1, 2),
    interactive: bool = False,
    terminal: Terminal | None = None,
    remote: Remote | None = None,
    report: Report | None = None,
) -> int:
    """Run `plan` to its end and return the status to exit with.

    Local: the unit gets `stdio` (the caller's fds), or a pty forwarded to them
    (plan.stdio), and with `interactive` a polkit agent on the terminal until systemd
    has answered. `remote`: the unit gets the remote client's fds instead. Re-entrant:
    any number of sessions may run in one loop.
    """
    from runas_podman.run.polkit_agent import close_agent, open_agent

    terminal = terminal or Terminal()
    report = report or Report()
    async with connected(connect_manager(plan)) as bus:
        if remote is not None:
            return await run_plan(
                plan, bus, stdio_fds=remote.stdio_fds, tty_path=remote.tty_path,
                on_started=remote.on_started, stop_when=remote.watch_client(),
            )  # fmt: skip
        agent = open_agent() if interactive else None
        if plan.timer:
            from runas_podman.run.timers import start_timer

            try:
                return await start_timer(
                    plan, bus, interactive=interactive, json_mode=report.json,
                    note=report.summary, report_fds=(stdio[1], stdio[2]),
                )  # fmt: skip
            finally:
                close_agent(agent)
        forwarder = None
        if plan.stdio is Stdio.PTY:
            from runas_podman.run.ptyfwd import PtyForwarder

            forwarder = PtyForwarder(terminal.tint, terminal.title, terminal.through, stdio)

        def started() -> None:
            close_agent(agent)  # authorization is over: the terminal is ours again
            if forwarder is not None:
                forwarder.close_peer()
                forwarder.start()

        try:
            return await run_plan(
                plan, bus,
                stdio_fds=stdio if forwarder is None else forwarder.unit_stdio(),
                tty_path=None if forwarder is None else forwarder.path,
                interactive=interactive, on_started=started, json=report.json,
                summary=report.summary, report_fds=(stdio[1], stdio[2]), follow=report.follow,
            )  # fmt: skip
        finally:
            if forwarder is not None:
                forwarder.stop()
            close_agent(agent)


async def manager_version(plan: LaunchPlan) -> tuple[int | None, str | None]:
    """The systemd version a `systemd-run` line for `plan` is rendered for, and a note when
    it is not the manager's own: the manager's Version over the bus, else the local
    systemd-run's, else the newest (None)."""
    import contextlib
    import shutil

    from runas_podman.core.errors import RunasError
    from runas_podman.core.model import parse_systemd_version

    with contextlib.suppress(RunasError, OSError):
        async with connected(connect_manager(plan)) as bus:
            return parse_systemd_version(await bus.manager_version()), None
    systemd_run = shutil.which("systemd-run")
    if systemd_run is not None:
        with contextlib.suppress(OSError, asyncio.TimeoutError):
            process = await asyncio.create_subprocess_exec(
                systemd_run, "--version", stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            output, _ = await asyncio.wait_for(process.communicate(), 10)
            version = parse_systemd_version(output.decode(errors="replace"))
            if version:
                return version, (
                    f"the service manager did not answer: rendered for the local "
                    f"systemd-run {version}"
                )
    return (
        None,
        "neither the service manager nor systemd-run answered: rendered for the newest systemd",
    )
