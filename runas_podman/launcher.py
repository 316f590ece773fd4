"""Run a LaunchPlan on a service manager and wait for it, the way `systemd-run --wait` does.

Beyond systemd-run: the unit is bound to the client's life. A tiny lifeline service
(`cat`, output to null) reads a pipe whose only writer is this client; the service has
BindsTo=/After= on it, and both are created in one StartTransientUnit call (one polkit
authorization). When the client ends, however it ends (even SIGKILL), the pipe closes,
cat exits, the lifeline stops, and systemd stops the service with it. Closing the pipe
is also how the client stops the unit on Ctrl-C: no StopUnit, so a polkit-authorized
caller needs no second authorization. It works the same on both kinds of manager.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass

from . import lookup
from .errors import EXIT_CANNOT_EXECUTE, BusCallError, RunasError
from .plan import (
    MAX_FDS_PER_MESSAGE,
    LaunchPlan,
    Manager,
    lifeline_unit_name,
    parse_systemd_version,
)
from .systemd_bus import (
    SERVICE,
    FdProperty,
    SystemdBus,
    unit_object_path,
)
from .unitprops import UnitProperty

CLD_EXITED = 1  # ExecMainCode: else killed (2) or dumped (3), by signal ExecMainStatus
# systemd's EXIT_* codes for failures before the command ran (systemd.exec(5)).
SETUP_FAILURES = {
    200: "changing to the working directory", 202: "setting up the passed file descriptors",
    203: "executing the command",
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
    """A `cat` service reading a pipe that only this client writes to."""

    def __init__(self, plan: LaunchPlan, cat: str) -> None:
        self.unit = lifeline_unit_name(plan.unit)
        self.cat = cat
        self.user = plan.user.name if plan.manager is Manager.SYSTEM else None
        self.read_fd, self.write_fd = os.pipe()  # close-on-exec: no child inherits them
        self.started = False  # only a lifeline this client started is its to stop

    def properties(self) -> list[UnitProperty]:
        properties = [
            UnitProperty("Description", "s", f"runas-podman lifeline of {self.unit}"),
            UnitProperty("Type", "s", "exec"),
            UnitProperty("CollectMode", "s", "inactive-or-failed"),
            UnitProperty("StandardOutput", "s", "null"),
            UnitProperty("StandardError", "s", "null"),
            UnitProperty("NoNewPrivileges", "b", True),
            UnitProperty("ExecStart", "a(sasb)", [[self.cat, [self.cat], False]]),
        ]
        if self.user is not None:  # no need for root to read a pipe
            properties.append(UnitProperty("User", "s", self.user))
        return properties

    def close_read_end(self) -> None:
        if self.read_fd >= 0:
            os.close(self.read_fd)
            self.read_fd = -1

    def close(self) -> None:
        self.close_read_end()
        if self.write_fd >= 0:
            os.close(self.write_fd)
            self.write_fd = -1


def check_passed_fds(plan: LaunchPlan) -> None:
    """Call before this process opens any fd of its own: fd N must be the caller's."""
    # stdio, the lifeline's pipe (its aux unit travels in the same message), the passed fds
    total = 4 + len(plan.pass_fds)
    if total > MAX_FDS_PER_MESSAGE:
        raise RunasError(
            f"too many file descriptors: {total} (3 for stdio + 1 lifeline + "
            f"{len(plan.pass_fds)} passed), but one D-Bus message carries at most "
            f"{MAX_FDS_PER_MESSAGE}; pass at most {MAX_FDS_PER_MESSAGE - 4}"
        )
    for passed in plan.pass_fds:
        try:
            os.fstat(passed.fd)
        except OSError:
            raise RunasError(
                f"--pass-fd {passed.fd}: fd {passed.fd} is not open "
                f"(open it for the command, e.g. {passed.fd}< <(pass show secret))"
            ) from None


