"""The pure core: options -> a launch plan -> D-Bus properties or a `systemd-run` command line.

Nothing here touches the system. Every property the plan sets is kept as the same
`NAME=VALUE` text that `systemd-run -p` takes, and parsed with the same parser as the
user's own `-p`, so the D-Bus call and the rendered command line cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import enum
import re
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .errors import UsageError, is_utf8, shown
from .unitprops import ENV_NAME, UnitProperty, parse_assignment

# systemd's own fixed search path for units (its default PATH), so the caller's
# $PATH never decides which binary runs in the unit.
UNIT_SEARCH_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
UNIT_NAME_PREFIX = "runas-podman-"
# dbus-daemon's default max_message_unix_fds (kept by Debian's system bus).
MAX_FDS_PER_MESSAGE = 16
# Properties the plan derives from -u; setting them with -p would contradict it.
IDENTITY_PROPERTIES = frozenset({"User", "Group", "DynamicUser"})


class Manager(enum.Enum):
    """Which service manager runs the unit."""

    SYSTEM = "system"  # PID 1, with User=
    USER = "user"  # the target user's own systemd --user


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
        return cls(text, tuple(parse_assignment(text)))

    @property
    def name(self) -> str:
        return self.text.partition("=")[0]


OPEN_FILE_FLAGS = {"read-only": 1, "append": 2, "truncate": 4, "graceful": 8}
# systemd versions that brought a feature (feature detection reads the manager's Version).
OPEN_FILE_SINCE = 253
EXTRA_FDS_SINCE = 257


@dataclass(frozen=True)
class OpenFile:
    """`--open-file PATH[:NAME[:FLAGS]]`: systemd opens PATH and passes it as an fd."""

    path: str
    name: str
    flags: tuple[str, ...] = ()

    @property
    def flag_bits(self) -> int:
        return sum(OPEN_FILE_FLAGS[flag] for flag in self.flags)

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
    unit: str
    manager: Manager
    user: ServiceUser
    argv: tuple[str, ...]  # argv[0] is an absolute path
    description: str
    assignments: tuple[Assignment, ...]
    environment: tuple[tuple[str, str], ...] = ()
    open_files: tuple[OpenFile, ...] = ()
    pass_fds: tuple[PassFd, ...] = ()
    stdio: str = "pipe"  # or "pty": how systemd-run would be told (--pipe / --pty)

    def __post_init__(self) -> None:
        # Every string of the plan goes over D-Bus, which carries UTF-8 only: refuse here,
        # with a name for it, rather than fail in the marshaller half-way through a launch.
        texts = [("the user", self.user.name), ("the unit name", self.unit)]
        texts += [(f"argument {i}" if i else "the command", a) for i, a in enumerate(self.argv)]
        texts += [(f"environment variable {name}", value) for name, value in self.environment]
        texts += [(f"-p {a.name}", a.text) for a in self.assignments]
        texts += [("--open-file", f"{f.path}:{f.name}") for f in self.open_files]
        texts += [("--pass-fd name", p.name) for p in self.pass_fds]
        texts.append(("the description", self.description))
        for what, text in texts:
            if not is_utf8(text):
                raise UsageError(
                    f"{what} {shown(text)} is not valid UTF-8: D-Bus strings are UTF-8 "
                    "(hand such bytes over in a file or an fd instead)"
                )

    @property
    def fd_names(self) -> tuple[str, ...]:
        """Names of the passed fds as the command sees them, fd 3 first.

        systemd (257) hands out ExtraFileDescriptors before OpenFile= fds.
        """
        return tuple(p.name for p in self.pass_fds) + tuple(f.name for f in self.open_files)

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

    def unit_properties(self) -> list[UnitProperty]:
        """All D-Bus properties except those holding fds, which the launcher adds per call."""
        properties = [
            UnitProperty("Description", "s", self.description),
            UnitProperty("AddRef", "b", True),
            UnitProperty("CollectMode", "s", "inactive-or-failed"),
        ]
        for assignment in self.assignments:
            properties.extend(assignment.properties)
        if self.environment:
            properties.append(
                UnitProperty("Environment", "as", [f"{k}={v}" for k, v in self.environment])
            )
        if self.open_files:
            entries = [[f.path, f.name, f.flag_bits] for f in self.open_files]
            properties.append(UnitProperty("OpenFile", "a(sst)", entries))
        # ExecStartEx with no-env-expand: arguments reach the command verbatim ($$, $HOME).
        properties.append(
            UnitProperty(
                "ExecStartEx", "a(sasas)", [[self.argv[0], list(self.argv), ["no-env-expand"]]]
            )
        )
        return properties

    def systemd_run_argv(self) -> list[str]:
        """The systemd-run invocation that launches the same unit."""
        argv = ["systemd-run"]
        if self.manager is Manager.USER:
            argv += [f"--machine={self.user.name}@", "--user"]
        argv += [
            f"--unit={self.unit}",
            f"--description={self.description}",
            "--wait", f"--{self.stdio}", "--quiet", "--collect", "--expand-environment=no",
        ]  # fmt: skip
        argv += [f"--property={assignment.text}" for assignment in self.assignments]
        argv += [f"--setenv={name}={value}" for name, value in self.environment]
        argv += [f"--property=OpenFile={f.assignment}" for f in self.open_files]
        argv += ["--", *self.argv]
        return argv

    def systemd_run_command(self) -> str:
        command = shlex.join(self.systemd_run_argv())
        if self.pass_fds:
            # ExtraFileDescriptors cannot be given to systemd-run: say so where it shows.
            passed = " ".join(f"{p.fd}:{p.name}" for p in self.pass_fds)
            command += f"  # without --pass-fd {passed}: systemd-run cannot pass fds"
        return command


# --- building ---------------------------------------------------------------

_UNIT_NAME = re.compile(r"[A-Za-z0-9:_.\\@-]+")


def service_unit_name(
    requested: str | None, random_token: Callable[[], str], prefix: str = UNIT_NAME_PREFIX
) -> str:
    """`--unit` validated (`.service` appended if no suffix), or a fresh random name."""
    if requested is None:
        return f"{prefix}{random_token()}.service"
    name = requested if "." in requested else f"{requested}.service"
    stem, _, suffix = name.rpartition(".")
    if suffix != "service":
        raise UsageError(f"--unit '{requested}' must be a .service unit (or have no suffix)")
    if not stem or not _UNIT_NAME.fullmatch(stem) or len(name) > 255:
        raise UsageError(
            f"--unit '{requested}' is not a valid unit name "
            "(letters, digits and :-_.\\@ only, at most 255 characters)"
        )
    return name


def lifeline_unit_name(unit: str) -> str:
    return unit.removesuffix(".service") + "-lifeline.service"


# --- secret fds ---------------------------------------------------------------

_FD_NAME = re.compile(r"[\x21-\x39\x3b-\x7e]{1,255}")  # printable ASCII, no ':' or space


def escape_open_file_field(text: str) -> str:
    return text.replace("\\", "\\\\").replace(":", "\\x3a")


def _unescape_open_file_field(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text.startswith("\\x3a", i):
            out.append(":")
            i += 4
        elif text.startswith("\\\\", i):
            out.append("\\")
            i += 2
        elif text[i] == "\\":
            raise UsageError(f"'{text}': write ':' as \\x3a and '\\' as \\\\ (as OpenFile= does)")
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def parse_open_file(text: str) -> OpenFile:
    """PATH[:NAME[:FLAGS]] with systemd's OpenFile= escaping; NAME defaults to the file name."""
    if not is_utf8(text):
        raise UsageError(f"--open-file {shown(text)} is not valid UTF-8: D-Bus strings are UTF-8")
    fields = text.split(":")
    if len(fields) > 3:
        raise UsageError(f"--open-file '{text}': use PATH[:NAME[:FLAGS]] (':' in PATH as \\x3a)")
    path = _unescape_open_file_field(fields[0])
    if not path.startswith("/"):
        raise UsageError(f"--open-file '{text}': the path must be absolute")
    name = _unescape_open_file_field(fields[1]) if len(fields) > 1 and fields[1] else ""
    name = name or path.rstrip("/").rsplit("/", 1)[-1]
    if not _FD_NAME.fullmatch(name):
        raise UsageError(
            f"--open-file '{text}': fd name '{name}' must be 1-255 printable characters, "
            "no ':' or spaces"
        )
    flags = tuple(f for f in fields[2].split(",") if f) if len(fields) > 2 else ()
    unknown = [f for f in flags if f not in OPEN_FILE_FLAGS]
    if unknown:
        raise UsageError(
            f"--open-file '{text}': unknown flag '{unknown[0]}' (use {', '.join(OPEN_FILE_FLAGS)})"
        )
    return OpenFile(path, name, flags)


