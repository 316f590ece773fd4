"""The broker's wire protocol, shared by its client and its server: the socket, one JSON
object per line (`send`, `LineReader`, read against a `Deadline`), and the one typed,
versioned request a client sends (`BrokerRequest`), with the caller's variables the plan
may read (`request_environ`) and nothing else.

The client sends its request with its three stdio fds (or a pty's peer for those that
are terminals) attached; the broker may answer {"prompt": ...} (the client replies
{"password": ...}), then {"started": true}, then {"status": N}, or {"error": "..."} at
any point.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runas_podman.core.elevate import ElevateRequest, preserved_names
from runas_podman.core.errors import RunasError
from runas_podman.core.model import Stdio

if TYPE_CHECKING:
    pass
import dataclasses
from enum import Enum
from typing import ClassVar, TypeVar

BROKER_SOCKET = "/run/runas-broker.sock"
MAX_REQUEST = 1 << 20
MAX_CONNECTIONS = 64  # as runas-broker.socket's MaxConnections
MAX_PER_UID = 16


def send(sock: socket.socket, message: Mapping[str, Any], fds: Sequence[int] = ()) -> None:
    data = (json.dumps(message) + "\n").encode()
    if fds:
        socket.send_fds(sock, [data], list(fds))
    else:
        sock.sendall(data)


class Deadline:
    """A point in time after which waiting ends (TimeoutError), however data trickles in."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def remaining(self) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            raise TimeoutError
        return left


class LineReader:
    """JSON lines from a socket; the fds of the first message are kept."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""
        self.fds: list[int] = []

    def read(self, deadline: Deadline | None = None) -> dict[str, Any] | None:
        while b"\n" not in self.buffer:
            if len(self.buffer) > MAX_REQUEST:
                raise RunasError("message too long")
            if deadline is not None:
                self.sock.settimeout(deadline.remaining())
            data, fds, _flags, _addr = socket.recv_fds(self.sock, 65536, 3)
            self.fds += fds
            if not data:
                return None
            self.buffer += data
        line, _, self.buffer = self.buffer.partition(b"\n")
        try:
            message = json.loads(line)
        except (ValueError, RecursionError):  # RecursionError: nested beyond reason
            raise RunasError("a broker message that is not JSON") from None
        if not isinstance(message, dict):
            raise RunasError("a broker message must be a JSON object")
        return message


# --- client -------------------------------------------------------------------------


# --- server --------------------------------------------------------------------------


# --- listen mode: a foreground broker for runit, s6, OpenRC ---------------------------


class Authentication(Enum):
    """How the root broker decides: polkit's per-command action, or wheel + password."""

    POLKIT = "polkit"
    PASSWORD = "password"


class BrokerAction(Enum):
    """What the client asks of the broker: run the command, or only act on the cache."""

    RUN = "run"
    VALIDATE = "validate"  # -v: authenticate, start nothing
    FORGET = "forget"  # -K: forget cached authentication, start nothing


@dataclass(frozen=True)
class BrokerRequest:
    """The one message a client sends the root broker: a versioned, typed record.

    `environ` holds only the caller's variables the plan may read (request_environ);
    who the caller is, its directory and slice, the broker learns from the socket, and
    the terminal from the fds it receives (version 3 dropped the client's `tty_path`).
    """

    VERSION: ClassVar[int] = 3
    options: ElevateRequest
    environ: Mapping[str, str]
    on_tty: bool = False
    authentication: Authentication = Authentication.PASSWORD
    action: BrokerAction = BrokerAction.RUN
    interactive: bool = True  # polkit may ask (False: -n)

    def to_message(self) -> dict[str, object]:
        options = {
            field.name: _encode(getattr(self.options, field.name))
            for field in dataclasses.fields(ElevateRequest)
        }
        return {
            "version": self.VERSION, "options": options, "environ": dict(self.environ),
            "on_tty": self.on_tty,
            "authentication": self.authentication.value, "action": self.action.value,
            "interactive": self.interactive,
        }  # fmt: skip

    @classmethod
    def from_message(cls, message: Mapping[str, object]) -> BrokerRequest:
        """The request, or RunasError naming the first field that is not as sent."""
        _check_keys(message, _REQUEST_FIELDS, "request")
        if message.get("version") != cls.VERSION:
            raise RunasError(
                f"broker request version {message.get('version')!r} is not {cls.VERSION}: "
                "runas and the broker come from different versions of runas-podman; reinstall "
                "the broker (runas-podman install-broker)"
            )
        options = message.get("options")
        environ = message.get("environ")
        if not isinstance(options, dict):
            raise RunasError("bad broker request: 'options' must be an object")
        if not isinstance(environ, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in environ.items()
        ):
            raise RunasError("bad broker request: 'environ' must map strings to strings")
        names = {field.name for field in dataclasses.fields(ElevateRequest)}
        _check_keys(options, names, "options")
        values = {name: _decode(name, options[name]) for name in names if name in options}
        return cls(
            options=ElevateRequest(**values),  # type: ignore[arg-type]
            environ=dict(environ),
            on_tty=_bool("on_tty", message.get("on_tty", False)),
            authentication=_member(Authentication, "authentication",
                                   message.get("authentication", "password")),
            action=_member(BrokerAction, "action", message.get("action", "run")),
            interactive=_bool("interactive", message.get("interactive", True)),
        )  # fmt: skip


