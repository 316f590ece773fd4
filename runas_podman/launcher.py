"""Run a LaunchPlan on a service manager and wait for it, the way `systemd-run --wait` does.

Beyond systemd-run: the unit is bound to the client's life. A small sentinel child
(killed by the kernel when the client dies, PR_SET_PDEATHSIG) sits in a transient
scope, and the service has BindsTo=/After= on that scope: if the client is SIGKILLed,
the scope empties, stops, and systemd stops the service with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import stat
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import EXIT_CANNOT_EXECUTE, RunasError
from .plan import MAX_FDS_PER_MESSAGE, LaunchPlan, lifeline_scope_name
from .systemd_bus import (
    SERVICE,
    BusCallError,
    FdProperty,
    SystemdBus,
    unit_object_path,
)
from .unitprops import UnitProperty

PR_SET_PDEATHSIG = 1
CLD_EXITED, CLD_KILLED, CLD_DUMPED = 1, 2, 3
# systemd's EXIT_* codes for failures before the command ran (systemd.exec(5)).
SETUP_FAILURES = {
    200: "changing to the working directory", 203: "executing the command",
    216: "setting the group", 217: "setting the user", 224: "setting up the PAM session",
}  # fmt: skip
TERMINATING_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass(frozen=True)
class Outcome:
    """How the unit's main process ended, as a shell would report it."""

    code: int  # CLD_* from ExecMainCode
    status: int  # exit status or signal number
    result: str

    @property
    def exit_status(self) -> int:
        if self.code == CLD_EXITED:
            return self.status
        return 128 + self.status


class Lifeline:
    """A sentinel process in its own scope; the service is bound to that scope."""

    def __init__(self, unit: str) -> None:
        self.scope = lifeline_scope_name(unit)
        self.pid = _spawn_sentinel()
        self.started = False  # only a scope this client started is ours to stop

    def properties(self) -> list[UnitProperty]:
        return [
            UnitProperty("Description", "s", f"runas-podman client lifeline of {self.scope}"),
            UnitProperty("PIDs", "au", [self.pid]),
            UnitProperty("CollectMode", "s", "inactive-or-failed"),
        ]

    def reap(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


def _spawn_sentinel() -> int:
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if os.getppid() != parent:
                os._exit(0)
            os.setsid()  # out of the terminal's process group: Ctrl-C is the client's to handle
            os.closerange(0, 1 << 16)  # holds no pipe of the caller open
            for signum in TERMINATING_SIGNALS:
                signal.signal(signum, signal.SIG_DFL)
            while True:
                signal.pause()
        finally:
            os._exit(0)
    return pid


def stdio_fds() -> tuple[int, int, int]:
    """The caller's fds 0, 1, 2; any that is closed is replaced by /dev/null."""
    fds = []
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
            fds.append(fd)
        except OSError:
            fds.append(os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC))
    return fds[0], fds[1], fds[2]


def check_fd_count(extra_fds: Sequence[tuple[int, str]]) -> None:
    total = 3 + len(extra_fds)
    if total > MAX_FDS_PER_MESSAGE:
        raise RunasError(
            f"too many file descriptors: {total} (3 for stdio + {len(extra_fds)} passed), "
            f"but one D-Bus message carries at most {MAX_FDS_PER_MESSAGE}; pass fewer"
        )
    for fd, _name in extra_fds:
        try:
            stat.S_IFMT(os.fstat(fd).st_mode)
        except OSError:
            raise RunasError(
                f"fd {fd} is not open in this process: open it (e.g. 3<file)"
            ) from None


async def run_plan(
    plan: LaunchPlan,
    bus: SystemdBus,
    *,
    extra_fds: Sequence[tuple[int, str]] = (),
    interactive: bool = False,
) -> int:
    """Start the plan's unit, wait for it, return the exit status to leave with."""
    check_fd_count(extra_fds)
    loop = asyncio.get_running_loop()
    interrupted: asyncio.Future[int] = loop.create_future()
    for signum in TERMINATING_SIGNALS:
        loop.add_signal_handler(signum, _set_once, interrupted, int(signum))
    lifeline = Lifeline(plan.unit) if plan.lifeline else None
    try:
        # Pipelined: the watches are in force before the service start is sent.
        watching_unit = asyncio.ensure_future(bus.watch_unit(plan.unit))
        setup = [watching_unit, bus.watch_jobs()]
        if lifeline is not None:
            setup.append(_start_lifeline(bus, lifeline, plan.unit, interactive))
        await asyncio.gather(*setup)
        changed = watching_unit.result()
        properties = plan.unit_properties()
        if lifeline is not None:
            properties += [
                UnitProperty("BindsTo", "as", [lifeline.scope]),
                UnitProperty("After", "as", [lifeline.scope]),
            ]
        stdin, stdout, stderr = stdio_fds()
        fd_properties = [
            FdProperty("StandardInputFileDescriptor", stdin),
            FdProperty("StandardOutputFileDescriptor", stdout),
            FdProperty("StandardErrorFileDescriptor", stderr),
        ]
        job = await _start(
            bus, plan.unit, properties, fd_properties, extra_fds, interactive=interactive
        )
        waiting = asyncio.ensure_future(_wait_for_unit(bus, plan, job, changed))
        await asyncio.wait([waiting, interrupted], return_when=asyncio.FIRST_COMPLETED)
        if waiting.done():
            return waiting.result()
        waiting.cancel()
        # The client was told to stop: stop the unit with it, as a shell's child would be.
        await _stop_and_wait(bus, plan.unit)
        return 128 + interrupted.result()
    finally:
        for signum in TERMINATING_SIGNALS:
            loop.remove_signal_handler(signum)
        if lifeline is not None:
            await _stop_lifeline(bus, lifeline)


