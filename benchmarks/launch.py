"""Launch cost of runas-podman and runas against systemd's own tools doing the same job.

Run inside the testbed (`./dev bench [N]`). Each repetition runs every pair back to back,
alternating which goes first, so drift on the machine hits both sides alike. Prints
medians, ratios and the work ratio (ours minus the Python floor, over the tool), the
40-way concurrency row, and where one launch spends its time (benchmarks/breakdown.py).
Nothing here is a pass/fail threshold.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

PYTHON = sys.executable
USER_UNIT = ["-p", "User=test", "-p", "Requires=user@1000.service",
             "-p", "After=user@1000.service", "-E", "XDG_RUNTIME_DIR=/run/user/1000"]  # fmt: skip
PODMAN_TRUE = ["run", "--rm", "--network=none", "localhost/busybox", "true"]
FLOOR = [PYTHON, "-c", "import asyncio, click, dbus_next.aio"]
CASES = [
    (
        "exec -u test -- true",
        ["runas-podman", "exec", "-u", "test", "--", "true"],
        ["systemd-run", *USER_UNIT, "--wait", "--pipe", "--quiet", "true"],
    ),
    (
        "podman -u test -- run --rm … true",
        ["runas-podman", "podman", "-u", "test", "--", *PODMAN_TRUE],
        ["systemd-run", *USER_UNIT, "--wait", "--pipe", "--quiet", "/usr/bin/podman",
         *PODMAN_TRUE],
    ),
    (
        "exec --via user true",
        ["runas-podman", "exec", "-u", "test", "--via", "user", "--", "true"],
        ["systemd-run", "--machine=test@", "--user", "--wait", "--pipe", "--quiet", "true"],
    ),
    ("runas true / run0 --pipe true", ["runas", "true"], ["run0", "--pipe", "true"]),
    ("runas-podman --version", ["runas-podman", "--version"], ["systemd-run", "--version"]),
    ("runas --version", ["runas", "--version"], ["run0", "--version"]),
]  # fmt: skip
CONCURRENT = 40


def timed(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    return (time.perf_counter() - started) * 1000


def concurrent_wall_ms(argv: list[str], count: int) -> float:
    started = time.perf_counter()
    running = [
        subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        for _ in range(count)
    ]
    statuses = [process.wait() for process in running]
    if any(statuses):
        raise SystemExit(f"{argv[0]}: {sum(map(bool, statuses))} of {count} runs failed")
    return (time.perf_counter() - started) * 1000


# Whose each phase of one exec is: Python's (what any Python program importing asyncio,
# click and dbus-next pays: the floor), systemd's (what systemd-run waits for as well), or
# ours (runas-podman's own code, and the D-Bus round trips it makes as systemd-run does).
PHASE_OWNER = {
    "interpreter start-up": "python",
    "asyncio, click, dbus-next imported": "python",
    "runas-podman's own modules": "ours",
    "options parsed (Click), user and command looked up, plan built": "ours",
    "connected and authenticated to the system bus": "ours",
    "watches set, manager Version read (pipelined round trips)": "ours",
    "StartTransientUnit answered (unit + lifeline created)": "ours",
    "start job done: systemd forked, set up and exec'd the command": "systemd",
    "unit ended (from its PropertiesChanged signals)": "systemd",
    "exit status read, event loop closed, client done": "ours",
    "interpreter exit": "python",
}


def now() -> float:
    return time.clock_gettime(time.CLOCK_MONOTONIC)


def breakdown(repetitions: int) -> list[tuple[str, float]]:
    """Median time of each phase of one exec (from benchmarks/breakdown.py), from the spawn
    of the process to its end."""
    script = str(Path(__file__).with_name("breakdown.py"))
    samples: list[dict[str, float]] = []
    for _ in range(repetitions):
        spawned = now()
        result = subprocess.run(
            [PYTHON, script, "exec", "-u", "test", "--", "true"],
            capture_output=True, text=True, check=True, stdin=subprocess.DEVNULL,
            env={**os.environ, "RUNAS_BENCH_SPAWNED": repr(spawned)},
        )  # fmt: skip
        ended = now()
        report = json.loads(result.stdout.splitlines()[-1])
        sample, previous = {}, report["spawned"]
        for phase, at in [*report["marks"], ("interpreter exit", ended)]:
            sample[phase] = (at - previous) * 1000
            previous = at
        samples.append(sample)
    return [(phase, statistics.median(s[phase] for s in samples)) for phase in samples[0]]


def main() -> None:
    repetitions = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    for _name, ours, theirs in CASES:  # warm caches (podman storage, page cache) once
        timed(ours)
        timed(theirs)
    floor_samples: list[float] = []
    samples: dict[str, tuple[list[float], list[float]]] = {n: ([], []) for n, _, _ in CASES}
    for i in range(repetitions):
        floor_samples.append(timed(FLOOR))
        for name, ours, theirs in CASES:
            first, second = (ours, theirs) if i % 2 == 0 else (theirs, ours)
            t_first, t_second = timed(first), timed(second)
            t_ours, t_theirs = (t_first, t_second) if i % 2 == 0 else (t_second, t_first)
            samples[name][0].append(t_ours)
            samples[name][1].append(t_theirs)
    floor = statistics.median(floor_samples)
    print(f"{repetitions} interleaved repetitions, medians in ms; the Python floor "
          f"(`python -c 'import asyncio, click, dbus_next.aio'`): {floor:.1f} ms")  # fmt: skip
    print("| case | ours | systemd's tool | ratio | work ratio (ours - floor) / tool |")
    print("| --- | --- | --- | --- | --- |")
    for name, (ours_t, theirs_t) in samples.items():
        ours_ms, theirs_ms = statistics.median(ours_t), statistics.median(theirs_t)
        work = "-" if "version" in name else f"{(ours_ms - floor) / theirs_ms:.2f}"
        print(f"| {name} | {ours_ms:.1f} | {theirs_ms:.1f} | {ours_ms / theirs_ms:.2f} | {work} |")
    ours_wall = concurrent_wall_ms(CASES[0][1], CONCURRENT)
    theirs_wall = concurrent_wall_ms(CASES[0][2], CONCURRENT)
    floor_wall = concurrent_wall_ms(FLOOR, CONCURRENT)
    print(f"| {CONCURRENT} concurrent exec, wall time | {ours_wall:.0f} | {theirs_wall:.0f} | "
          f"{ours_wall / theirs_wall:.2f} | - |")  # fmt: skip
    print(f"({CONCURRENT} concurrent Python floors alone: {floor_wall:.0f} ms wall)")
    print()
    print(f"Where one `runas-podman exec -u test -- true` spends its time (medians of "
          f"{repetitions}, CLOCK_MONOTONIC from spawn to exit):")  # fmt: skip
    totals: dict[str, float] = {}
    for phase, duration in breakdown(repetitions):
        owner = PHASE_OWNER.get(phase, "?")
        totals[owner] = totals.get(owner, 0.0) + duration
        print(f"  {duration:6.1f} ms  {owner:8} {phase}")
    print("  " + ", ".join(f"{owner} {total:.1f} ms" for owner, total in totals.items()))
    exec_theirs = statistics.median(samples[CASES[0][0]][1])
    print(f"  (systemd-run's whole run of the same unit: {exec_theirs:.1f} ms)")


if __name__ == "__main__":
    main()
