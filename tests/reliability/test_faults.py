"""Faults: SIGKILL, SIGTERM or SIGINT to the client leave nothing running.

For `exec` on both managers, `podman run` of a container whose PID 1 ignores SIGTERM
(busybox `sleep` as PID 1: podman's default stop has to cope), and `runas`. After the
signal, within a bounded time: no process of the command (found by its unique sleep
duration), no container, neither the unit nor its lifeline.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest

from tests.reliability.conftest import Figures
from tests.reliability.inside import run_driver
from tests.testbed.testbed import Testbed

SIGNALS = ["KILL", "TERM", "INT"]
# What the client's exit status must be: killed by SIGKILL (the driver's Popen reports
# -9); otherwise it stops the unit and exits 128+N (docs/cli.md, docs/elevation.md).
EXPECTED_STATUS = {"KILL": -9, "TERM": 143, "INT": 130}


class Target(NamedTuple):
    name: str
    manager: str  # "system" or "user": where the unit and its lifeline live
    first_sleep: int  # the command is `sleep N`, N unique per case (first_sleep + signal's place)
    cleanup_timeout: float

    def spec(self, signal_name: str) -> dict[str, Any]:
        place = SIGNALS.index(signal_name)
        duration = str(self.first_sleep + place)
        unit = f"rp-fault-{self.name}-{signal_name.lower()}"
        container = None
        if self.name == "exec-system":
            argv = ["runas-podman", "exec", "-u", "test", "--unit", unit, "--", "sleep", duration]
        elif self.name == "exec-user":
            argv = [
                "runas-podman",
                "exec",
                "-u",
                "test",
                "--via",
                "user",
                "--unit",
                unit,
                "--",
                "sleep",
                duration,
            ]
        elif self.name == "podman-run":
            container = unit
            argv = [
                "runas-podman",
                "podman",
                "-u",
                "test",
                "--unit",
                unit,
                "--",
                "run",
                "--rm",
                "--network=none",
                "--name",
                container,
                "localhost/busybox",
                "sleep",
                duration,
            ]
        else:
            argv = ["runas", "-u", "test", "--unit", unit, "sleep", duration]
        return {
            "argv": argv,
            "signal": signal_name,
            "sleep": duration,
            "container": container,
            "units": [
                [self.manager, f"{unit}.service"],
                [self.manager, f"{unit}-lifeline.service"],
            ],
            "cleanup_timeout": self.cleanup_timeout,
        }


TARGETS = [
    Target("exec-system", "system", 311, 20),
    Target("exec-user", "user", 321, 20),
    Target("podman-run", "system", 478, 30),
    Target("runas", "system", 331, 20),
]


@pytest.mark.parametrize("signal_name", SIGNALS)
@pytest.mark.parametrize("target", TARGETS, ids=[target.name for target in TARGETS])
def test_signalled_client_leaves_nothing_behind(
    tb: Testbed, figures: Figures, target: Target, signal_name: str
) -> None:
    spec = target.spec(signal_name)
    answer = run_driver(tb, "faults", spec, timeout=target.cleanup_timeout + 90)
    left = answer["leftovers"]
    if answer["clean_seconds"] is not None:
        cleanup = f"clean after {answer['clean_seconds']:.1f} s"
    else:
        cleanup = f"NOT clean after {target.cleanup_timeout:.0f} s: {left}"
    exited = (
        f"exited {answer['status']} after {answer['client_seconds']:.1f} s"
        if answer["status"] is not None
        else f"still running after {target.cleanup_timeout:.0f} s"
    )
    figures(f"fault {target.name} SIG{signal_name}: client {exited}, {cleanup}")
    assert left == {"processes": [], "containers": [], "units": []}, (
        f"left behind {target.cleanup_timeout:.0f} s after SIG{signal_name} to "
        f"{' '.join(spec['argv'])}: {left}; client stderr: {answer['client_stderr']!r}"
    )
    assert answer["status"] == EXPECTED_STATUS[signal_name], answer["client_stderr"]
