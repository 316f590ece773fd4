"""A D-Bus connection to a user's own service manager (`systemd --user`), made as that user.

`systemd-run --machine=USER@ --user` gets there through systemd-stdio-bridge started by
PID 1 with a PAM session. We do it directly: a forked helper drops to USER, connects to
/run/user/UID/bus (the socket's peer credentials are then USER's, which the user's bus
requires), and hands the connected socket back over SCM_RIGHTS. The EXTERNAL
authentication then claims USER's uid, matching those credentials.
"""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any

from dbus_next.aio import MessageBus
from dbus_next.auth import AuthExternal
from dbus_next.constants import BusType

from runas_podman.bus.systemd_bus import (
    CALL_TIMEOUT,
    SystemdBus,
    connected,
)
from runas_podman.core.errors import BusCallError, RunasError
from runas_podman.core.model import ServiceUser
from runas_podman.host.privileges import fd_as


class _AuthExternalAs(AuthExternal):  # type: ignore[misc]
    """EXTERNAL authentication claiming `uid` (dbus-next always claims os.getuid())."""

    def __init__(self, uid: int) -> None:
        super().__init__()
        self.uid = uid

    def _authentication_start(self, negotiate_unix_fd: bool = False) -> str:
        self.negotiate_unix_fd = negotiate_unix_fd
        return f"AUTH EXTERNAL {str(self.uid).encode().hex()}"


class _PreconnectedMessageBus(MessageBus):  # type: ignore[misc]
    """dbus-next's MessageBus on a socket connected elsewhere.

    dbus-next 0.2.3 (its last release) opens sockets in _setup_socket(); this is the
    one place that is overridden.
    """

    def __init__(self, sock: socket.socket, uid: int, address: str) -> None:
        self._preconnected = sock
        super().__init__(
            bus_address=address,
            bus_type=BusType.SESSION,
            auth=_AuthExternalAs(uid),
            negotiate_unix_fd=True,
        )

    def _setup_socket(self) -> None:
        self._sock = self._preconnected
        self._stream = self._sock.makefile("rwb")
        self._fd = self._sock.fileno()
        self._sock.setblocking(False)


def connect_socket_as(user: ServiceUser, path: str) -> socket.socket:
    """A unix socket connected to `path` by a helper running as `user`."""

    def connect() -> int:
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection.connect(path)
        return connection.detach()  # the fd outlives the object: it is sent on

    try:
        return socket.socket(fileno=fd_as(user, connect))
    except OSError as error:
        raise RunasError(
            f"cannot connect to {user.name}'s bus at {path}: {error.strerror}"
        ) from None


async def ensure_user_manager(system: SystemdBus, user: ServiceUser) -> bool:
    """Start user@UID.service through the system manager unless it runs; True if started."""
    unit = user.user_manager_unit
    try:
        done = await system.start_unless_active(unit)
    except BusCallError as error:
        raise RunasError(
            f"{unit} is not running and cannot be started ({error.text or error.name}): "
            f"enable lingering (loginctl enable-linger {user.name}) or run as root"
        ) from None
    if done is not None and done.result != "done":
        raise RunasError(
            f"{unit} (the service manager of {user.name}) failed to start: "
            f"see `systemctl status {unit}` and `journalctl -u {unit}`"
        )
    return done is not None


async def connect_user_manager(user: ServiceUser, launch: bool = True) -> SystemdBus:
    """Connect to USER's service manager, starting it first if needed; only root or USER
    (LAUNCH: for a unit of --via user; else for the podman API or Quadlets)."""
    check_may_use(user, launch)
    async with connected(SystemdBus.connect_system()) as system:
        await ensure_user_manager(system, user)
    return await open_user_bus(user)


def check_may_use(user: ServiceUser, launch: bool = True) -> None:
    """Only root or USER reach USER's manager. LAUNCH: for a unit (--via user, where the
    system manager is the way for others), else for its podman API or Quadlets."""
    if os.geteuid() not in (0, user.uid):
        if launch:
            raise RunasError(
                f"only root or {user.name} may use {user.name}'s service manager (--via "
                "user); use --via system, or run as root"
            )
        raise RunasError(
            f"only root or {user.name} may use {user.name}'s service manager (its podman "
            "API, its Quadlets): run this as root"
        )


async def open_user_bus(user: ServiceUser) -> SystemdBus:
    """Connect to USER's bus, its manager already running (see connect_user_manager)."""
    check_may_use(user)
    caller = os.geteuid()
    path = f"{user.runtime_dir}/bus"
    if not os.path.exists(path):
        from runas_podman.host.hints import install_hint

        raise RunasError(
            f"{user.name}'s bus socket {path} is missing: install the user's D-Bus "
            f"({install_hint('dbus-user-session')}), then systemctl restart "
            f"{user.user_manager_unit}"
        )
    address = f"unix:path={path}"
    description = f"{user.name}'s service manager"
    if caller == user.uid:
        return await SystemdBus.connect(address, BusType.SESSION, description)
    sock = connect_socket_as(user, path)
    bus: Any = _PreconnectedMessageBus(sock, user.uid, address)
    try:
        await asyncio.wait_for(bus.connect(), CALL_TIMEOUT)
    except Exception as error:  # OSError, EOFError, dbus-next's AuthError, a timeout
        sock.close()
        raise RunasError(f"cannot authenticate to {description} at {path}: {error}") from None
    systemd = SystemdBus(bus, description)
    # The user's manager must be there to take the unit (it is, once user@ is active).
    await systemd.manager_version()
    return systemd