_E = TypeVar("_E", bound=Enum)
_REQUEST_FIELDS = {
    "version", "options", "environ", "on_tty", "authentication", "action", "interactive",
}  # fmt: skip


def _member(kind: type[_E], name: str, value: object) -> _E:
    try:
        return kind(value)
    except ValueError:
        known = ", ".join(str(member.value) for member in kind)
        raise RunasError(f"bad broker request: '{name}' must be one of {known}") from None


def _check_keys(message: Mapping[str, object], known: set[str], what: str) -> None:
    unknown = sorted(set(message) - known)
    if unknown:
        raise RunasError(f"bad broker request: unknown field '{unknown[0]}' in {what}")


def _encode(value: object) -> object:
    if isinstance(value, Stdio):
        return value.value
    if isinstance(value, tuple):
        return list(value)
    return value


def _typed(name: str, value: object, kind: type) -> object:
    # bool is an int in Python: an int field must not take True, nor a bool field 1.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise RunasError(f"bad broker request: '{name}' must be of type {kind.__name__}")
    return value


def _optional(name: str, value: object, kind: type) -> object:
    return None if value is None else _typed(name, value, kind)


def _bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise RunasError(f"bad broker request: '{name}' must be true or false")
    return value


def _strings(name: str, value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise RunasError(f"bad broker request: '{name}' must be a list of strings")
    return tuple(value)


def _stdio(name: str, value: object) -> Stdio:
    try:
        return Stdio(value)
    except ValueError:
        raise RunasError(f"bad broker request: '{name}' must be pipe or pty") from None


_DECODERS: dict[str, Callable[[str, object], object]] = {
    "command": _strings, "setenv": _strings, "preserve_env": _strings, "properties": _strings,
    "user": lambda n, v: _optional(n, v, str), "group": lambda n, v: _optional(n, v, str),
    "chdir": lambda n, v: _optional(n, v, str), "unit": lambda n, v: _optional(n, v, str),
    "description": lambda n, v: _optional(n, v, str), "slice": lambda n, v: _optional(n, v, str),
    "background": lambda n, v: _optional(n, v, str),
    "shell_prompt_prefix": lambda n, v: _optional(n, v, str),
    "login": lambda n, v: _typed(n, v, bool), "via_shell": lambda n, v: _typed(n, v, bool),
    "slice_inherit": lambda n, v: _typed(n, v, bool), "empower": lambda n, v: _typed(n, v, bool),
    "lightweight": lambda n, v: _optional(n, v, bool), "nice": lambda n, v: _optional(n, v, int),
    "stdio": _stdio,
}  # fmt: skip


def _decode(name: str, value: object) -> object:
    return _DECODERS[name](name, value)


def request_environ(request: ElevateRequest, environ: Mapping[str, str]) -> dict[str, str]:
    """Only the caller's variables the plan may read: nothing else leaves the client."""
    names = {"TERM", "SYSTEMD_RUN_SHELL_PROMPT_PREFIX"}
    names.update(preserved_names(request.preserve_env))
    names.update(text for text in request.setenv if "=" not in text)
    return {name: environ[name] for name in names if name in environ}