def parse_pass_fd(text: str) -> PassFd:
    """N[:NAME]; NAME defaults to fdN."""
    number, _, name = text.partition(":")
    if not (number.isascii() and number.isdigit()) or int(number) < 3:
        raise UsageError(f"--pass-fd '{text}': N must be an open fd number of 3 or more")
    name = name or f"fd{number}"
    if not _FD_NAME.fullmatch(name):
        raise UsageError(
            f"--pass-fd '{text}': fd name '{name}' must be printable, no ':' or spaces"
        )
    return PassFd(int(number), name)


def exec_assignment(setting: str, argv: Sequence[str], flags: Sequence[str]) -> Assignment:
    """An Exec*= setting both ways: as `systemd-run -p` writes it (prefix '-' ignores a
    failure, ':' turns off $VAR expansion) and as the D-Bus `…Ex` property with flags."""
    prefix = "-" * ("ignore-failure" in flags) + ":" * ("no-env-expand" in flags)
    quoted = ['"' + a.replace("\\", "\\\\").replace('"', '\\"') + '"' for a in argv[1:]]
    text = f"{setting}={prefix}{argv[0]} {' '.join(quoted)}".rstrip()
    value = [[argv[0], list(argv), list(flags)]]
    return Assignment(text, (UnitProperty(f"{setting}Ex", "a(sasas)", value),))


