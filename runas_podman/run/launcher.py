"""Run a LaunchPlan on a service manager and wait for it, the way `systemd-run --wait` does.

Beyond systemd-run: the unit is bound to the client's life. A tiny lifeline service
(`cat`, output to null; its properties in properties.py) reads a pipe whose only writer
is this client; the service has BindsTo= on it, and both are created in one
StartTransientUnit call (one polkit authorization). When the client ends, however it
ends (even SIGKILL), the pipe closes, cat exits, the lifeline stops, and systemd stops
the service with it. Closing the pipe
is also how the client stops the unit on Ctrl-C: no StopUnit, so a polkit-authorized
caller needs no second authorization. It works the same on both kinds of manager.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import Callable
from typing import NamedTuple

from runas_podman.bus.systemd_bus import SERVICE, UNIT, SystemdBus, UnitWatch, unit_object_path
from runas_podman.core.errors import EXIT_CANNOT_EXECUTE, BusCallError, RunasError, UsageError
from runas_podman.core.model import (
    MAX_FDS_PER_MESSAGE,
    LaunchPlan,
    Manager,
    OpenFile,
    parse_systemd_version,
)
from runas_podman.core.properties import Relay, Session, check_reruns, needs_relay, start_call
from runas_podman.host import lookup
from runas_podman.run.signals import on_terminating_signals, release

CLD_EXITED, CLD_KILLED, CLD_DUMPED = 1, 2, 3  # ExecMainCode (0: it never ran)
FIRST_SYSTEMD_EXIT_CODE = 200  # 200 and up: systemd failed before the command ran
# systemd's EXIT_* codes for failures before the command ran (systemd.exec(5)).
SETUP_FAILURES = {
    200: "changing to the working directory", 202: "setting up the passed file descriptors",
    203: "executing the command",
    216: "setting the group", 217: "setting the user", 224: "setting up the PAM session",
}  # fmt: skip


class Outcome(NamedTuple):
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
    """The pipe of the lifeline unit (properties.py): only this client holds the write end."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()  # close-on-exec: no child inherits them

    def close_read_end(self) -> None:
        if self.read_fd >= 0:
            os.close(self.read_fd)
            self.read_fd = -1

    def close(self) -> None:
        """The lifeline's cat sees EOF and exits; BindsTo= stops the service with it."""
        self.close_read_end()
        if self.write_fd >= 0:
            os.close(self.write_fd)
            self.write_fd = -1


