"""The load driver: starts COUNT copies of one command line at once, reports every run.

Runs inside the testbed (one process, so that the clients really start together).
Input, JSON on stdin: {"argv": [...], "count": N, "timeout": S, "stdin": TEXT (optional)};
"{i}" in an argument becomes the run's index. Output, JSON on stdout:
{"wall_seconds": S, "runs": [{"index", "status", "stdout", "stderr", "seconds"}]}.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from typing import Any


def read_memfd(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


class Run:
    """One client: its stdio on memfds (no pipe to drain while the others start)."""

    def __init__(self, index: int, argv: list[str], stdin_text: str | None) -> None:
        self.index = index
        self.stdout = os.memfd_create("stdout")
        self.stderr = os.memfd_create("stderr")
        stdin = subprocess.DEVNULL
        if stdin_text is not None:
            stdin = os.memfd_create("stdin")
            os.write(stdin, stdin_text.encode())
            os.lseek(stdin, 0, os.SEEK_SET)
        self.started = time.monotonic()
        self.process = subprocess.Popen(argv, stdin=stdin, stdout=self.stdout, stderr=self.stderr)
        self.ended = 0.0
        self.status: int | None = None

    def wait(self, timeout: float) -> None:
        try:
            self.status = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.ended = time.monotonic()

    def result(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "status": self.status,  # None: still running at the timeout (then killed)
            "stdout": read_memfd(self.stdout).decode(errors="replace"),
            "stderr": read_memfd(self.stderr).decode(errors="replace")[-2000:],
            "seconds": self.ended - self.started,
        }


def main() -> None:
    spec = json.load(sys.stdin)
    runs = []
    for index in range(spec["count"]):
        argv = [arg.replace("{i}", str(index)) for arg in spec["argv"]]
        runs.append(Run(index, argv, spec.get("stdin")))
    waiters = [threading.Thread(target=run.wait, args=(spec["timeout"],)) for run in runs]
    for waiter in waiters:
        waiter.start()
    for waiter in waiters:
        waiter.join()
    wall = max(run.ended for run in runs) - min(run.started for run in runs)
    json.dump({"wall_seconds": wall, "runs": [run.result() for run in runs]}, sys.stdout)


if __name__ == "__main__":
    main()