def container_cleanup(podman: str, cidfile: str, remove: bool) -> tuple[Assignment, ...]:
    """Stop (with --rm: remove) the container of a foreground `podman run` with its unit.

    conmon lives outside the unit, so stopping podman alone can leave the container
    running. ExecStop= runs while podman still runs ($MAINPID set) and stops the
    container the way `podman stop` does (SIGTERM, its stop timeout, SIGKILL), so podman
    sees it end; ExecStopPost= catches a podman that died first, and removes the cidfile.
    Their stdout (container ids) is not the command's output: it goes to /dev/null.
    """
    stop = (
        f'test -n "$MAINPID" && test -s {shlex.quote(cidfile)} && '
        f"exec {shlex.quote(podman)} stop --ignore --cidfile {shlex.quote(cidfile)} >/dev/null; "
        "exit 0"
    )
    end = "rm -f --ignore" if remove else "stop --ignore"
    post = (
        f"test -s {shlex.quote(cidfile)} && {shlex.quote(podman)} {end} --cidfile "
        f"{shlex.quote(cidfile)} >/dev/null; rm -f {shlex.quote(cidfile)}"
    )
    flags = ("ignore-failure", "no-env-expand")
    return (
        exec_assignment("ExecStop", ["/bin/sh", "-c", stop], flags),
        exec_assignment("ExecStopPost", ["/bin/sh", "-c", post], flags),
    )


def inject_fd_names(podman_args: Sequence[str], names: Sequence[str]) -> list[str]:
    """Give `podman run|create` the fd names: podman forwards the fds but not LISTEN_FDNAMES.

    The option goes right after the subcommand, before the image, so it is podman's.
    Other podman commands are left alone.
    """
    args = list(podman_args)
    if names and args and args[0] in ("run", "create", "container"):
        at = 1
        if args[0] == "container":
            if len(args) < 2 or args[1] not in ("run", "create"):
                return args
            at = 2
        args[at:at] = ["--env", "LISTEN_FDNAMES=" + ":".join(names)]
    return args


def parse_systemd_version(text: str) -> int:
    """257 from '257.13-1~deb13u1' (the manager's Version property)."""
    match = re.match(r"[^0-9]*([0-9]+)", text)
    return int(match.group(1)) if match else 0


def parse_setenv(items: Sequence[str], caller_env: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """`--setenv NAME=VALUE`, or `--setenv NAME` to pass the caller's value (as systemd-run)."""
    result: list[tuple[str, str]] = []
    for item in items:
        name, sep, value = item.partition("=")
        if not ENV_NAME.fullmatch(name):
            raise UsageError(f"--setenv '{item}': '{name}' is not a valid variable name")
        if not sep:
            if name not in caller_env:
                raise UsageError(f"--setenv {name}: the variable is not set in your environment")
            value = caller_env[name]
        result.append((name, value))
    return tuple(result)


def parse_assignments(texts: Sequence[str]) -> tuple[Assignment, ...]:
    assignments = tuple(Assignment.parse(text) for text in texts)
    for assignment in assignments:
        if assignment.name in IDENTITY_PROPERTIES:
            raise UsageError(
                f"-p {assignment.text}: the unit's identity comes from -u USER, not -p"
            )
    return assignments


def resolve_executable(
    name: str, is_executable: Callable[[str], bool], search_path: Sequence[str] = UNIT_SEARCH_PATH
) -> str | None:
    """An absolute path for `name` (searched in systemd's fixed path), or None."""
    if "/" in name:
        return name if name.startswith("/") and is_executable(name) else None
    for directory in search_path:
        candidate = f"{directory}/{name}"
        if is_executable(candidate):
            return candidate
    return None


def build_service_plan(
    *,
    user: ServiceUser,
    argv: Sequence[str],
    manager: Manager,
    unit: str,
    assignments: Sequence[Assignment] = (),
    environment: Sequence[tuple[str, str]] = (),
    description: str | None = None,
    open_files: Sequence[OpenFile] = (),
    pass_fds: Sequence[PassFd] = (),
) -> LaunchPlan:
    """The plan that runs `argv` (argv[0] absolute) as `user` on the chosen manager."""
    if not argv or not argv[0].startswith("/"):
        raise ValueError("argv[0] must be an absolute path")
    fixed: list[str] = []
    if manager is Manager.SYSTEM:
        fixed += [
            f"User={user.name}",
            f"Group={user.group}",
            f"Requires={user.user_manager_unit}",
            f"After={user.user_manager_unit}",
        ]
    fixed.append("Type=exec")
    env = [("XDG_RUNTIME_DIR", user.runtime_dir)] if manager is Manager.SYSTEM else []
    return LaunchPlan(
        unit=unit,
        manager=manager,
        user=user,
        argv=tuple(argv),
        description=description or f"runas-podman: {shlex.join(argv)}"[:200],
        assignments=(*(Assignment.parse(text) for text in fixed), *assignments),
        environment=(*env, *environment),
        open_files=tuple(open_files),
        pass_fds=tuple(pass_fds),
    )