class FdRelay:
    """Secret fds for a manager without OpenFile=/ExtraFileDescriptors (fdrelay.py): the
    files opened here (as the caller for PID 1, as the user for the user's manager, with
    the rights the manager itself would have used), sent with the real stdin over a
    socket that is the unit's stdin."""

    def __init__(self, plan: LaunchPlan) -> None:
        from runas_podman.run import fdrelay

        self.plan = plan
        self.script = fdrelay.__file__
        self.secrets: list[tuple[int, str]] = [(p.fd, p.name) for p in plan.pass_fds]
        self.opened: list[int] = []
        try:
            for open_file in plan.open_files:
                fd = self._open(open_file)
                if fd is not None:
                    self.opened.append(fd)
                    self.secrets.append((fd, open_file.name))
        except BaseException:
            self.close_opened()
            raise
        self.ours, self.unit_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)

    def _open(self, open_file: OpenFile) -> int | None:
        from runas_podman.host.privileges import open_as
        from runas_podman.host.safepath import open_for_root, unopened

        fix = (
            "check that it exists and that the manager may open it (a file the user may only "
            "read needs the read-only flag, PATH:NAME:read-only), or add graceful to skip a "
            "missing one"
        )
        if self.plan.manager is not Manager.USER:
            return open_for_root(open_file, fix)
        try:  # as the user, who may open what it likes; O_NONBLOCK: a FIFO never blocks
            fd = open_as(self.plan.user, open_file.path, open_file.open_flags | os.O_NONBLOCK)
        except OSError as error:
            unopened(open_file, error, fix)  # raises unless graceful
            return None
        os.set_blocking(fd, True)
        return fd

    def spec(self) -> Relay:
        return Relay(sys.executable, self.script, self.unit_end.fileno())

    def close_unit_end(self) -> None:
        self.unit_end.close()  # systemd holds it now

    def send(self, stdin: int) -> None:
        import json

        header = json.dumps({"names": [name for _fd, name in self.secrets]}).encode()
        try:
            socket.send_fds(self.ours, [header], [stdin, *(fd for fd, _n in self.secrets)])
        finally:
            self.ours.close()
            self.close_opened()

    def close_opened(self) -> None:
        for fd in self.opened:
            os.close(fd)
        self.opened.clear()


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
    stdio_fds: tuple[int, int, int] = (0, 1, 2),
    tty_path: str | None = None,
    interactive: bool = False,
    on_started: Callable[[], None] | None = None,
    stop_when: asyncio.Future[int] | None = None,
    json: str | None = None,
    summary: bool = False,
    report_fds: tuple[int, int] = (1, 2),
    follow: str | None = None,
) -> int:
    """Start the plan's unit, wait for it, return the exit status to leave with.

    `stdio_fds` become the unit's stdin, stdout, stderr (never closed ones: see
    clirun.fill_closed_stdio); `tty_path` is the pty among them. `on_started` runs once
    systemd has accepted the unit (authorization is over). `stop_when`, once done, stops
    the unit like a signal would (its value: the status to return). `follow`: -v, the
    unit's journal in that output mode on report_fds[0] until the unit has ended.
    """
    loop = asyncio.get_running_loop()
    interrupted = on_terminating_signals(loop)
    lifeline = Lifeline() if plan.lifeline else None
    journal = None
    try:
        # Pipelined: the watches are in force before the start call is sent.
        watching = asyncio.ensure_future(bus.watch_unit(plan.unit))
        version = asyncio.ensure_future(bus.manager_version())
        await asyncio.gather(watching, version, bus.watch_jobs(plan.unit))
        manager_version = parse_systemd_version(version.result())
        check_reruns(plan, manager_version)
        relay = FdRelay(plan) if needs_relay(plan, manager_version) else None
        if relay is not None and not plan.wait:
            relay.close_opened()
            raise UsageError(
                f"--no-block with --open-file needs OpenFile= (systemd >= 253; this manager "
                f"is {manager_version}): the fd relay needs this client until the command "
                "starts; drop --no-block"
            )
        if follow is not None:
            from runas_podman.run.journal import JournalView

            journal = await JournalView.start(plan, follow, *report_fds)
        session = Session(
            stdio_fds=stdio_fds, tty_path=tty_path,
            lifeline_fd=lifeline.read_fd if lifeline is not None else None,
            cat=lookup.executable("cat", "coreutils"), manager_version=manager_version,
            relay=relay.spec() if relay is not None else None,
        )  # fmt: skip
        try:
            job = await bus.start_transient_unit(start_call(plan, session), interactive)
        except BusCallError as error:
            raise start_error(error, plan.unit, bus.description) from None
        finally:
            if relay is not None:
                relay.close_unit_end()
        if relay is not None:
            relay.send(stdio_fds[0])  # the unit's relay waits for this before the command
        if lifeline is not None:
            lifeline.close_read_end()  # systemd holds it now; the write end stays ours alone
        if on_started is not None:
            on_started()
        watch = watching.result()
        if json is not None:
            await _print_json(bus, plan.unit, watch, json == "pretty", report_fds[0])
        if not plan.wait:  # --no-block: started; the caller follows it by its name
            if json is None:
                os.write(report_fds[0], f"{plan.unit}\n".encode())
            return 0
        waiting = asyncio.ensure_future(_wait_for_unit(bus, plan, job, watch))
        stoppers = [interrupted] if stop_when is None else [interrupted, stop_when]
        await asyncio.wait([waiting, *stoppers], return_when=asyncio.FIRST_COMPLETED)
        if waiting.done():
            status = waiting.result()
            if journal is not None:
                await journal.stop()
            if summary:
                await _print_summary(bus, plan.unit, report_fds[1])
            return status
        waiting.cancel()
        # Told to stop: end the lifeline, and BindsTo= stops the unit with it (without
        # one, -r: stop it ourselves).
        if lifeline is not None:
            lifeline.close()
        else:
            await bus.run_job("StopUnit", plan.unit)
        await _wait_inactive(bus, plan.unit, watch)
        if interrupted.done():
            return interrupted.result()
        assert stop_when is not None
        return stop_when.result()
    finally:
        release(loop, interrupted)
        if lifeline is not None:
            lifeline.close()  # cat sees EOF and exits: the lifeline unit ends and is collected
        if journal is not None:
            await journal.stop()


def start_error(error: BusCallError, unit: str, manager: str) -> RunasError:
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


ENDED = ("inactive", "failed")
OUTCOME = ("ExecMainCode", "ExecMainStatus", "Result")


async def _wait_inactive(bus: SystemdBus, unit: str, watch: UnitWatch) -> None:
    """Until the unit has ended, from its signals (asking only when they said nothing)."""
    asked = False
    while True:
        watch.changed.clear()
        state = watch.values.get("ActiveState")
        if state is None and not asked:
            state = await bus.unit_state(unit)
            asked = True
        # "exited": the main process ended and RemainAfterExit= keeps the unit up (-r).
        if state in ENDED or watch.values.get("SubState") == "exited":
            return
        await watch.changed.wait()


