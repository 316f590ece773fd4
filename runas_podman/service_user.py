"""Setting a service user up for rootless podman, idempotently.

Steps: the user (created on request), subordinate uid/gid ranges, lingering (through
logind's D-Bus API), user@UID.service, and podman.socket in the user's own manager.
Each step says whether it changed anything.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import RunasError
from .plan import ServiceUser
from .systemd_bus import SystemdBus, connected

SUBID_COUNT = 65536
SUBID_MIN = 100000
LINGER_DIR = "/var/lib/systemd/linger"
LOGIND = "org.freedesktop.login1"


@dataclass(frozen=True)
class SubIdRange:
    owner: str  # a name or a uid, as written in /etc/subuid
    start: int
    count: int

    @property
    def end(self) -> int:
        return self.start + self.count - 1


@dataclass(frozen=True)
class Step:
    what: str
    changed: bool
    detail: str

    def line(self) -> str:
        return f"{self.what}: {self.detail}"


def parse_subids(text: str) -> list[SubIdRange]:
    ranges = []
    for line in text.splitlines():
        fields = line.strip().split(":")
        if len(fields) == 3 and all(f.isascii() and f.isdigit() for f in fields[1:]):
            ranges.append(SubIdRange(fields[0], int(fields[1]), int(fields[2])))
    return ranges


def range_for(ranges: Iterable[SubIdRange], user: ServiceUser) -> SubIdRange | None:
    return next((r for r in ranges if r.owner in (user.name, str(user.uid))), None)


def free_subid_start(ranges: Iterable[SubIdRange], count: int = SUBID_COUNT) -> int:
    """The lowest start >= SUBID_MIN whose `count` ids overlap no existing range."""
    start = SUBID_MIN
    for r in sorted(ranges, key=lambda r: r.start):
        if r.start <= start + count - 1 and start <= r.end:
            start = r.end + 1
    return start


def read_subids(path: str) -> list[SubIdRange]:
    try:
        with open(path) as subids:
            return parse_subids(subids.read())
    except FileNotFoundError:
        return []


def _run(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        message = (result.stderr.strip().splitlines() or ["no message"])[-1]
        raise RunasError(f"{argv[0]} failed: {message}")


def create_user(name: str, home: str | None) -> Step:
    home = home or f"/var/lib/{name}"
    _run(["useradd", "--system", "--create-home", "--home-dir", home,
          "--shell", "/usr/sbin/nologin", "--user-group", name])  # fmt: skip
    return Step("user", True, f"created system user {name} (home {home}, no login shell)")


def ensure_subids(user: ServiceUser) -> Step:
    subuids, subgids = read_subids("/etc/subuid"), read_subids("/etc/subgid")
    have_uid, have_gid = range_for(subuids, user), range_for(subgids, user)
    if have_uid and have_gid:
        spans = f"{have_uid.start}-{have_uid.end} / {have_gid.start}-{have_gid.end}"
        return Step("subuid/subgid", False, f"{spans} (present)")
    start = free_subid_start([*subuids, *subgids])
    span = f"{start}-{start + SUBID_COUNT - 1}"
    argv = ["usermod"]
    if not have_uid:
        argv += ["--add-subuids", span]
    if not have_gid:
        argv += ["--add-subgids", span]
    _run([*argv, user.name])
    return Step("subuid/subgid", True, f"added {span}")


async def ensure_linger(system: SystemdBus, user: ServiceUser) -> Step:
    if os.path.exists(f"{LINGER_DIR}/{user.name}"):
        return Step("linger", False, "enabled (already)")
    await system.call(
        "SetUserLinger", "ubb", [user.uid, True, False], destination=LOGIND,
        path="/org/freedesktop/login1", interface="org.freedesktop.login1.Manager",
    )  # fmt: skip
    return Step("linger", True, "enabled through logind")


async def ensure_unit_active(bus: SystemdBus, unit: str, what: str) -> Step:
    done = await bus.start_unless_active(unit)
    if done is None:
        return Step(what, False, "active (already)")
    if done.result != "done":
        raise RunasError(f"{unit} failed to start ({done.result}): see its journal")
    return Step(what, True, "started")


async def ensure_podman_socket(user_bus: SystemdBus) -> Step:
    (state,) = await user_bus.call("GetUnitFileState", "s", ["podman.socket"])
    enabled = state == "enabled"
    if not enabled:
        await user_bus.call("EnableUnitFiles", "asbb", [["podman.socket"], False, True])
    started = await ensure_unit_active(user_bus, "podman.socket", "podman.socket")
    changed = started.changed or not enabled
    detail = "enabled and active" + ("" if changed else " (already)")
    return Step("podman.socket", changed, detail)


async def setup(name: str, create: bool, home: str | None) -> list[Step]:
    from . import lookup
    from .user_bus import ensure_user_manager, open_user_bus

    if os.geteuid() != 0:
        raise RunasError("setup changes system state: run it as root")
    lookup.checked_identity(name, "user")
    steps: list[Step] = []
    try:
        user = lookup.service_user(name)
        steps.append(Step("user", False, f"{user.name} exists (uid {user.uid})"))
    except RunasError:
        if not create:
            raise RunasError(f"unknown user '{name}': add --create to create it") from None
        steps.append(create_user(name, home))
        user = lookup.service_user(name)
    steps.append(ensure_subids(user))
    async with connected(SystemdBus.connect_system()) as system:
        steps.append(await ensure_linger(system, user))
        started = await ensure_user_manager(system, user)
        detail = "started" if started else "active (already)"
        steps.append(Step(user.user_manager_unit, started, detail))
    async with connected(open_user_bus(user)) as user_bus:
        steps.append(await ensure_podman_socket(user_bus))
    return steps
