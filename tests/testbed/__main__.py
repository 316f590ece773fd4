"""`python -m tests.testbed up|down|build|status|install|run CMD...|shell|demo`."""

from __future__ import annotations

import os
import subprocess
import sys

from .testbed import Testbed, TestbedError

DEMO = ["runas-podman", "podman", "-u", "test", "--", "run", "--rm", "localhost/busybox",
        "echo", "hello"]  # fmt: skip


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    testbed, verb, rest = Testbed(), argv[0], argv[1:]
    try:
        if verb == "build":
            with testbed.locked():
                testbed.build()
        elif verb == "up":
            testbed.up()
        elif verb == "down":
            testbed.down()
        elif verb == "status":
            print("up" if testbed.is_up() else "down")
        elif verb == "install":
            testbed.install_project()
        elif verb in ("run", "shell"):
            command = rest or ["bash", "-l"]
            if not testbed.is_up():
                raise TestbedError("the testbed is not running: run `./dev up` first")
            return subprocess.call(testbed.command(command))
        elif verb == "demo":
            booted = testbed.up()
            print("$ " + " ".join(DEMO), flush=True)
            status = subprocess.call(testbed.command(DEMO), stdin=subprocess.DEVNULL)
            if booted and os.environ.get("RUNAS_PODMAN_TESTBED_KEEP") != "1":
                testbed.down()
            return status
        else:
            print(f"unknown verb '{verb}'\n{__doc__}", file=sys.stderr)
            return 2
    except TestbedError as error:
        print(f"testbed: {error}", file=sys.stderr)
        return 1
    return 0


sys.exit(main(sys.argv[1:]))