async def _wait_for_unit(bus: SystemdBus, plan: LaunchPlan, job: str, watch: UnitWatch) -> int:
    done = await bus.wait_job(job)
    if done.result != "done":
        return await _start_failure(bus, plan, done.result)
    await _wait_inactive(bus, plan.unit, watch)
    outcome = await _outcome(bus, plan.unit, watch)
    if plan.ignore_failure and outcome.code == CLD_EXITED:
        return 0  # as systemd-run --ignore-failure: the status is not a failure
    return outcome.exit_status


async def _outcome(bus: SystemdBus, unit: str, watch: UnitWatch | None = None) -> Outcome:
    """How the main process ended: from the signals that told the unit ended, else asked."""
    values = watch.values if watch is not None else {}
    if (
        watch is None
        or values.get("ActiveState") not in ENDED
        or not all(name in values for name in OUTCOME)
    ):
        values = await bus.get_named(unit_object_path(unit), SERVICE, OUTCOME)
    return Outcome(
        int(values["ExecMainCode"]), int(values["ExecMainStatus"]), str(values["Result"])
    )


async def _start_failure(bus: SystemdBus, plan: LaunchPlan, job_result: str) -> int:
    """The command's own status if it ran (systemd 252 fails the start job of a Type=exec
    unit whose command exits non-zero at once); else why the start failed, in one line."""
    if job_result == "dependency" and plan.manager.value == "system":
        manager_unit = plan.user.user_manager_unit
        raise RunasError(
            f"{manager_unit} (the service manager of {plan.user.name}) failed to start: "
            f"see `systemctl status {manager_unit}` and `journalctl -u {manager_unit}`"
        )
    outcome = await _outcome(bus, plan.unit)
    ran = outcome.code in (CLD_KILLED, CLD_DUMPED) or (
        outcome.code == CLD_EXITED and 0 < outcome.status < FIRST_SYSTEMD_EXIT_CODE
    )
    if job_result == "failed" and ran:
        return outcome.exit_status  # the command ran: a status or a signal of its own
    if outcome.code == CLD_EXITED and outcome.status == 202 and plan.open_files:
        paths = ", ".join(f.path for f in plan.open_files)
        raise RunasError(
            f"systemd could not open an --open-file path ({paths}) for {plan.unit}: check that it "
            "exists and that the manager may open it (a file the user may only read needs the "
            "read-only flag, PATH:NAME:read-only), or add graceful to skip a missing one"
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


async def _print_json(bus: SystemdBus, unit: str, watch: UnitWatch, pretty: bool, out: int) -> None:
    """As systemd-run --json: the unit and its invocation ID, as soon as systemd has
    assigned it (when the unit starts; its PropertiesChanged signals carry it)."""
    while True:
        watch.changed.clear()
        raw = watch.values.get("InvocationID")
        if not raw and watch.values.get("ActiveState") not in (None, "inactive", "activating"):
            raw = await bus.get_property(unit_object_path(unit), UNIT, "InvocationID")
        if raw or watch.values.get("ActiveState") in ENDED:
            break
        await watch.changed.wait()
    document = {"unit": unit, "invocation_id": bytes(raw or b"").hex()}
    import json

    text = json.dumps(document, indent=2 if pretty else None)
    os.write(out, (text + "\n").encode())


async def _print_summary(bus: SystemdBus, unit: str, err: int) -> None:
    values = await bus.get_properties(unit_object_path(unit), SERVICE)
    os.write(err, (summary_line(unit, values) + "\n").encode())


UNSET = 2**64 - 1  # systemd's "not known" for counters and timestamps


def _size(value: object) -> str | None:
    if not isinstance(value, int) or value >= UNSET:
        return None
    for unit, factor in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if value >= factor:
            return f"{value / factor:.1f}{unit}"
    return f"{value}B"


def _span(usec: int) -> str:
    return f"{usec / 1_000_000:.3f}s" if usec >= 1_000_000 else f"{usec / 1000:.0f}ms"


def summary_line(unit: str, values: dict[str, object]) -> str:
    """One line like systemd-run's summary after --wait: result, run time, CPU, memory, IO."""
    parts = [f"{unit}: {values.get('Result', '?')}"]
    start = values.get("ExecMainStartTimestampMonotonic")
    end = values.get("ExecMainExitTimestampMonotonic")
    if isinstance(start, int) and isinstance(end, int) and 0 < start <= end:
        parts.append(f"ran {_span(end - start)}")
    cpu = values.get("CPUUsageNSec")
    if isinstance(cpu, int) and cpu < UNSET:
        parts.append(f"CPU {_span(cpu // 1000)}")
    memory = _size(values.get("MemoryPeak"))
    if memory is not None:
        parts.append(f"memory peak {memory}")
    read, written = _size(values.get("IOReadBytes")), _size(values.get("IOWriteBytes"))
    if read is not None and written is not None:
        parts.append(f"IO read {read}, written {written}")
    return "runas-podman: " + ", ".join(parts)
