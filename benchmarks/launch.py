"""Launch overhead of runas-podman against systemd-run doing the same job, in one run.

Run inside the testbed (`./dev bench [N]`). Each repetition runs every pair back to
back, alternating which goes first, so drift on the machine hits both sides alike.
Prints medians and ours/systemd-run ratios; nothing here is a pass/fail threshold.
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import time

USER_PROPS = [
    "-p", "User=test",
    "-p", "Requires=user@1000.service",
    "-p", "After=user@1000.service",
    "-p", "Environment=XDG_RUNTIME_DIR=/run/user/1000",
]  # fmt: skip
PODMAN_TRUE = ["run", "--rm", "localhost/busybox", "true"]
CASES = [
    (
        "exec true",
        ["runas-podman", "exec", "-u", "test", "--", "true"],
        ["systemd-run", "--wait", "--pipe", "--quiet", "-p", "User=test", "true"],
    ),
    (
        "podman run --rm busybox true",
        ["runas-podman", "podman", "-u", "test", "--", *PODMAN_TRUE],
        ["systemd-run", "--wait", "--pipe", "--quiet", "--collect", *USER_PROPS,
         "podman", *PODMAN_TRUE],
    ),
    (
        "exec true --via user",
        ["runas-podman", "exec", "-u", "test", "--via", "user", "--", "true"],
        ["systemd-run", "--machine=test@", "--user", "--wait", "--pipe", "--quiet", "true"],
    ),
    (
        "--version",
        ["runas-podman", "--version"],
        ["systemd-run", "--version"],
    ),
    (
        "runas -u test true / run0",
        ["runas", "-u", "test", "true"],
        ["run0", "-u", "test", "true"],
    ),
    (
        "runas --version / run0",
        ["runas", "--version"],
        ["run0", "--version"],
    ),
]  # fmt: skip


def timed(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def import_cost_ms() -> dict[str, float]:
    """Cumulative import time of the CLI module and of its heaviest imports."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import runas_podman.cli"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    costs: dict[str, float] = {}
    for line in result.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \|\s*(\S+)", line)
        if match and match.group(2) in ("runas_podman.cli", "click", "dbus_next", "podman", "pam"):
            costs[match.group(2)] = int(match.group(1)) / 1000
    return costs


def main() -> None:
    repetitions = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    samples: dict[str, tuple[list[float], list[float]]] = {n: ([], []) for n, _, _ in CASES}
    for _name, ours, theirs in CASES:  # warm caches (podman storage, page cache) once
        timed(ours)
        timed(theirs)
    for i in range(repetitions):
        for name, ours, theirs in CASES:
            first, second = (ours, theirs) if i % 2 == 0 else (theirs, ours)
            t_first, t_second = timed(first), timed(second)
            t_ours, t_theirs = (t_first, t_second) if i % 2 == 0 else (t_second, t_first)
            samples[name][0].append(t_ours)
            samples[name][1].append(t_theirs)
    print(f"{repetitions} interleaved repetitions; medians in ms")
    print(f"{'case':32} {'runas-podman':>13} {'systemd-run':>12} {'ratio':>7}")
    for name, (ours_t, theirs_t) in samples.items():
        ours_ms, theirs_ms = statistics.median(ours_t) * 1000, statistics.median(theirs_t) * 1000
        print(f"{name:32} {ours_ms:13.1f} {theirs_ms:12.1f} {ours_ms / theirs_ms:7.2f}")
    costs = import_cost_ms()
    print(
        "python -X importtime, cumulative ms: "
        + ", ".join(f"{k} {v:.1f}" for k, v in costs.items())
    )
    print("(dbus_next, podman and pam absent above = not imported by `runas-podman --version`)")


if __name__ == "__main__":
    main()
