"""Load: many clients at once, each must get its own output back and status 0.

The clients start together from one driver process inside the testbed
(drivers/load.py); each prints its own index, and every run is checked.
"""

from __future__ import annotations

from typing import NamedTuple

import pytest

from tests.reliability.conftest import Figures
from tests.reliability.inside import median_ms, run_driver
from tests.testbed.testbed import Testbed


class LoadCase(NamedTuple):
    name: str
    clients: int
    argv: list[str]
    expected: str  # the stdout of run {i}


SHOW_INDEX_AND_USER = ["sh", "-c", 'echo "{i} $(id -un)"']
CASES = [
    LoadCase("exec-system", 50,
             ["runas-podman", "exec", "-u", "test", "--", *SHOW_INDEX_AND_USER], "{i} test\n"),
    LoadCase("exec-user", 20,
             ["runas-podman", "exec", "-u", "test", "--via", "user", "--", *SHOW_INDEX_AND_USER],
             "{i} test\n"),
    LoadCase("podman-run", 10,
             ["runas-podman", "podman", "-u", "test", "--", "run", "--rm", "--network=none",
              "localhost/busybox", "echo", "{i}"], "{i}\n"),
    LoadCase("runas", 20, ["runas", "-u", "test", *SHOW_INDEX_AND_USER], "{i} test\n"),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_concurrent_clients_all_succeed(tb: Testbed, figures: Figures, case: LoadCase) -> None:
    answer = run_driver(
        tb, "load", {"argv": case.argv, "count": case.clients, "timeout": 120}, timeout=180
    )
    runs = answer["runs"]
    failed = [
        run
        for run in runs
        if (run["status"], run["stdout"], run["stderr"])
        != (0, case.expected.replace("{i}", str(run["index"])), "")
    ]
    # podman itself now and then loses a short-lived container's output under concurrency
    # and still exits 0: measured through the plain systemd-run line as well, with no code
    # of ours in the path (bookworm's 4.3: 1 in 100, twice; sid's 5.8: 3 in 1,900, where our two
    # paths lost 0 in 1,600; docs/testbed.md). Such runs are counted, not failed.
    lossy = case.name == "podman-run"
    lost = [run for run in failed
            if lossy and (run["status"], run["stdout"], run["stderr"]) == (0, "", "")]  # fmt: skip
    failed = [run for run in failed if run not in lost]
    seconds = [run["seconds"] for run in runs]
    figures(
        f"load {case.name}: {case.clients - len(failed) - len(lost)}/{case.clients} right"
        + (f" ({len(lost)} lost by podman's own race, status 0)" if lost else "")
        + f", wall {answer['wall_seconds']:.1f} s, per run median {median_ms(seconds)} ms, "
        f"max {max(seconds) * 1000:.0f} ms"
    )
    assert len(lost) <= 2, f"podman lost the output of {len(lost)} of {case.clients} runs"
    assert len(runs) == case.clients
    assert failed == [], f"{len(failed)} of {case.clients} runs went wrong, e.g. {failed[:3]}"
