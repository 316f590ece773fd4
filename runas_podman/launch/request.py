"""What a front end hands the launch call: a typed request and the caller's stdio."""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from runas_podman.core.elevate import Caller, ElevateRequest
from runas_podman.core.model import Via
from runas_podman.core.timer import TimerOptions


class Backend(enum.Enum):
    """--backend: who starts the unit."""

    AUTO = "auto"  # dbus, or native where systemd is not PID 1
    DBUS = "dbus"
    SYSTEMD_RUN = "systemd-run"  # exec systemd-run with the same plan
    NATIVE = "native"  # fork and exec here, as root, without systemd


class JsonMode(enum.Enum):
    """--json: the unit and its invocation ID once started."""

    SHORT = "short"
    PRETTY = "pretty"


class CachedAction(enum.Enum):
    """runas -k, -K, -v: what to do with cached authorizations."""

    RESET = "-k"  # forget them, then run the command if one is given
    REMOVE = "-K"  # forget them
    VALIDATE = "-v"  # authenticate, run nothing


@dataclass(frozen=True)
class CallerStdio:
    """The caller's stdin, stdout and stderr, and which of them are terminals."""

    fds: tuple[int, int, int] = (0, 1, 2)
    ttys: tuple[bool, bool, bool] = (False, False, False)

    @classmethod
    def of(cls, fds: tuple[int, int, int] = (0, 1, 2)) -> CallerStdio:
        return cls(fds, (os.isatty(fds[0]), os.isatty(fds[1]), os.isatty(fds[2])))

    def out(self, line: str) -> None:
        _write_all(self.fds[1], line + "\n")

    def err(self, line: str) -> None:
        _write_all(self.fds[2], line + "\n")


def _write_all(fd: int, text: str) -> None:
    view = memoryview(text.encode(errors="surrogateescape"))
    while view:
        view = view[os.write(fd, view) :]


@dataclass(frozen=True)
class ServiceOptions:
    """The options of `runas-podman exec` and `podman`, typed, as given."""

    user: str
    group: str | None = None
    via: Via = Via.AUTO
    properties: tuple[str, ...] = ()
    setenv: tuple[str, ...] = ()
    unit: str | None = None
    description: str | None = None
    dry_run: bool = False
    backend: Backend = Backend.AUTO
    open_files: tuple[str, ...] = ()
    pass_fds: tuple[str, ...] = ()
    slice: str | None = None
    slice_inherit: bool = False
    same_dir: bool = False
    send_sighup: bool = False
    nice: int | None = None
    working_directory: str | None = None
    quiet: bool = False
    ask_password: bool = True
    pty: bool = False
    pipe: bool = False
    json: JsonMode | None = None
    service_type: str | None = None
    remain_after_exit: bool = False
    no_block: bool = False
    job_mode: str = "fail"
    ignore_failure: bool = False
    timer: TimerOptions = field(default_factory=TimerOptions)
    verbose: bool = False
    output: str | None = None  # -v's journalctl output mode (default short)


@dataclass(frozen=True)
class ServiceRequest:
    """`runas-podman exec` or `podman`: ARGV as USER in a transient service."""

    argv: tuple[str, ...]
    options: ServiceOptions
    caller: Caller
    package: str | None = None  # "podman": the podman subcommand (and its cleanup)
    prog: str = "runas-podman"


@dataclass(frozen=True)
class Route:
    """Which way a `runas` authorization goes: --via-broker, -S, -n, --backend."""

    via_broker: bool = False
    stdin_password: bool = False
    interactive: bool = True
    backend: Backend = Backend.AUTO


@dataclass(frozen=True)
class ElevationRequest:
    """`runas`: the request as parsed (stdio still to be chosen from pty/pipe and the
    caller's terminals), the route, and -k/-K/-v."""

    request: ElevateRequest
    caller: Caller
    route: Route = field(default_factory=Route)
    pty: bool = False
    pipe: bool = False
    dry_run: bool = False
    cached: CachedAction | None = None
    prog: str = "runas"


LaunchRequest = ServiceRequest | ElevationRequest


def caller_of(
    pid: int, uid: int, gid: int, environ: Mapping[str, str], cwd: str, on_tty: bool
) -> Caller:
    """A caller described from what this host can see of process PID (its slice, its
    user's name) and what it said (environment, cwd)."""
    import pwd
    import socket

    from runas_podman.host.procfs import slice_of

    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    return Caller(
        name=name, uid=uid, gid=gid, cwd=cwd, environ=dict(environ),
        slice=slice_of(str(pid)), hostname=socket.gethostname(), on_tty=on_tty,
    )  # fmt: skip
