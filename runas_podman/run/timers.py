"""Start a plan's timer (--on-*, --timer-property): the timer and its service in one
StartTransientUnit call, the timer's start job waited for, the timer named; the
service runs later, as the timer says, with its output in the journal."""

from __future__ import annotations

import asyncio
import json
import os
import time

from runas_podman.bus.systemd_bus import SystemdBus, unit_object_path
from runas_podman.core.errors import BusCallError, RunasError, UsageError
from runas_podman.core.model import OPEN_FILE_SINCE, LaunchPlan, parse_systemd_version
from runas_podman.core.properties import Session, check_reruns, needs_relay, start_call
from runas_podman.core.timer import format_time, next_elapse_usec

TIMER = "org.freedesktop.systemd1.Timer"
NEXT_ELAPSE = ("NextElapseUSecRealtime", "NextElapseUSecMonotonic")


async def start_timer(
    plan: LaunchPlan,
    bus: SystemdBus,
    *,
    interactive: bool = False,
    json_mode: str | None = None,
    note: bool = False,
    report_fds: tuple[int, int] = (1, 2),
) -> int:
    """Start the timer; print its name (with --json: the timer and the service), and with
    `note` one line on stderr saying when it elapses first and how to list it."""
    from runas_podman.run.launcher import start_error

    timer = plan.timer_unit
    assert timer is not None
    version, _ = await asyncio.gather(bus.manager_version(), bus.watch_jobs(timer))
    manager_version = parse_systemd_version(version)
    if plan.open_files and needs_relay(plan, manager_version):
        raise UsageError(
            f"--open-file with a timer needs OpenFile= (systemd >= {OPEN_FILE_SINCE}; this "
            f"manager is {manager_version}): the fd relay needs this client when the command "
            "starts; hand the secret over at each run another way (e.g. LoadCredential=)"
        )
    check_reruns(plan, manager_version)
    session = Session(manager_version=manager_version)
    try:
        job = await bus.start_transient_unit(start_call(plan, session), interactive)
    except BusCallError as error:
        raise start_error(error, timer, bus.description) from None
    done = await bus.wait_job(job)
    if done.result != "done":
        raise RunasError(
            f"{timer} did not start (job {done.result}): see `systemctl status {timer}`"
        )
    if json_mode is not None:
        document = {"unit": timer, "service": plan.unit}
        text = json.dumps(document, indent=2 if json_mode == "pretty" else None)
        os.write(report_fds[0], (text + "\n").encode())
    else:
        os.write(report_fds[0], f"{timer}\n".encode())
    if note:
        values = await bus.get_named(unit_object_path(timer), TIMER, NEXT_ELAPSE)
        first = next_elapse_usec(
            int(values["NextElapseUSecRealtime"]), int(values["NextElapseUSecMonotonic"]),
            time.time_ns() // 1000, time.monotonic_ns() // 1000,
        )  # fmt: skip
        line = f"runas-podman: {timer} starts {plan.unit}, next: {format_time(first)}\n"
        os.write(report_fds[1], line.encode())
    return 0
