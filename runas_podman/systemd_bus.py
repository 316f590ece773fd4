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
from dataclasses import dataclass
from typing import Any

from dbus_next import Message, MessageType, Variant
from dbus_next.aio import MessageBus
from dbus_next.constants import BusType, MessageFlag

from .errors import BusCallError, RunasError
from .unitprops import UnitProperty

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


@dataclass
class FdProperty:
    """A property whose value is an fd (signature 'h'), sent as an index into the message's fds."""

    name: str
    fd: int


@dataclass
class JobResult:
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
        self._unit_watchers: dict[str, asyncio.Event] = {}
        self._watching_jobs = False
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
            raise RunasError(
                f"cannot connect to {description} ({address}): {reason}; "
                "is dbus running? (systemctl status dbus.socket)"
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

    async def watch_jobs(self) -> None:
        """Receive JobRemoved: subscribe and add the match rule (both are needed).

        Sent back to back: one connection's messages are handled in order, so both
        are in force before any later call of ours reaches systemd.
        """
        if self._watching_jobs:
            return  # systemd refuses a second Subscribe from the same client
        self._watching_jobs = True
        rule = (
            f"type='signal',sender='{SYSTEMD}',path='{MANAGER_PATH}',"
            f"interface='{MANAGER}',member='JobRemoved'"
        )
        await asyncio.gather(self.add_match(rule), self.call("Subscribe"))

    async def watch_unit(self, unit: str) -> asyncio.Event:
        """An event set whenever the unit's properties change (re-read them then)."""
        path = unit_object_path(unit)
        event = self._unit_watchers.setdefault(path, asyncio.Event())
        await self.add_match(
            f"type='signal',sender='{SYSTEMD}',path='{path}',"
            f"interface='{PROPERTIES}',member='PropertiesChanged'"
        )
        return event

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
            self._unit_watchers[message.path].set()
        return False

    async def wait_job(self, job: str) -> JobResult:
        if job in self.jobs_done:
            return self.jobs_done.pop(job)
        waiter: asyncio.Future[JobResult] = asyncio.get_running_loop().create_future()
        self._job_waiters[job] = waiter
        return await waiter

    # --- units ----------------------------------------------------------------

    async def start_transient_unit(
        self,
        name: str,
        properties: Sequence[UnitProperty],
        fd_properties: Sequence[FdProperty] = (),
        extra_fds: Sequence[tuple[int, str]] = (),
        *,
        aux_units: Sequence[tuple[str, Sequence[UnitProperty], Sequence[FdProperty]]] = (),
        interactive: bool = False,
    ) -> str:
        """StartTransientUnit(name, "fail", properties, aux): returns the job path.

        Auxiliary units are created in the same call (one authorization). The property
        lists are built afresh for every call, with fds as indices into this message's
        fd array.
        """
        fds: list[int] = []

        def body_of(
            props: Sequence[UnitProperty], fd_props: Sequence[FdProperty]
        ) -> list[list[Any]]:
            body = [[prop.name, Variant(prop.signature, prop.value)] for prop in props]
            for fd_prop in fd_props:
                fds.append(fd_prop.fd)
                body.append([fd_prop.name, Variant("h", len(fds) - 1)])
            return body

        body_properties = body_of(properties, fd_properties)
        if extra_fds:
            entries = []
            for fd, fd_name in extra_fds:
                fds.append(fd)
                entries.append([len(fds) - 1, fd_name])
            body_properties.append(["ExtraFileDescriptors", Variant("a(hs)", entries)])
        aux = [[aux_name, body_of(props, fd_props)] for aux_name, props, fd_props in aux_units]
        (job,) = await self.call(
            "StartTransientUnit",
            "ssa(sv)a(sa(sv))",
            [name, "fail", body_properties, aux],
            unix_fds=fds,
            interactive=interactive,
        )
        return str(job)

    async def run_job(self, method: str, unit: str) -> JobResult:
        """StartUnit/StopUnit/RestartUnit in mode replace, and wait for the job."""
        await self.watch_jobs()
        (job,) = await self.call(method, "ss", [unit, "replace"])
        return await self.wait_job(str(job))

    async def start_unless_active(self, unit: str) -> JobResult | None:
        """StartUnit and wait, unless the unit is active already (then None)."""
        if await self.unit_state(unit) == "active":
            return None
        return await self.run_job("StartUnit", unit)

    async def unit_state(self, unit: str) -> str:
        return str(await self.get_property(unit_object_path(unit), UNIT, "ActiveState"))