async def _start_lifeline(
    bus: SystemdBus, lifeline: Lifeline, unit: str, interactive: bool
) -> None:
    await _start(bus, lifeline.scope, lifeline.properties(), interactive=interactive, for_unit=unit)
    lifeline.started = True


def _set_once(future: asyncio.Future[int], value: int) -> None:
    if not future.done():
        future.set_result(value)


async def _start(
    bus: SystemdBus,
    unit: str,
    properties: list[UnitProperty],
    fd_properties: Sequence[FdProperty] = (),
    extra_fds: Sequence[tuple[int, str]] = (),
    *,
    interactive: bool,
    for_unit: str | None = None,
) -> str:
    """Start one transient unit; errors name `for_unit` (the service a helper unit serves)."""
    try:
        return await bus.start_transient_unit(
            unit, properties, fd_properties, extra_fds, interactive=interactive
        )
    except BusCallError as error:
        raise _start_error(error, for_unit or unit, bus.description) from None


def _start_error(error: BusCallError, unit: str, manager: str) -> RunasError:
    if error.name == "org.freedesktop.systemd1.UnitExists":
        return RunasError(
            f"unit {unit} already exists: choose another --unit, or stop it (systemctl stop {unit})"
        )
    if error.name in (
        "org.freedesktop.DBus.Error.AccessDenied",
        "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired",
    ):
        return RunasError(
            f"access denied: starting {unit} on {manager} needs root or a polkit rule granting "
            "org.freedesktop.systemd1.manage-units"
        )
    return RunasError(f"systemd refused to start {unit}: {error.text or error.name}")


async def _wait_for_unit(
    bus: SystemdBus, plan: LaunchPlan, job: str, changed: asyncio.Event
) -> int:
    done = await bus.wait_job(job)
    if done.result != "done":
        await _raise_start_failure(bus, plan, done.result)
    while True:
        changed.clear()
        if await bus.unit_state(plan.unit) in ("inactive", "failed"):
            break
        await changed.wait()
    return (await _outcome(bus, plan.unit)).exit_status


async def _outcome(bus: SystemdBus, unit: str) -> Outcome:
    service = await bus.get_properties(unit_object_path(unit), SERVICE)
    return Outcome(
        int(service["ExecMainCode"]), int(service["ExecMainStatus"]), str(service["Result"])
    )


async def _raise_start_failure(bus: SystemdBus, plan: LaunchPlan, job_result: str) -> None:
    """Explain why the start job failed, in one line."""
    if job_result == "dependency" and plan.manager.value == "system":
        manager_unit = plan.user.user_manager_unit
        raise RunasError(
            f"{manager_unit} (the service manager of {plan.user.name}) failed to start: "
            f"see `systemctl status {manager_unit}` and `journalctl -u {manager_unit}`"
        )
    outcome = await _outcome(bus, plan.unit)
    if outcome.code == CLD_EXITED and outcome.status in SETUP_FAILURES:
        raise RunasError(
            f"{plan.unit} failed while {SETUP_FAILURES[outcome.status]} "
            f"(status {outcome.status}): see `journalctl -u {plan.unit}`",
            EXIT_CANNOT_EXECUTE if outcome.status == 203 else 125,
        )
    raise RunasError(
        f"{plan.unit} failed to start (job {job_result}, result {outcome.result}): "
        f"see `journalctl -u {plan.unit}`"
    )


async def _stop_and_wait(bus: SystemdBus, unit: str) -> None:
    try:
        job = await bus.stop_unit(unit)
    except BusCallError:
        return  # already gone
    await bus.wait_job(job)


async def _stop_lifeline(bus: SystemdBus, lifeline: Lifeline) -> None:
    """Stop the scope (which kills the sentinel) and wait, so nothing is left behind."""
    try:
        if not lifeline.started:
            return
        job = await bus.stop_unit(lifeline.scope)
        await asyncio.wait_for(bus.wait_job(job), 10)
    except (TimeoutError, BusCallError, RunasError):
        pass
    finally:
        lifeline.reap()
