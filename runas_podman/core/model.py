"""The frozen types of a launch: who, what, where, and the fds it gets. No I/O, no logic
beyond what keeps a value valid (every string of a plan is UTF-8, as D-Bus needs)."""

from __future__ import annotations

import dataclasses
import enum
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from runas_podman.core.errors import UsageError, is_utf8, shown
from runas_podman.core.unit import UNIT_TYPES as UNIT_TYPES
from runas_podman.core.unit import UnitProperty as UnitProperty

# systemd's own fixed search path for units (its default PATH), so the caller's
# $PATH never decides which binary runs in the unit.
UNIT_SEARCH_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
# dbus-daemon's default max_message_unix_fds (kept by Debian's system bus).
MAX_FDS_PER_MESSAGE = 16
# systemd versions that brought a feature (feature detection reads the manager's Version).
OPEN_FILE_SINCE = 253
EXTRA_FDS_SINCE = 257


class Manager(enum.Enum):
    """Which service manager runs the unit."""

    SYSTEM = "system"  # PID 1, with User=
    USER = "user"  # the target user's own systemd --user


class Via(enum.Enum):
    """--via: which service manager runs the unit (auto: see choose_manager)."""

    AUTO = "auto"
    SYSTEM = "system"
    USER = "user"


def choose_manager(via: Via, caller_uid: int, user_uid: int) -> Manager:
    """--via auto: USER's own manager when USER runs this itself (no privilege needed
    there), the system manager otherwise."""
    if via is Via.AUTO:
        return Manager.USER if caller_uid == user_uid != 0 else Manager.SYSTEM
    return Manager(via.value)


ALL_THROUGH = (True, True, True)


def through_pty(forced: bool, ttys: tuple[bool, bool, bool]) -> tuple[bool, bool, bool]:
    """Which of stdin, stdout, stderr go through a pty session's pty: all with --pty,
    else those that are terminals (the others reach the command as they are, as
    systemd-run's --pty passes them), so no terminal of the caller's is ever handed to
    a command running as someone else."""
    return ALL_THROUGH if forced else ttys


@dataclass(frozen=True)
class Container:
    """A foreground `podman run`'s container, stopped (with --rm: removed) with its unit
    through the cidfile podman writes (properties.py renders the unit's ExecStop=)."""

    podman: str
    cidfile: str
    remove: bool


class Stdio(enum.Enum):
    """How the command's stdin/stdout/stderr are connected (systemd-run --pipe / --pty)."""

    PIPE = "pipe"  # the caller's own fds
    PTY = "pty"  # a pseudo-terminal the client forwards


@dataclass(frozen=True)
class ServiceUser:
    name: str
    uid: int
    gid: int
    group: str
    home: str
    shell: str = "/bin/sh"

    @property
    def runtime_dir(self) -> str:
        return f"/run/user/{self.uid}"

    @property
    def user_manager_unit(self) -> str:
        return f"user@{self.uid}.service"


@dataclass(frozen=True)
class Assignment:
    """One `NAME=VALUE` as systemd-run -p takes it, and the D-Bus properties it sets."""

    text: str
    properties: tuple[UnitProperty, ...]

    @classmethod
    def parse(cls, text: str) -> Assignment:
        """Through systemd-run's -p parser (unitprops: a table of ~380 settings, loaded on
        the first parse, so a launch without -p never loads it)."""
        from runas_podman.core.unitprops import parse_assignment

        return cls(text, tuple(parse_assignment(text)))

    @classmethod
    def typed(
        cls, text: str, signature: str, value: object, wire_name: str | None = None
    ) -> Assignment:
        """A setting the launcher itself derives, with a value valid by construction
        (User= from the passwd entry, Type=exec, ...): the property that parse(text) gives,
        made without the parser (`wire_name`: the property's name where systemd-run renames
        the setting). The unit tests hold every plan's text and properties
        equal (tests/unit/conftest.py). Text that is not UTF-8 goes through parse(), which
        refuses it as before."""
        if not is_utf8(text):
            return cls.parse(text)
        name = wire_name or text.partition("=")[0]
        return cls(text, (UnitProperty(name, signature, value),))

    @property
    def name(self) -> str:
        return self.text.partition("=")[0]


def escape_open_file_field(text: str) -> str:
    return text.replace("\\", "\\\\").replace(":", "\\x3a")


