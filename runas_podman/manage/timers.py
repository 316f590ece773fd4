"""`runas-podman timers -u USER`: the timers that run something as USER.

On the system manager, the timers whose service runs as USER (User=); on USER's own
manager, every timer (when that manager runs: it is not started to be listed). Read
over D-Bus: the timers by pattern, then per timer what it starts and when.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from runas_podman.bus.systemd_bus import (
    SERVICE,
    SystemdBus,
    connected,
    unit_object_path,
)
from runas_podman.core.model import ServiceUser
from runas_podman.core.timer import NOT_SET, format_time, next_elapse_usec
from runas_podman.core.unit import unit_name_is_valid
from runas_podman.run.timers import NEXT_ELAPSE, TIMER


@dataclass(frozen=True)
class TimerRow:
    timer: str
    activates: str
    manager: str  # "system" or "user"
    next_usec: int | None  # realtime µs, None: not scheduled
    last_usec: int | None

    def cells(self) -> list[str]:
        return [format_time(self.next_usec), format_time(self.last_usec), self.timer,
                self.activates, self.manager]  # fmt: skip


async def list_timers(user: ServiceUser, note: list[str]) -> list[TimerRow]:
    """USER's timers on both managers, soonest first; `note` gets what could not be seen."""
    rows: list[TimerRow] = []
    async with connected(SystemdBus.connect_system()) as system:
        rows += await _timers(system, "system", user)
        user_manager_runs = await system.unit_state(user.user_manager_unit) == "active"
    if user_manager_runs and os.geteuid() in (0, user.uid):
        from runas_podman.bus.user_bus import open_user_bus

        async with connected(open_user_bus(user)) as own:
            rows += await _timers(own, "user", None)
    elif user_manager_runs:
        note.append(f"{user.name}'s own manager's timers are not listed: only root or "
                    f"{user.name} may read them")  # fmt: skip
    return sorted(rows, key=lambda row: (row.next_usec is None, row.next_usec or 0, row.timer))


async def _timers(bus: SystemdBus, manager: str, user: ServiceUser | None) -> list[TimerRow]:
    """The manager's loaded timers; with USER: only those whose service runs as USER."""
    (units,) = await bus.call("ListUnitsByPatterns", "asas", [[], ["*.timer"]])
    names = [str(unit[0]) for unit in units]
    now = time.time_ns() // 1000, time.monotonic_ns() // 1000
    rows = await asyncio.gather(
        *(_row(bus, manager, name, user, now) for name in names), return_exceptions=True
    )
    # A timer that vanished meanwhile, or one this caller may not read: not listed.
    return [row for row in rows if isinstance(row, TimerRow)]


async def _row(
    bus: SystemdBus, manager: str, timer: str, user: ServiceUser | None, now: tuple[int, int]
) -> TimerRow | None:
    values = await bus.get_named(unit_object_path(timer), TIMER,
                                 ("Unit", *NEXT_ELAPSE, "LastTriggerUSec"))  # fmt: skip
    activates = str(values["Unit"])
    if not unit_name_is_valid(activates):
        return None  # (a user's bus answers what it likes: only unit names are shown)
    if user is not None:
        if not activates.endswith(".service"):
            return None  # only a service has User=; a timer may start a target
        runs_as = await bus.get_property(unit_object_path(activates), SERVICE, "User")
        if runs_as not in (user.name, str(user.uid)):
            return None
    last = int(values["LastTriggerUSec"])
    return TimerRow(
        timer=timer, activates=activates, manager=manager,
        next_usec=next_elapse_usec(int(values["NextElapseUSecRealtime"]),
                                   int(values["NextElapseUSecMonotonic"]), *now),
        last_usec=None if last in NOT_SET else last,
    )  # fmt: skip


def render(rows: Sequence[TimerRow], as_json: bool) -> str:
    if as_json:
        return json.dumps([asdict(row) for row in rows], indent=2)
    from runas_podman.manage.podman_api import render_table

    return render_table(["NEXT", "LAST", "TIMER", "ACTIVATES", "MANAGER"],
                        [row.cells() for row in rows])  # fmt: skip
