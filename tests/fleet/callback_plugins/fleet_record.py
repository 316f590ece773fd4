"""Records every task result and the recap as JSON lines (for tests/fleet/test_fleet.py).

An aggregate callback: the default output stays as it is (the test reads it too, -vvv).
The file is $RUNAS_FLEET_RECORD. Results are the censored ones every callback gets.
"""

from __future__ import annotations

import json
import os
from typing import Any

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: fleet_record
type: aggregate
short_description: task results as JSON lines, for the fleet tests
description: Writes each task result and the recap to $RUNAS_FLEET_RECORD.
requirements: [enable in callbacks_enabled]
"""


def _part(result: Any, name: str) -> Any:
    # ansible-core 2.19 calls them host/task/result; older ones _host/_task/_result.
    return getattr(result, name, None) or getattr(result, f"_{name}")


class CallbackModule(CallbackBase):  # type: ignore[misc]
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "fleet_record"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._path = os.environ.get("RUNAS_FLEET_RECORD")

    def _write(self, record: dict[str, Any]) -> None:
        if self._path:
            with open(self._path, "a") as out:
                out.write(json.dumps(record, default=str) + "\n")

    def _record(self, result: Any, status: str) -> None:
        task = _part(result, "task")
        self._write(
            {
                "host": _part(result, "host").get_name(),
                "task": task.get_name(),
                "action": task.action,
                "status": status,
                "result": dict(_part(result, "result")),
            }
        )

    def v2_runner_on_ok(self, result: Any) -> None:
        self._record(result, "ok")

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        self._record(result, "ignored" if ignore_errors else "failed")

    def v2_runner_on_skipped(self, result: Any) -> None:
        self._record(result, "skipped")

    def v2_runner_on_unreachable(self, result: Any) -> None:
        self._record(result, "unreachable")

    def v2_playbook_on_stats(self, stats: Any) -> None:
        hosts = sorted(stats.processed.keys())
        self._write({"stats": {host: stats.summarize(host) for host in hosts}})
