"""systemd's D-Bus API through dbus-next's low-level interface.

Facts this layer is built on (docs/testbed.md): fds travel only on a connection made
with negotiate_unix_fd=True; signals arrive only after both Manager.Subscribe() and a
bus AddMatch rule; JobRemoved can arrive before StartTransientUnit's reply, so every
one seen is kept; dbus-next has no per-call timeout, so each call is bounded here.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import Any, NamedTuple

from dbus_next import Message, MessageType, Variant
from dbus_next.aio import MessageBus
from dbus_next.constants import BusType, MessageFlag

from runas_podman.core.errors import BusCallError, RunasError
from runas_podman.core.properties import StartCall, TransientUnit

SYSTEMD = "org.freedesktop.systemd1"
MANAGER_PATH = "/org/freedesktop/systemd1"
MANAGER = "org.freedesktop.systemd1.Manager"
UNIT = "org.freedesktop.systemd1.Unit"
SERVICE = "org.freedesktop.systemd1.Service"
PROPERTIES = "org.freedesktop.DBus.Properties"
CALL_TIMEOUT = 30.0
# JobRemoved may come before the reply naming the job: keep the recent ones, not all.
MAX_REMEMBERED_JOBS = 256


@contextlib.asynccontextmanager
async def connected(connecting: Awaitable[SystemdBus]) -> AsyncIterator[SystemdBus]:
    """`async with connected(SystemdBus.connect_system()) as bus:` disconnects on every path."""
    bus = await connecting
    try:
        yield bus
    finally:
        bus.disconnect()


def unit_object_path(unit: str) -> str:
    """systemd's object path for a unit name (sd_bus_path_encode's escaping)."""
    escaped = "".join(
        char if char.isascii() and (char.isalnum()) and not (i == 0 and char.isdigit())
        else f"_{ord(char):02x}"
        for i, char in enumerate(unit)
    )  # fmt: skip
    return f"{MANAGER_PATH}/unit/{escaped}"


class UnitWatch:
    """A unit's PropertiesChanged signals: an event set on each, and the values they carried
    (systemd sends ActiveState, ExecMainCode/Status and Result with their new values, so the
    end of a unit is usually known without asking)."""

    def __init__(self) -> None:
        self.changed = asyncio.Event()
        self.values: dict[str, Any] = {}

    def update(self, values: dict[str, Any]) -> None:
        self.values.update({name: variant.value for name, variant in values.items()})
        self.changed.set()


class JobResult(NamedTuple):
    job: str
    unit: str
    result: str


class SystemdBus:
    """A connection to one service manager (system bus, or a user's bus)."""

    def __init__(self, bus: MessageBus, description: str) -> None:
        self.bus = bus
        self.description = description
        self.jobs_done: dict[str, JobResult] = {}
        self._job_waiters: dict[str, asyncio.Future[JobResult]] = {}
        self._unit_watchers: dict[str, UnitWatch] = {}
        self._job_units: set[str] = set()
        self._subscribed = False
        self._version: str | None = None
        bus.add_message_handler(self._on_message)

    @classmethod
    async def connect_system(cls) -> SystemdBus:
        address = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/run/dbus/system_bus_socket")
        return await cls.connect(address, BusType.SYSTEM, "the system bus")

    @classmethod
    async def connect(cls, address: str, bus_type: BusType, description: str) -> SystemdBus:
        try:
            bus = await asyncio.wait_for(
                MessageBus(
                    bus_address=address, bus_type=bus_type, negotiate_unix_fd=True
                ).connect(),
                CALL_TIMEOUT,
            )
        except Exception as error:  # OSError, EOFError, dbus-next's AuthError/InvalidAddressError
            reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
            from runas_podman.host.hints import no_bus_reason

            raise RunasError(
                f"cannot connect to {description} ({address}): {reason}; {no_bus_reason()}"
            ) from None
        return cls(bus, description)

    def disconnect(self) -> None:
        self.bus.disconnect()

    # --- calls ----------------------------------------------------------------

    async def call(
        self,
        member: str,
        signature: str = "",
        body: Sequence[Any] = (),
        *,
        path: str = MANAGER_PATH,
        interface: str = MANAGER,
        destination: str = SYSTEMD,
        unix_fds: Sequence[int] = (),
        interactive: bool = False,
    ) -> list[Any]:
        message = Message(
            destination=destination,
            path=path,
            interface=interface,
            member=member,
            signature=signature,
            body=list(body),
            unix_fds=list(unix_fds),
            flags=MessageFlag.ALLOW_INTERACTIVE_AUTHORIZATION if interactive else MessageFlag.NONE,
        )
        try:
            # Interactive authorization may wait for a human at a polkit agent.
            timeout = None if interactive else CALL_TIMEOUT
            reply = await asyncio.wait_for(self.bus.call(message), timeout)
        except TimeoutError:
            raise RunasError(f"{self.description} did not answer {member} in time") from None
        except (OSError, EOFError):
            raise RunasError(f"lost the connection to {self.description} during {member}") from None
        assert reply is not None
        if reply.message_type == MessageType.ERROR:
            text = reply.body[0] if reply.body and isinstance(reply.body[0], str) else ""
            raise BusCallError(reply.error_name or "unknown", text)
        return list(reply.body)

    async def add_match(self, rule: str) -> None:
        await self.call(
            "AddMatch", "s", [rule], path="/org/freedesktop/DBus",
            interface="org.freedesktop.DBus", destination="org.freedesktop.DBus",
        )  # fmt: skip

    async def get_properties(self, path: str, interface: str) -> dict[str, Any]:
        (values,) = await self.call("GetAll", "s", [interface], path=path, interface=PROPERTIES)
        return {name: variant.value for name, variant in values.items()}

    async def get_property(self, path: str, interface: str, name: str) -> Any:
        (variant,) = await self.call(
            "Get", "ss", [interface, name], path=path, interface=PROPERTIES
        )
        return variant.value

    async def manager_version(self) -> str:
        """The manager's Version, asked once per connection."""
        if self._version is None:
            self._version = str(await self.get_property(MANAGER_PATH, MANAGER, "Version"))
        return self._version

    # --- signals --------------------------------------------------------------

    async def watch_jobs(self, unit: str) -> None:
        """Receive JobRemoved for UNIT's jobs: subscribe (once) and add the match rule (both
        are needed). The rule names the unit (arg2), so the bus does not send this client
        every other job of the manager to decode and drop.

        Sent back to back: one connection's messages are handled in order, so both
        are in force before any later call of ours reaches systemd.
        """
        if unit in self._job_units:
            return
        self._job_units.add(unit)
        rule = (
            f"type='signal',sender='{SYSTEMD}',path='{MANAGER_PATH}',"
            f"interface='{MANAGER}',member='JobRemoved',arg2='{unit}'"
        )
        calls: list[Awaitable[object]] = [self.add_match(rule)]
        if not self._subscribed:  # systemd refuses a second Subscribe from the same client
            self._subscribed = True
            calls.append(self.call("Subscribe"))
        await asyncio.gather(*calls)

    async def watch_unit(self, unit: str) -> UnitWatch:
        """The unit's property changes from now on (see UnitWatch): those of its Unit
        interface only (arg0), where ActiveState and InvocationID change; the Service
        interface's signals carry every exec property, and the outcome is read once."""
        path = unit_object_path(unit)
        watch = self._unit_watchers.setdefault(path, UnitWatch())
        await self.add_match(
            f"type='signal',sender='{SYSTEMD}',path='{path}',"
            f"interface='{PROPERTIES}',member='PropertiesChanged',arg0='{UNIT}'"
        )
        return watch

    async def get_named(self, path: str, interface: str, names: Sequence[str]) -> dict[str, Any]:
        """A few properties, asked together (pipelined), instead of GetAll's every one."""
        values = await asyncio.gather(*(self.get_property(path, interface, n) for n in names))
        return dict(zip(names, values, strict=True))

    def _on_message(self, message: Message) -> bool:
        if message.message_type != MessageType.SIGNAL:
            return False
        if message.member == "JobRemoved" and message.interface == MANAGER:
            _id, job, unit, result = message.body
            done = JobResult(job, unit, result)
            self.jobs_done[job] = done
            while len(self.jobs_done) > MAX_REMEMBERED_JOBS:  # every job of the manager arrives
                self.jobs_done.pop(next(iter(self.jobs_done)))
            waiter = self._job_waiters.pop(job, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(done)
        elif message.member == "PropertiesChanged" and message.path in self._unit_watchers:
            _interface, changed, _invalidated = message.body
            self._unit_watchers[message.path].update(changed)
        return False

    async def wait_job(self, job: str) -> JobResult:
        if job in self.jobs_done:
            return self.jobs_done.pop(job)
        waiter: asyncio.Future[JobResult] = asyncio.get_running_loop().create_future()
        self._job_waiters[job] = waiter
        return await waiter

    # --- units ----------------------------------------------------------------

    async def start_transient_unit(self, call: StartCall, interactive: bool = False) -> str:
        """StartTransientUnit(service, mode, properties, aux units): returns the job path.

        Auxiliary units are created in the same call (one authorization). Values of
        signature 'h' and 'a(hs)' are the caller's fds: each becomes an index into this
        message's fd array (built afresh for every call: dbus-next rewrites Variants of
        'h' to their index when sending).
        """
        fds: list[int] = []

        def fd_index(fd: int) -> int:
            fds.append(fd)
            return len(fds) - 1

        def body_of(unit: TransientUnit) -> list[list[Any]]:
            body = []
            for prop in unit.properties:
                value = prop.value
                if prop.signature == "h" and isinstance(value, int):
                    value = fd_index(value)
                elif prop.signature == "a(hs)" and isinstance(value, list):
                    value = [[fd_index(fd), name] for fd, name in value]
                body.append([prop.name, Variant(prop.signature, value)])
            return body

        body = body_of(call.unit)
        aux = [[unit.name, body_of(unit)] for unit in call.aux]
        (job,) = await self.call(
            "StartTransientUnit",
            "ssa(sv)a(sa(sv))",
            [call.unit.name, call.mode, body, aux],
            unix_fds=fds,
            interactive=interactive,
        )
        return str(job)

    async def reload(self) -> None:
        await self.call("Reload")

    async def enable_unit_files(self, units: Sequence[str]) -> None:
        await self.call("EnableUnitFiles", "asbb", [list(units), False, True])

    async def run_job(self, method: str, unit: str) -> JobResult:
        """StartUnit/StopUnit/RestartUnit in mode replace, and wait for the job."""
        await self.watch_jobs(unit)
        (job,) = await self.call(method, "ss", [unit, "replace"])
        return await self.wait_job(str(job))

    async def start_unless_active(self, unit: str) -> JobResult | None:
        """StartUnit and wait, unless the unit is active already (then None)."""
        if await self.unit_state(unit) == "active":
            return None
        return await self.run_job("StartUnit", unit)

    async def unit_state(self, unit: str) -> str:
        return str(await self.get_property(unit_object_path(unit), UNIT, "ActiveState"))
