"""python -m tests.testbed [--suite NAME] VERB [ARGS]

Verbs: build | rebuild | up | down | status | install | run CMD... | shell | demo.
--suite picks the Debian suite: trixie (the default, or $RUNAS_PODMAN_TESTBED_SUITE),
bookworm, sid; build, rebuild, up, down and status also take NAME,NAME or `all`
(down and status default to all). rebuild removes the suite's tree and builds it afresh
(sid moves: its tree is otherwise kept until the recipe changes).
"""

from __future__ import annotations

import os
import subprocess
import sys

from .testbed import Testbed, TestbedError, selected_suites

DEMO = ["runas-podman", "podman", "-u", "test", "--", "run", "--rm", "localhost/busybox",
        "echo", "hello"]  # fmt: skip
MANY = {"build", "rebuild", "up", "down", "status"}  # verbs that take several suites
ALL_BY_DEFAULT = {"down", "status"}


def parse(argv: list[str]) -> tuple[str | None, list[str]]:
    """The --suite value (None if not given) and the rest of argv."""
    if argv and argv[0].startswith("--suite="):
        return argv[0].split("=", 1)[1], argv[1:]
    if argv and argv[0] == "--suite":
        if len(argv) < 2:
            raise TestbedError("--suite needs a name")
        return argv[1], argv[2:]
    return None, argv


def main(argv: list[str]) -> int:
    try:
        suite, argv = parse(argv)
        if not argv:
            print(__doc__, file=sys.stderr)
            return 2
        verb, rest = argv[0], argv[1:]
        if suite is None and verb in ALL_BY_DEFAULT:
            suite = "all"
        suites = selected_suites(suite)
        if len(suites) > 1 and verb not in MANY:
            raise TestbedError(f"`{verb}` works on one suite: pick one with --suite NAME")
        testbeds = [Testbed(suite=one) for one in suites]
        testbed = testbeds[0]
        if verb in ("build", "rebuild"):
            for bed in testbeds:
                if verb == "rebuild":
                    bed.down()
                with bed.locked():
                    if verb == "rebuild":
                        bed.remove_tree()
                    bed.build()
        elif verb == "up":
            for bed in testbeds:
                bed.up()
        elif verb == "down":  # the booted testbed, and the suite's container without systemd
            from .native import NativeContainer

            for bed in testbeds:
                bed.down()
                NativeContainer(suite=bed.suite, cache=bed.cache, repo=bed.repo).down()
        elif verb == "status":
            for bed in testbeds:
                state = "up" if bed.is_up() else "down"
                print(f"{bed.suite.name}: {state} ({bed.tree})")
        elif verb == "install":
            testbed.install_project()
        elif verb in ("run", "shell"):
            command = rest or ["bash", "-l"]
            if not testbed.is_up():
                raise TestbedError(
                    f"the {testbed.suite.name} testbed is not running: run `./dev up` first"
                )
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
