"""The fault driver: starts one client, signals it once its command runs, watches the cleanup.

Runs inside the testbed as root. Input, JSON on stdin:
  {"argv": [...], "signal": "KILL"|"TERM"|"INT", "sleep": "301" (the command is
   `sleep 301`, a duration no other test uses), "container": NAME or null,
   "units": [["system"|"user", UNIT], ...], "cleanup_timeout": S}
Output, JSON on stdout:
  {"status": the client's exit status (negative: killed by that signal; null: still
   running at the deadline), "client_seconds", "clean_seconds" (null: never clean),
   "leftovers": {"processes", "containers", "units"} as seen at the deadline,
   "client_stderr"}
Whatever is left at the deadline is then removed (so later tests start clean), and the
answer says so: the caller asserts on "leftovers".
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PODMAN_AS_TEST = ["runuser", "-u", "test", "--", "env", "XDG_RUNTIME_DIR=/run/user/1000",
                  "PODMAN_IGNORE_CGROUPSV1_WARNING=1", "podman"]  # fmt: skip


def read_memfd(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def sleep_processes(duration: str) -> list[str]:
    """Processes running `sleep DURATION` (any path, in any container): 'PID cmdline'."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")[:-1]
        except OSError:
            continue
        if (
            len(argv) == 2
            and argv[0].rsplit(b"/", 1)[-1] == b"sleep"
            and argv[1] == duration.encode()
        ):
            found.append(f"{entry.name} {b' '.join(argv).decode()}")
    return found


def containers(name: str | None) -> list[str]:
    if name is None:
        return []
    listing = subprocess.run(
        [*PODMAN_AS_TEST, "ps", "-a", "--format", "{{.Names}} {{.Status}}"],
        capture_output=True,
        text=True,
    )
    return [line for line in listing.stdout.splitlines() if line.split(" ", 1)[0] == name]


def systemctl(manager: str) -> list[str]:
    return ["systemctl"] if manager == "system" else ["systemctl", "--user", "--machine=test@"]


def loaded_units(units: list[list[str]]) -> list[str]:
    left = []
    for manager, unit in units:
        listing = subprocess.run(
            [*systemctl(manager), "list-units", "--all", "--plain", "--no-legend", unit],
            capture_output=True,
            text=True,
        )
        left += [f"{manager}: {line.strip()}" for line in listing.stdout.splitlines()]
    return left


def leftovers(spec: dict[str, Any]) -> dict[str, list[str]]:
    return {
        "processes": sleep_processes(spec["sleep"]),
        "containers": containers(spec["container"]),
        "units": loaded_units(spec["units"]),
    }


def remove_leftovers(spec: dict[str, Any]) -> None:
    if spec["container"]:
        subprocess.run(
            [*PODMAN_AS_TEST, "rm", "--force", "--time", "0", spec["container"]],
            capture_output=True,
        )
    for manager, unit in spec["units"]:
        subprocess.run([*systemctl(manager), "kill", "--signal=KILL", unit], capture_output=True)
        subprocess.run([*systemctl(manager), "stop", unit], capture_output=True)
        subprocess.run([*systemctl(manager), "reset-failed", unit], capture_output=True)
    for process in sleep_processes(spec["sleep"]):
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(process.split()[0]), signal.SIGKILL)


def main() -> None:
    spec = json.load(sys.stdin)
    stderr = os.memfd_create("client-stderr")
    client = subprocess.Popen(
        spec["argv"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr
    )
    deadline = time.monotonic() + 30
    while not sleep_processes(spec["sleep"]):
        if client.poll() is not None or time.monotonic() > deadline:
            sys.exit(
                f"the command never ran (client status {client.poll()}): {read_memfd(stderr)!r}"
            )
        time.sleep(0.05)
    signalled = time.monotonic()
    client.send_signal(getattr(signal, f"SIG{spec['signal']}"))
    deadline = signalled + spec["cleanup_timeout"]
    status: int | None = None
    with contextlib.suppress(subprocess.TimeoutExpired):
        status = client.wait(max(0.0, deadline - time.monotonic()))
    client_seconds = time.monotonic() - signalled if status is not None else None
    clean_seconds = None
    left = leftovers(spec)
    while any(left.values()) and time.monotonic() < deadline:
        time.sleep(0.2)
        left = leftovers(spec)
    if not any(left.values()):
        clean_seconds = time.monotonic() - signalled
    if client.poll() is None:
        client.kill()
        client.wait()
    remove_leftovers(spec)
    json.dump(
        {
            "status": status,
            "client_seconds": client_seconds,
            "clean_seconds": clean_seconds,
            "leftovers": left,
            "client_stderr": read_memfd(stderr).decode(errors="replace")[-2000:],
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
