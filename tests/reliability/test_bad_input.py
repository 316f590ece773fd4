"""Bad input: 1000 generated argument vectors for each of runas-podman exec, runas-podman
podman and runas (seeded, so a failure replays), checked against the documented contract.

runas-podman: 2 bad usage, 125 its own failure, 126 cannot execute, 127 not found, each
with exactly one line on stderr starting `runas-podman: `; else the command's own status.
runas: 1 for each of its own failures, with one line starting `runas: `; else the
command's status. Never a traceback, never a unit left behind.

drivers/fuzz.py generates and runs the vectors inside the testbed, each in a forked child
that calls the real entry point; the first 25 also run through the installed executable
and must answer the same.
"""

from __future__ import annotations

import json

import pytest

from tests.reliability.conftest import Figures
from tests.reliability.inside import run_driver
from tests.testbed.testbed import Testbed

SEED = 20261201
VECTORS = 1000
CROSSCHECK = 25


@pytest.mark.parametrize("tool", ["exec", "podman", "runas"])
def test_generated_bad_input_keeps_the_contract(tb: Testbed, figures: Figures, tool: str) -> None:
    spec = {
        "tool": tool,
        "seed": SEED,
        "count": VECTORS,
        "crosscheck": CROSSCHECK,
        "workers": 3,
        "timeout": 15,  # per vector: the slowest (podman run) take 1-2 s
        "max_hangs": 6,  # then stop: the suite must stay within its time
    }
    answer = run_driver(tb, "fuzz", spec, timeout=600)
    check = answer["crosscheck"]
    figures(
        f"bad input {tool}: {answer['ran']} of {answer['vectors']} vectors (seed {SEED}) "
        f"in {answer['seconds']:.1f} s, "
        f"median {answer['median_ms']:.0f} ms per forked run (first {check['vectors']} also "
        f"through the executable: {check['exec_median_ms']:.0f} ms each, "
        f"{len(check['mismatches'])} answered differently); statuses {answer['statuses']}; "
        f"{answer['violation_count']} violations"
    )
    for example in answer["violations"]:
        figures(f"bad input {tool} violation: {json.dumps(example, ensure_ascii=False)[:1500]}")
    assert answer["ran"] == VECTORS, f"stopped after {answer['ran']} vectors: too many hangs"
    assert check["mismatches"] == [], "the forked runs do not answer as the executable does"
    assert answer["violations"] == [], (
        f"{answer['violation_count']} vectors broke the contract; one of each kind:\n"
        + "\n".join(json.dumps(example, ensure_ascii=False) for example in answer["violations"])
    )
    assert answer["units_left"] == []  # runas-*, runas-podman-*, rp-*; the tb fixture too
