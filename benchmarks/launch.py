"""Launch cost of runas-podman and runas against systemd's own tools doing the same job.

Run inside the testbed (`./dev bench [N]`). Each repetition runs ours cold (in-process:
RUNAS_PODMAN_SERVER=0), ours warm (root's launch server, runas-podman-launch.socket) and
systemd's tool back to back, rotating which goes first, so drift on the machine hits all
alike. Prints medians, ratios, the work ratio of the cold path (ours minus the Python
floor, over the tool), peak RSS of the client process beside the tool's, the 40-way
concurrency rows, and where one cold launch spends its time (benchmarks/breakdown.py).
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


COLD = {**os.environ, "RUNAS_PODMAN_SERVER": "0"}
WARM = {key: value for key, value in os.environ.items() if key != "RUNAS_PODMAN_SERVER"}


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   env=env)  # fmt: skip
    return (time.perf_counter() - started) * 1000


def peak_rss_kib(argv: list[str], env: dict[str, str] | None = None) -> int:
    """The client process's own peak RSS: through busybox time, whose small fork is all
    the child carries from before its exec (a fork of this Python would count Python's)."""
    result = subprocess.run(["busybox", "time", "-f", "%M", *argv], check=True, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    return int(result.stderr.split()[-1])


def concurrent_wall_ms(argv: list[str], count: int, env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    running = [
        subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env=env)
        for _ in range(count)
    ]
    statuses = [process.wait() for process in running]
    if any(statuses):
        raise SystemExit(f"{argv[0]}: {sum(map(bool, statuses))} of {count} runs failed")
    return (time.perf_counter() - started) * 1000


def server_active() -> bool:
    state = subprocess.run(["systemctl", "is-active", "runas-podman-launch.socket"],
                           capture_output=True, text=True, check=False)  # fmt: skip
    return state.stdout.strip() == "active"


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
    if not server_active():
        raise SystemExit("runas-podman-launch.socket is not active: runas-podman install first")
    rss: dict[str, dict[str, list[int]]] = {}
    for name, ours, theirs in CASES:  # warm caches (podman storage, page cache) once
        for kind, argv, env in (("cold", ours, COLD), ("warm", ours, WARM), ("tool", theirs, None)):
            rss.setdefault(name, {})[kind] = [peak_rss_kib(argv, env) for _ in range(3)]
    floor_samples: list[float] = []
    times: dict[str, dict[str, list[float]]] = {}
    for i in range(repetitions):
        floor_samples.append(timed(FLOOR))
        for name, ours, theirs in CASES:
            runs = [("cold", ours, COLD), ("warm", ours, WARM), ("tool", theirs, None)]
            shift = i % len(runs)
            for kind, argv, env in runs[shift:] + runs[:shift]:
                times.setdefault(name, {}).setdefault(kind, []).append(timed(argv, env))
    floor = statistics.median(floor_samples)
    print(f"{repetitions} interleaved repetitions, medians in ms; the Python floor "
          f"(`python -c 'import asyncio, click, dbus_next.aio'`): {floor:.1f} ms")  # fmt: skip
    print("| case | cold (in-process) | warm (launch server) | systemd's tool | cold ratio | "
          "warm ratio | cold work ratio | peak RSS cold / warm / tool |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, kinds in times.items():
        cold, warm, tool = (statistics.median(kinds[k]) for k in ("cold", "warm", "tool"))
        peaks = "/".join(f"{statistics.median(rss[name][k]) / 1024:.1f}"
                         for k in ("cold", "warm", "tool"))  # fmt: skip
        work = "-" if "version" in name else f"{(cold - floor) / tool:.2f}"
        print(f"| {name} | {cold:.1f} | {warm:.1f} | {tool:.1f} | {cold / tool:.2f} | "
              f"{warm / tool:.2f} | {work} | {peaks} MiB |")  # fmt: skip
    cold_wall = concurrent_wall_ms(CASES[0][1], CONCURRENT, COLD)
    warm_wall = concurrent_wall_ms(CASES[0][1], CONCURRENT, WARM)
    theirs_wall = concurrent_wall_ms(CASES[0][2], CONCURRENT)
    floor_wall = concurrent_wall_ms(FLOOR, CONCURRENT)
    print(f"| {CONCURRENT} concurrent exec, wall time | {cold_wall:.0f} | {warm_wall:.0f} | "
          f"{theirs_wall:.0f} | {cold_wall / theirs_wall:.2f} | {warm_wall / theirs_wall:.2f} "
          "| - | - |")  # fmt: skip
    print(f"({CONCURRENT} concurrent Python floors alone: {floor_wall:.0f} ms wall)")
    print()
    print(f"Where one cold `runas-podman exec -u test -- true` spends its time (medians of "
          f"{repetitions}, CLOCK_MONOTONIC from spawn to exit):")  # fmt: skip
    totals: dict[str, float] = {}
    for phase, duration in breakdown(repetitions):
        owner = PHASE_OWNER.get(phase, "?")
        totals[owner] = totals.get(owner, 0.0) + duration
        print(f"  {duration:6.1f} ms  {owner:8} {phase}")
    print("  " + ", ".join(f"{owner} {total:.1f} ms" for owner, total in totals.items()))
    exec_theirs = statistics.median(times[CASES[0][0]]["tool"])
    print(f"  (systemd-run's whole run of the same unit: {exec_theirs:.1f} ms)")


if __name__ == "__main__":
    main()