@dataclass(frozen=True)
class OpenFile:
    """`--open-file PATH[:NAME[:FLAGS]]`: the manager opens PATH and passes it as an fd."""

    path: str
    name: str
    flags: tuple[str, ...] = ()

    @property
    def flag_bits(self) -> int:
        from runas_podman.core.unitprops import OPEN_FILE_FLAGS

        return sum(OPEN_FILE_FLAGS[flag] for flag in self.flags)

    @property
    def open_flags(self) -> int:
        """os.open flags for PATH as OpenFile= opens it: read-write unless a flag says."""
        flags = os.O_CLOEXEC | os.O_NOCTTY
        if "read-only" in self.flags:
            return flags | os.O_RDONLY
        if "append" in self.flags:
            return flags | os.O_WRONLY | os.O_APPEND
        if "truncate" in self.flags:
            return flags | os.O_WRONLY | os.O_TRUNC
        return flags | os.O_RDWR

    @property
    def assignment(self) -> str:
        """As systemd's OpenFile= takes it: ':' and '\\' in the path escaped."""
        text = escape_open_file_field(self.path) + ":" + escape_open_file_field(self.name)
        return text + (":" + ",".join(self.flags) if self.flags else "")


@dataclass(frozen=True)
class PassFd:
    """`--pass-fd N[:NAME]`: an fd the caller holds, sent over D-Bus."""

    fd: int
    name: str


@dataclass(frozen=True)
class LaunchPlan:
    """Everything about the unit that does not depend on the session running it."""

    unit: str
    manager: Manager
    user: ServiceUser
    argv: tuple[str, ...]  # argv[0] is an absolute path
    description: str
    assignments: tuple[Assignment, ...]
    environment: tuple[tuple[str, str], ...] = ()
    open_files: tuple[OpenFile, ...] = ()
    pass_fds: tuple[PassFd, ...] = ()
    stdio: Stdio = Stdio.PIPE
    job_mode: str = "fail"  # --job-mode: StartTransientUnit's mode
    wait: bool = True  # False: --no-block (started, named, and left to run)
    lifeline: bool = True  # False (-r, --no-block): the unit outlives the client
    ignore_failure: bool = False  # --ignore-failure: the command's status is not a failure
    # --on-*/--timer-property: the settings of a timer that starts the unit (core/timer.py);
    # the client then starts the timer and returns.
    timer: tuple[Assignment, ...] = ()
    container: Container | None = None  # `podman run` in the foreground: its cleanup

    def __post_init__(self) -> None:
        # Every string of the plan goes over D-Bus, which carries UTF-8 only: refuse here,
        # with a name for it, rather than fail in the marshaller half-way through a launch.
        texts = [("the user", self.user.name), ("the unit name", self.unit)]
        texts += [(f"argument {i}" if i else "the command", a) for i, a in enumerate(self.argv)]
        texts += [(f"environment variable {name}", value) for name, value in self.environment]
        texts += [(f"-p {a.name}", a.text) for a in self.assignments]
        texts += [(f"--timer-property {a.name}", a.text) for a in self.timer]
        texts += [("--open-file", f"{f.path}:{f.name}") for f in self.open_files]
        texts += [("--pass-fd name", p.name) for p in self.pass_fds]
        texts.append(("the description", self.description))
        for what, text in texts:
            if not is_utf8(text):
                raise UsageError(
                    f"{what} {shown(text)} is not valid UTF-8: D-Bus strings are UTF-8 "
                    "(hand such bytes over in a file or an fd instead)"
                )
        # The unit-file gate (gate.py): what systemd writes unescaped has no controls.
        from runas_podman.core.gate import check_property, check_text

        check_text("the user name", self.user.name)
        check_text("the unit name", self.unit)
        check_text("the description", self.description)
        for assignment in (*self.assignments, *self.timer):
            for prop in assignment.properties:
                check_property(prop.name, prop.signature, prop.value)
        for open_file in self.open_files:
            check_text("--open-file", f"{open_file.path}:{open_file.name}")
        for passed in self.pass_fds:
            check_text("--pass-fd name", passed.name)

    @property
    def fd_names(self) -> tuple[str, ...]:
        """Names of the passed fds as the command sees them, fd 3 first.

        systemd (257) hands out ExtraFileDescriptors before OpenFile= fds.
        """
        return tuple(p.name for p in self.pass_fds) + tuple(f.name for f in self.open_files)

    @property
    def timer_unit(self) -> str | None:
        """NAME.timer, named after the service it starts; None: no timer."""
        return self.unit.removesuffix(".service") + ".timer" if self.timer else None

    def with_argv(self, argv: Sequence[str]) -> LaunchPlan:
        return dataclasses.replace(self, argv=tuple(argv))

    def required_systemd(self) -> list[tuple[str, int]]:
        """(feature, version) pairs this plan needs from the manager."""
        needs = []
        if self.open_files:
            needs.append(("--open-file (OpenFile=)", OPEN_FILE_SINCE))
        if self.pass_fds:
            needs.append(("--pass-fd (ExtraFileDescriptors)", EXTRA_FDS_SINCE))
        return needs


def parse_systemd_version(text: str) -> int:
    """257 from '257.13-1~deb13u1' (the manager's Version property)."""
    match = re.match(r"[^0-9]*([0-9]+)", text)
    return int(match.group(1)) if match else 0
