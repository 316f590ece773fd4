"""Where one `runas-podman exec -u test -- true` spends its time, phase by phase.

Run inside the testbed by benchmarks/launch.py (one process per sample). It wraps the
launcher's own calls with timestamps, runs the real command in-process and prints one
JSON object: milliseconds from interpreter start to the end of each phase.
"""

from __future__ import annotations

import json
import sys
import time

T0 = time.perf_counter()
marks: dict[str, float] = {}


def mark(phase: str) -> None:
    marks.setdefault(phase, (time.perf_counter() - T0) * 1000)


import asyncio  # noqa: E402

import click  # noqa: E402, F401
import dbus_next.aio  # noqa: E402, F401

mark("python + asyncio, click, dbus-next (the floor)")
from runas_podman import cli, launcher, systemd_bus  # noqa: E402

mark("runas-podman's own modules")
original_connect = systemd_bus.SystemdBus.connect.__func__  # type: ignore[attr-defined]
original_call = systemd_bus.SystemdBus.call
original_wait_job = systemd_bus.SystemdBus.wait_job
original_wait_inactive = launcher._wait_inactive


async def connect(cls, *args):  # type: ignore[no-untyped-def]
    mark("options parsed, user and command looked up, plan built")
    bus = await original_connect(cls, *args)
    mark("connected and authenticated to the system bus")
    return bus


async def call(self, member, *args, **kwargs):  # type: ignore[no-untyped-def]
    reply = await original_call(self, member, *args, **kwargs)
    if member == "Subscribe":
        mark("watches set, manager Version read (pipelined round trips)")
    elif member == "StartTransientUnit":
        mark("StartTransientUnit answered (unit + lifeline created)")
    return reply


async def wait_job(self, job):  # type: ignore[no-untyped-def]
    result = await original_wait_job(self, job)
    mark("start job done: systemd forked, set up and exec'd the command")
    return result


async def wait_inactive(bus, unit, watch):  # type: ignore[no-untyped-def]
    await original_wait_inactive(bus, unit, watch)
    mark("unit ended (from its PropertiesChanged signals)")


systemd_bus.SystemdBus.connect = classmethod(connect)  # type: ignore[method-assign, assignment]
systemd_bus.SystemdBus.call = call  # type: ignore[method-assign]
systemd_bus.SystemdBus.wait_job = wait_job  # type: ignore[method-assign]
launcher._wait_inactive = wait_inactive
del asyncio

try:
    cli.cli.main(args=sys.argv[1:], prog_name="runas-podman", standalone_mode=False)
finally:
    mark("exit status read, client done")
    print(json.dumps(marks))
