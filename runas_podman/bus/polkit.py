"""polkit's Authority over D-Bus: authorization checks and temporary authorizations.

Used by the root broker (CheckAuthorization of org.runas_podman.run for the client
process, with the command in the details) and by `runas -k/-K/-v` in the caller's own
process (its logind session's temporary authorizations: polkit lets a process see and
revoke those of the session it is in, and nobody else's).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runas_podman.core.errors import RunasError
from runas_podman.host.procfs import process_start_time, session_of

if TYPE_CHECKING:
    from dbus_next.aio import MessageBus
    from dbus_next.signature import Variant

AUTHORITY = "org.freedesktop.PolicyKit1"
AUTHORITY_PATH = "/org/freedesktop/PolicyKit1/Authority"
AUTHORITY_INTERFACE = "org.freedesktop.PolicyKit1.Authority"
ALLOW_USER_INTERACTION = 1
SUBJECT = "(sa{sv})"
POLKIT_SERVICE_FILE = "/usr/share/dbus-1/system-services/org.freedesktop.PolicyKit1.service"


def polkit_installed() -> bool:
    """Whether polkitd can be activated on the system bus here."""
    return os.path.exists(POLKIT_SERVICE_FILE)


TEMPORARY_ID = "polkit.temporary_authorization_id"
RETAINED = "polkit.retains_authorization_after_challenge"


@dataclass(frozen=True)
class Subject:
    """A polkit subject: a process (pid, start time, uid) or a logind session."""

    kind: str
    pid: int = 0
    start_time: int = 0
    uid: int = -1
    session: str = ""

    @classmethod
    def process(cls, pid: int, uid: int) -> Subject:
        """The process PID, pinned by its start time so that a reused pid is not it."""
        return cls("unix-process", pid=pid, start_time=process_start_time(pid), uid=uid)

    @classmethod
    def session_of(cls, pid: int | str) -> Subject | None:
        session = session_of(pid)
        return None if session is None else cls("unix-session", session=session)

    def marshal(self) -> list[object]:
        from dbus_next.signature import Variant

        fields: dict[str, Variant]
        if self.kind == "unix-session":
            fields = {"session-id": Variant("s", self.session)}
        else:
            fields = {"pid": Variant("u", self.pid), "start-time": Variant("t", self.start_time),
                      "uid": Variant("i", self.uid)}  # fmt: skip
        return [self.kind, fields]


@dataclass(frozen=True)
class Authorization:
    authorized: bool
    challenge: bool  # not authorized, but would be after authentication
    dismissed: bool  # the user dismissed (or failed) the authentication dialog
    temporary_id: str | None
    retained: bool  # a challenge whose success polkit keeps (auth_self_keep, auth_admin_keep)


def from_kept_authorization(answer: Authorization) -> bool:
    """Whether polkit answered from a temporary authorization it keeps for the subject
    process (and the action, whatever the details), not from its rules now: it names
    that authorization's id without having run a challenge for this check, whose
    success alone carries polkit.retains_authorization_after_challenge (polkit 122-127:
    check_authorization_sync, check_authorization_challenge_cb)."""
    return answer.authorized and answer.temporary_id is not None and not answer.retained


@dataclass(frozen=True)
class TemporaryAuthorization:
    id: str
    action: str


async def connect() -> MessageBus:
    from dbus_next import BusType
    from dbus_next.aio import MessageBus

    try:
        return await MessageBus(bus_type=BusType.SYSTEM).connect()
    except OSError as error:
        raise RunasError(f"cannot reach the system bus for polkit: {error.strerror}") from None


CALL_TIMEOUT = 25.0  # a call that asks nobody (as SystemdBus.call's, D-Bus's default)


async def _call(
    bus: MessageBus, member: str, signature: str, body: list[object],
    timeout: float = CALL_TIMEOUT,
) -> list[object]:  # fmt: skip
    import asyncio

    from dbus_next import Message, MessageType

    message = Message(destination=AUTHORITY, path=AUTHORITY_PATH,
                      interface=AUTHORITY_INTERFACE, member=member, signature=signature,
                      body=body)  # fmt: skip
    try:
        reply = await asyncio.wait_for(bus.call(message), timeout)
    except TimeoutError:
        raise RunasError(f"polkit did not answer {member} within {timeout:.0f} s") from None
    assert reply is not None
    if reply.message_type is MessageType.ERROR:
        text = reply.body[0] if reply.body else reply.error_name
        raise RunasError(f"polkit refused {member}: {text}")
    return list(reply.body)


async def check_authorization(
    bus: MessageBus,
    subject: Subject,
    action: str,
    details: Mapping[str, str],
    interactive: bool,
    timeout: float = CALL_TIMEOUT,
) -> Authorization:
    """polkit's answer, within TIMEOUT (an interactive check waits for a person); on
    timeout the check is cancelled, so its agent stops asking."""
    flags = ALLOW_USER_INTERACTION if interactive else 0
    cancellation = f"runas-{os.getpid()}-{os.urandom(4).hex()}"
    try:
        (result,) = await _call(
            bus, "CheckAuthorization", f"{SUBJECT}sa{{ss}}us",
            [subject.marshal(), action, dict(details), flags, cancellation], timeout,
        )  # fmt: skip
    except RunasError:
        with contextlib.suppress(RunasError):
            await _call(bus, "CancelCheckAuthorization", "s", [cancellation])
        raise
    assert isinstance(result, list) and len(result) == 3  # (bba{ss})
    authorized, challenge, result_details = result[0], result[1], result[2]
    assert isinstance(result_details, dict)
    return Authorization(
        authorized=bool(authorized),
        challenge=bool(challenge),
        dismissed=result_details.get("polkit.dismissed") == "true",
        temporary_id=result_details.get(TEMPORARY_ID),
        retained=result_details.get(RETAINED) in ("1", "true"),
    )


async def temporary_authorizations(
    bus: MessageBus, session: Subject
) -> list[TemporaryAuthorization]:
    (entries,) = await _call(bus, "EnumerateTemporaryAuthorizations", SUBJECT,
                             [session.marshal()])  # fmt: skip
    return [TemporaryAuthorization(entry[0], entry[1]) for entry in entries]  # type: ignore[attr-defined]


async def revoke(bus: MessageBus, authorization_id: str) -> None:
    await _call(bus, "RevokeTemporaryAuthorizationById", "s", [authorization_id])


async def forget(actions: frozenset[str]) -> int:
    """Revoke this process's session's temporary authorizations for ACTIONS: how many.

    Outside a logind session polkit keeps them per process, so none outlive this one.
    """
    session = Subject.session_of(os.getpid())
    if session is None:
        return 0
    bus = await connect()
    try:
        found = await temporary_authorizations(bus, session)
        ours = [entry for entry in found if entry.action in actions]
        for entry in ours:
            await revoke(bus, entry.id)
        return len(ours)
    finally:
        bus.disconnect()
