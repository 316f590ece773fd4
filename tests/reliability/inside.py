"""Running the suite's driver scripts inside the testbed, and small shared helpers."""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from typing import Any

from tests.testbed.testbed import Testbed

# The checkout is bind-mounted read-only at /src inside the testbed.
DRIVERS = "/src/tests/reliability/drivers"
PYTHON = "/opt/runas-podman/venv/bin/python"


def run_driver(tb: Testbed, name: str, spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run drivers/NAME.py inside the testbed, as root, with SPEC as JSON on stdin; its
    JSON answer."""
    result = tb.run([PYTHON, f"{DRIVERS}/{name}.py"], input=json.dumps(spec), timeout=timeout)
    assert result.returncode == 0, f"driver {name} exited {result.returncode}:\n{result.stderr}"
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


def median_ms(seconds: Sequence[float]) -> int:
    return round(statistics.median(seconds) * 1000) if seconds else 0


def sh(tb: Testbed, script: str, **kwargs: Any) -> Any:
    return tb.run(["bash", "-c", script], **kwargs)