async def run_plan(
    plan: LaunchPlan,
    bus: SystemdBus,
    *,
    interactive: bool = False,
    stdio: tuple[int, int, int] | None = None,
    tty_path: str | None = None,
    on_started: Callable[[], None] | None = None,
    stop_when: asyncio.Future[int] | None = None,
) -> int:
    """Start the plan's unit, wait for it, return the exit status to leave with.

    `stdio` are the fds for the
    unit's stdin, stdout, stderr (default: the caller's); `tty_path` sets TTYPath=.
    `on_started` runs once systemd has accepted the unit (authorization is over).
    `stop_when`, once done, stops the unit like a signal would (its value: the status).
    """
    loop = asyncio.get_running_loop()
    interrupted: asyncio.Future[int] = loop.create_future()
    for signum in TERMINATING_SIGNALS:
        loop.add_signal_handler(signum, _set_once, interrupted, int(signum))
    lifeline = Lifeline(plan, lookup.executable("cat", "coreutils"))
    try:
        # Pipelined: the watches are in force before the start call is sent.
        watching_unit = asyncio.ensure_future(bus.watch_unit(plan.unit))
        watching_lifeline = asyncio.ensure_future(bus.watch_unit(lifeline.unit))
        version = asyncio.ensure_future(bus.manager_version())
        await asyncio.gather(watching_unit, watching_lifeline, version, bus.watch_jobs())
        check_features(plan, version.result(), bus.description)
        properties = [
            *plan.unit_properties(),
            UnitProperty("BindsTo", "as", [lifeline.unit]),
            UnitProperty("After", "as", [lifeline.unit]),
        ]
        if tty_path is not None:
            properties.append(UnitProperty("TTYPath", "s", tty_path))
        stdin, stdout, stderr = stdio or (0, 1, 2)  # never closed: see cli.fill_closed_stdio
        fd_properties = [
            FdProperty("StandardInputFileDescriptor", stdin),
            FdProperty("StandardOutputFileDescriptor", stdout),
            FdProperty("StandardErrorFileDescriptor", stderr),
        ]
        extra_fds = [(passed.fd, passed.name) for passed in plan.pass_fds]
        lifeline_stdin = [FdProperty("StandardInputFileDescriptor", lifeline.read_fd)]
        try:
            job = await bus.start_transient_unit(
                plan.unit, properties, fd_properties, extra_fds,
                aux_units=[(lifeline.unit, lifeline.properties(), lifeline_stdin)],
                interactive=interactive,
            )  # fmt: skip
        except BusCallError as error:
            raise _start_error(error, plan.unit, bus.description) from None
        lifeline.started = True
        lifeline.close_read_end()  # systemd holds it now; the write end stays ours alone
        if on_started is not None:
            on_started()
        changed = watching_unit.result()
        waiting = asyncio.ensure_future(_wait_for_unit(bus, plan, job, changed))
        stoppers = [interrupted] if stop_when is None else [interrupted, stop_when]
        await asyncio.wait([waiting, *stoppers], return_when=asyncio.FIRST_COMPLETED)
        if waiting.done():
            return waiting.result()
        waiting.cancel()
        # Told to stop: end the lifeline, and BindsTo= stops the unit with it.
        lifeline.close()
        await _wait_inactive(bus, plan.unit, changed)
        if interrupted.done():
            return 128 + interrupted.result()
        assert stop_when is not None
        return stop_when.result()
    finally:
        for signum in TERMINATING_SIGNALS:
            loop.remove_signal_handler(signum)
        lifeline.close()  # cat sees EOF and exits
        if lifeline.started:
            await _wait_gone(bus, lifeline.unit, watching_lifeline.result())


def check_features(plan: LaunchPlan, version_text: str, manager: str) -> None:
    """Refuse, before anything starts, what the manager's systemd is too old for."""
    version = parse_systemd_version(version_text)
    for feature, since in plan.required_systemd():
        if version < since:
            raise RunasError(
                f"{feature} needs systemd {since} or newer; {manager} runs systemd {version}"
            )


def _set_once(future: asyncio.Future[int], value: int) -> None:
    if not future.done():
        future.set_result(value)


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
            f"org.freedesktop.systemd1.manage-units ({error.text or error.name})"
        )
    return RunasError(f"systemd refused to start {unit}: {error.text or error.name}")


async def _wait_inactive(bus: SystemdBus, unit: str, changed: asyncio.Event) -> None:
    while True:
        changed.clear()
        if await bus.unit_state(unit) in ("inactive", "failed"):
            return
        await changed.wait()


async def _wait_gone(bus: SystemdBus, unit: str, changed: asyncio.Event) -> None:
    """Wait until the unit is inactive (then collected), bounded: it is only a cat."""
    # Already collected (no such unit), or systemd is slow: nothing to hold up then.
    with contextlib.suppress(TimeoutError, BusCallError):
        await asyncio.wait_for(_wait_inactive(bus, unit, changed), 10)


async def _wait_for_unit(
    bus: SystemdBus, plan: LaunchPlan, job: str, changed: asyncio.Event
) -> int:
    done = await bus.wait_job(job)
    if done.result != "done":
        await _raise_start_failure(bus, plan, done.result)
    await _wait_inactive(bus, plan.unit, changed)
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
    if outcome.code == CLD_EXITED and outcome.status == 202 and plan.open_files:
        paths = ", ".join(f.path for f in plan.open_files)
        raise RunasError(
            f"systemd could not open an --open-file path ({paths}) for {plan.unit}: check that it "
            "exists, or add the graceful flag (PATH:NAME:graceful) to skip a missing one"
        )
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
