"""Setting a service user up for rootless podman, idempotently.

Steps: the user (created on request), subordinate uid/gid ranges, lingering (through
logind's D-Bus API), user@UID.service, and podman.socket in the user's own manager.
Each step says whether it changed anything.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from runas_podman.bus.systemd_bus import SystemdBus, connected
from runas_podman.core.errors import BusCallError, RunasError, UsageError
from runas_podman.core.model import ServiceUser

SUBID_COUNT = 65536
SUBID_MIN = 100000
LINGER_DIR = "/var/lib/systemd/linger"
LOGIND = "org.freedesktop.login1"


RECORDS = Path("/var/lib/runas-podman/service-users")


@dataclass(frozen=True)
class Record:
    """What setup made for a user: whether it created the account, the sub-id span it
    added (start-end, "" when it added none)."""

    created: bool = False
    subids: str = ""

    @classmethod
    def read(cls, name: str) -> Record | None:
        try:
            data = json.loads((RECORDS / name).read_text())
        except (FileNotFoundError, ValueError):
            return None
        return cls(bool(data.get("created")), str(data.get("subids", "")))

    def write(self, name: str) -> None:
        RECORDS.mkdir(parents=True, exist_ok=True, mode=0o755)
        path = RECORDS / name
        path.write_text(json.dumps({"created": self.created, "subids": self.subids}) + "\n")

    @staticmethod
    def forget(name: str) -> None:
        (RECORDS / name).unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # the last one: nothing of ours stays behind
            RECORDS.rmdir()


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
        """A change reads as what was done ("created user …"); the rest as a state."""
        return self.detail if self.changed else f"{self.what}: {self.detail}"


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


Report = Callable[[Step], None]
Undo = Callable[[], Awaitable[None]]


class Changes:
    """The changes setup makes, reported as they are made, and undone if a later one fails.

    With `dry_run`, nothing is made: each change is reported as what would be done.
    """

    def __init__(self, report: Report, dry_run: bool) -> None:
        self.report = report
        self.dry_run = dry_run
        self.steps: list[Step] = []
        self._undo: list[tuple[str, Undo]] = []
        # What `remove` may take back later (removal.Record): made by this run.
        self.created_user = False
        self.subid_span = ""

    def unchanged(self, what: str, detail: str) -> None:
        self._add(Step(what, False, detail))

    def would(self, what: str, text: str) -> None:
        """A change a dry run lists without a way to try it (it depends on an earlier one)."""
        self._add(Step(what, True, f"would {text}"))

    async def make(
        self, what: str, done: str, would: str, action: Callable[[], Awaitable[None]],
        undo: Undo | None,
    ) -> None:  # fmt: skip
        if self.dry_run:
            self._add(Step(what, True, f"would {would}"))
            return
        await action()
        if undo is not None:
            self._undo.append((done, undo))
        self._add(Step(what, True, done))

    def _add(self, step: Step) -> None:
        self.steps.append(step)
        self.report(step)

    async def undo_all(self) -> list[str]:
        """Undo what was made, newest first; what could not be undone, for the error."""
        failed = []
        for done, undo in reversed(self._undo):
            try:
                await undo()
                self.report(Step("undo", True, f"undone: {done}"))
            except (RunasError, BusCallError, OSError) as error:
                failed.append(f"{done} ({getattr(error, 'message', error)})")
        self._undo.clear()
        return failed


def _blocking(argv: list[str]) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        _run(argv)

    return run


async def _check_logind(system: SystemdBus) -> None:
    try:
        await system.call(
            "Ping", destination=LOGIND, path="/org/freedesktop/login1",
            interface="org.freedesktop.DBus.Peer",
        )  # fmt: skip
    except BusCallError as error:
        raise RunasError(
            f"systemd-logind does not answer on the system bus ({error.text or error.name}): "
            "setup needs it for lingering; start it (systemctl start systemd-logind)"
        ) from None


async def _set_linger(system: SystemdBus, uid: int, enable: bool) -> None:
    await system.call(
        "SetUserLinger", "ubb", [uid, enable, False], destination=LOGIND,
        path="/org/freedesktop/login1", interface="org.freedesktop.login1.Manager",
    )  # fmt: skip


def _check_tools(*names: str) -> None:
    import shutil

    for name in names:
        if shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin") is None:
            raise RunasError(f"{name} is not installed: setup needs it (package passwd/shadow)")


async def setup(
    name: str, create: bool, home: str | None, report: Report, dry_run: bool = False
) -> list[Step]:
    """Set `name` up; each step is reported as it is made. On a failure, what was made is
    undone (newest first) before the error is raised, so nothing is left half done."""
    from runas_podman.bus.user_bus import open_user_bus
    from runas_podman.host import lookup

    lookup.checked_identity(name, "user")
    if os.geteuid() != 0 and not dry_run:
        raise RunasError("setup changes system state: run it as root (or try --dry-run)")
    try:
        user: ServiceUser | None = lookup.service_user(name)
    except UsageError:
        if not create:
            raise UsageError(f"unknown user '{name}': add --create to create it") from None
        user = None
    _check_tools(*(["useradd"] if user is None else []), "usermod")
    changes = Changes(report, dry_run)
    # Everything that can fail before a change is checked first: the bus and logind.
    async with connected(SystemdBus.connect_system()) as system:
        await _check_logind(system)
        try:
            await _setup_steps(changes, system, name, user, home, open_user_bus)
            if not dry_run:
                _record(name, changes)
        except BaseException as error:
            failed = await changes.undo_all()
            if failed and isinstance(error, RunasError):
                raise RunasError(
                    f"{error.message}; could not undo: {', '.join(failed)}", error.status
                ) from None
            raise
    return changes.steps


def _record(name: str, changes: Changes) -> None:
    """Remember what this run made, with what earlier runs made (removal.Record): what
    `remove` may take back without --force."""
    before = Record.read(name) or Record()
    Record(
        created=before.created or changes.created_user,
        subids=changes.subid_span or before.subids,
    ).write(name)


async def _setup_steps(
    changes: Changes,
    system: SystemdBus,
    name: str,
    user: ServiceUser | None,
    home: str | None,
    open_user_bus: Callable[[ServiceUser], Awaitable[SystemdBus]],
) -> None:
    from runas_podman.host import lookup

    if user is None:
        home = home or f"/var/lib/{name}"
        await changes.make(
            "user",
            f"created user {name} (system user, home {home}, no login shell)",
            f"create user {name} (system user, home {home}, no login shell)",
            _blocking(["useradd", "--system", "--create-home", "--home-dir", home,
                       "--shell", "/usr/sbin/nologin", "--user-group", name]),
            _blocking(["userdel", "--remove", name]),
        )  # fmt: skip
        changes.created_user = not changes.dry_run
        if changes.dry_run:  # the rest would follow for the new uid
            start = free_subid_start([*read_subids("/etc/subuid"), *read_subids("/etc/subgid")])
            span = f"{start}-{start + SUBID_COUNT - 1}"
            changes.would("subuid/subgid", f"add sub-ids {span} for {name} to /etc/subuid "
                          "and /etc/subgid")  # fmt: skip
            changes.would("linger", f"enable linger for {name} (logind)")
            changes.would("user manager", f"start the service manager of {name} (user@UID)")
            changes.would("podman.socket", f"enable and start podman.socket for {name}")
            return
        user = lookup.service_user(name)
    else:
        changes.unchanged("user", f"{user.name} exists (uid {user.uid})")
    await _subids(changes, user)
    if os.path.exists(f"{LINGER_DIR}/{user.name}"):
        changes.unchanged("linger", "enabled (already)")
    else:
        uid = user.uid

        async def linger_off() -> None:
            await _set_linger(system, uid, False)

        await changes.make(
            "linger", f"enabled linger for {user.name} (logind)",
            f"enable linger for {user.name} (logind)",
            lambda: _set_linger(system, uid, True), linger_off,
        )  # fmt: skip
    unit = user.user_manager_unit
    if await system.unit_state(unit) == "active":
        changes.unchanged(unit, "active (already)")
    else:
        await changes.make(
            unit, f"started {unit}", f"start {unit}",
            lambda: _start(system, unit), lambda: _stop(system, unit),
        )  # fmt: skip
    if changes.dry_run and changes.steps[-1].changed:  # no user manager to ask yet
        changes.would("podman.socket", f"enable and start podman.socket for {user.name}")
        return
    async with connected(open_user_bus(user)) as user_bus:
        await _podman_socket(changes, user_bus, user)


async def _subids(changes: Changes, user: ServiceUser) -> None:
    subuids, subgids = read_subids("/etc/subuid"), read_subids("/etc/subgid")
    have_uid, have_gid = range_for(subuids, user), range_for(subgids, user)
    if have_uid and have_gid:
        spans = f"{have_uid.start}-{have_uid.end} / {have_gid.start}-{have_gid.end}"
        changes.unchanged("subuid/subgid", f"{spans} (present)")
        return
    start = free_subid_start([*subuids, *subgids])
    span = f"{start}-{start + SUBID_COUNT - 1}"
    add, remove = ["usermod"], ["usermod"]
    files = []
    if not have_uid:
        add += ["--add-subuids", span]
        remove += ["--del-subuids", span]
        files.append("/etc/subuid")
    if not have_gid:
        add += ["--add-subgids", span]
        remove += ["--del-subgids", span]
        files.append("/etc/subgid")
    where = " and ".join(files)
    await changes.make(
        "subuid/subgid", f"added sub-ids {span} for {user.name} to {where}",
        f"add sub-ids {span} for {user.name} to {where}",
        _blocking([*add, user.name]), _blocking([*remove, user.name]),
    )  # fmt: skip
    if not changes.dry_run and not have_uid and not have_gid:
        changes.subid_span = span


async def _start(bus: SystemdBus, unit: str) -> None:
    done = await bus.run_job("StartUnit", unit)
    if done.result != "done":
        raise RunasError(f"{unit} failed to start ({done.result}): see its journal")


async def _stop(bus: SystemdBus, unit: str) -> None:
    await bus.run_job("StopUnit", unit)


async def _podman_socket(changes: Changes, user_bus: SystemdBus, user: ServiceUser) -> None:
    (state,) = await user_bus.call("GetUnitFileState", "s", ["podman.socket"])
    if state == "enabled":
        changes.unchanged("podman.socket", "enabled (already)")
    else:

        async def enable() -> None:
            await user_bus.call("EnableUnitFiles", "asbb", [["podman.socket"], False, True])

        async def disable() -> None:
            await user_bus.call("DisableUnitFiles", "asb", [["podman.socket"], False])

        await changes.make(
            "podman.socket", f"enabled podman.socket for {user.name}",
            f"enable podman.socket for {user.name}", enable, disable,
        )  # fmt: skip
    if await user_bus.unit_state("podman.socket") == "active":
        changes.unchanged("podman.socket", "active (already)")
    else:
        await changes.make(
            "podman.socket", f"started podman.socket for {user.name}",
            f"start podman.socket for {user.name}",
            lambda: _start(user_bus, "podman.socket"), lambda: _stop(user_bus, "podman.socket"),
        )  # fmt: skip
