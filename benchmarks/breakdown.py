"""Where one `runas-podman exec -u test -- true` spends its time, phase by phase.

Run inside the testbed by benchmarks/launch.py (one process per sample), with
RUNAS_BENCH_SPAWNED set to CLOCK_MONOTONIC (system-wide) just before the spawn. It wraps
the launcher's own calls with timestamps, runs the real console script in-process
(runas_podman.entry, as the installed executable does) and prints one JSON object: the
spawn time and each phase's end, in CLOCK_MONOTONIC seconds. The parent adds the
interpreter's exit (from the last mark to the process's end).
"""

from __future__ import annotations

import json
import os
import time


def now() -> float:
    return time.clock_gettime(time.CLOCK_MONOTONIC)


marks: list[tuple[str, float]] = [("interpreter start-up", now())]


def mark(phase: str) -> None:
    if phase not in (name for name, _t in marks):
        marks.append((phase, now()))


import asyncio  # noqa: E402

import click  # noqa: E402, F401
import dbus_next.aio  # noqa: E402, F401

mark("asyncio, click, dbus-next imported")
os.environ["RUNAS_PODMAN_SERVER"] = "0"  # the cold path: this process launches
from runas_podman import entry  # noqa: E402
from runas_podman.bus import systemd_bus  # noqa: E402
from runas_podman.cli import runas_podman as cli  # noqa: E402, F401
from runas_podman.launch import launch, service  # noqa: E402, F401
from runas_podman.run import launcher, session  # noqa: E402, F401

mark("runas-podman's own modules")
original_connect = systemd_bus.SystemdBus.connect.__func__  # type: ignore[attr-defined]
original_call = systemd_bus.SystemdBus.call
original_wait_job = systemd_bus.SystemdBus.wait_job
original_wait_inactive = launcher._wait_inactive


async def connect(cls, *args):  # type: ignore[no-untyped-def]
    mark("options parsed (Click), user and command looked up, plan built")
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
    entry.runas_podman()
finally:
    mark("exit status read, event loop closed, client done")
    spawned = float(os.environ.get("RUNAS_BENCH_SPAWNED", marks[0][1]))
    print(json.dumps({"spawned": spawned, "marks": marks}), flush=True)
