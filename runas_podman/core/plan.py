"""The pure core of `runas-podman`: its options -> a LaunchPlan (model.py).

Nothing here touches the system. Every property the plan sets is kept as the same
`NAME=VALUE` text that `systemd-run -p` takes, with the D-Bus property that text means:
the user's own `-p` parsed by unitprops, the settings derived here made directly
(Assignment.typed; the unit tests hold each equal to its parse); properties.py turns
the plan into the unit, both ways.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
from collections.abc import Callable, Sequence
from typing import NamedTuple

from runas_podman.core.errors import UsageError, is_utf8, shell_join, shown, truncated
from runas_podman.core.model import (
    UNIT_TYPES,
    Assignment,
    Container,
    LaunchPlan,
    Manager,
    OpenFile,
    PassFd,
    ServiceUser,
)
from runas_podman.core.podman_args import foreground_run
from runas_podman.core.unit import fdname_is_valid, unit_name_is_valid

UNIT_NAME_PREFIX = "runas-podman-"
MAX_FD_NUMBER = 2**31 - 1  # an int in the kernel's fd tables
# Properties the plan derives from -u; setting them with -p would contradict it.
IDENTITY_PROPERTIES = frozenset({"User", "Group", "DynamicUser"})


# --- building ---------------------------------------------------------------


def _random_token() -> str:
    return os.urandom(6).hex()


def service_unit_name(
    requested: str | None,
    prefix: str = UNIT_NAME_PREFIX,
    random_token: Callable[[], str] = _random_token,
) -> str:
    """`--unit` validated (`.service` appended if no suffix), or PREFIX and a fresh random
    token (the one place a unit name is made up: runas-podman, runas, Quadlet commands)."""
    if requested is None:
        return f"{prefix}{random_token()}.service"
    name = requested if "." in requested else f"{requested}.service"
    if name.rpartition(".")[2] != "service":
        raise UsageError(f"--unit {shown(requested)} must be a .service unit (or have no suffix)")
    # Not starting with '-': the name is printed in hints (systemctl stop NAME).
    if not unit_name_is_valid(name) or name.startswith("-"):
        raise UsageError(
            f"--unit {shown(requested)} is not a valid unit name (letters, digits and "
            ":-_.\\ only, an instance after '@', not starting with '-', at most 255 "
            "characters)"
        )
    return name


def slice_unit_name(text: str) -> str:
    """--slice as systemd-run takes it: NAME.slice as is, a bare NAME as NAME.slice; the
    name of another kind of unit is refused, as systemd-run refuses it ("is not a
    slice"), rather than turned into foo.service.slice."""
    _stem, dot, suffix = text.rpartition(".")
    if dot and suffix in UNIT_TYPES and suffix != "slice":
        raise UsageError(
            f"--slice {shown(text)} is not a slice (it names a .{suffix} unit): give NAME "
            "or NAME.slice"
        )
    return text if text.endswith(".slice") else f"{text}.slice"


def unit_slice(requested: str | None, inherit: bool, caller_slice: str | None) -> str | None:
    """The unit's slice as systemd-run decides it: --slice (NAME or NAME.slice), under
    the caller's own slice with --slice-inherit (CALLER-NAME.slice); None: the manager's
    default. (runas's default, user.slice, is elevate's.)"""
    base = slice_unit_name(requested).removesuffix(".slice") if requested else ""
    if inherit and caller_slice:
        inherited = caller_slice.removesuffix(".slice")
        base = f"{inherited}-{base}" if base else inherited
    return f"{base}.slice" if base else None


def launch_settings(
    *,
    slice_name: str | None = None,
    slice_inherit: bool = False,
    caller_slice: str | None = None,
    nice: int | None = None,
    working_directory: str | None = None,
    same_dir: bool = False,
    cwd: str = "/",
    send_sighup: bool = False,
    service_type: str | None = None,
    remain_after_exit: bool = False,
) -> list[str]:
    """The settings `runas-podman exec`/`podman` options ask for, as `-p` text (checked by
    the -p parser like the user's own): --slice/--slice-inherit, --nice,
    -D/--working-directory or -d/--same-dir (the caller's directory), --send-sighup,
    --service-type (after the plan's own Type=exec, so it wins), -r/--remain-after-exit."""
    if same_dir and working_directory:
        raise UsageError("-d/--same-dir and -D/--working-directory contradict each other: give one")
    settings = []
    chosen = unit_slice(slice_name, slice_inherit, caller_slice)
    if chosen is not None:
        settings.append(f"Slice={chosen}")
    if nice is not None:
        settings.append(f"Nice={nice}")
    directory = cwd if same_dir else working_directory
    if directory:
        settings.append(f"WorkingDirectory={directory}")
    if send_sighup:
        settings.append("SendSIGHUP=yes")
    if service_type is not None:
        settings.append(f"Type={service_type}")
    if remain_after_exit:
        settings.append("RemainAfterExit=yes")
    return settings


# --- secret fds ---------------------------------------------------------------


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
    if not fdname_is_valid(name):
        raise UsageError(
            f"--open-file {shown(text)}: fd name {shown(name)} must be 1-255 printable ASCII "
            "characters, no ':'"
        )
    flags = tuple(f for f in fields[2].split(",") if f) if len(fields) > 2 else ()
    from runas_podman.core.unitprops import OPEN_FILE_FLAGS

    unknown = [f for f in flags if f not in OPEN_FILE_FLAGS]
    if unknown:
        raise UsageError(
            f"--open-file '{text}': unknown flag '{unknown[0]}' (use {', '.join(OPEN_FILE_FLAGS)})"
        )
    return OpenFile(path, name, flags)


def parse_pass_fd(text: str) -> PassFd:
    """N[:NAME]; NAME defaults to fdN."""
    number, _, name = text.partition(":")
    if not (number.isascii() and number.isdigit()) or not 3 <= int(number) <= MAX_FD_NUMBER:
        raise UsageError(
            f"--pass-fd '{text}': N must be an open fd number from 3 to {MAX_FD_NUMBER}"
        )
    name = name or f"fd{number}"
    if not fdname_is_valid(name):
        raise UsageError(
            f"--pass-fd {shown(text)}: fd name {shown(name)} must be 1-255 printable ASCII "
            "characters, no ':'"
        )
    return PassFd(int(number), name)


EXEC_FLAGS = ("ignore-failure", "no-env-expand")  # those exec_assignment writes, in order
_NOT_PLAIN = " \t\n\r\"'\\"  # an unquoted argv[0] with these would split otherwise


def exec_assignment(setting: str, argv: Sequence[str], flags: Sequence[str]) -> Assignment:
    """An Exec*= setting as `systemd-run -p` writes it (prefix '-' ignores a failure, ':'
    turns off $VAR expansion), and the D-Bus property systemd-run sends for it: its
    `…Ex` twin with the flags as words once there is more than ignore-failure."""
    prefix = "-" * ("ignore-failure" in flags) + ":" * ("no-env-expand" in flags)
    quoted = ['"' + a.replace("\\", "\\\\").replace('"', '\\"') + '"' for a in argv[1:]]
    text = f"{setting}={prefix}{argv[0]} {' '.join(quoted)}".rstrip()
    plain_path = argv[0].startswith("/") and not any(c in argv[0] for c in _NOT_PLAIN)
    if not plain_path or "\0" in text or any(flag not in EXEC_FLAGS for flag in flags):
        return Assignment.parse(text)  # refused, or not made here: as -p would
    if "no-env-expand" in flags:
        words = [flag for flag in EXEC_FLAGS if flag in flags]
        value = [[argv[0], list(argv), words]]
        return Assignment.typed(text, "a(sasas)", value, wire_name=f"{setting}Ex")
    return Assignment.typed(text, "a(sasb)", [[argv[0], list(argv), "ignore-failure" in flags]])


# From 254 on the manager writes and reads back a transient unit's command lines as given
# (252 changes ';' and '$' at a daemon-reload: properties.EXEC_EX_WRITTEN_SINCE).
DOLLAR_SAFE_SINCE = 254


def container_cleanup(container: Container, version: int | None = None) -> tuple[Assignment, ...]:
    """Stop (with --rm: remove) the container of a foreground `podman run` with its unit,
    for a manager of `version` (None: the newest).

    conmon lives outside the unit, so stopping podman alone can leave the container
    running. ExecStop= runs while podman still runs ($MAINPID set) and stops the
    container the way `podman stop` does (SIGTERM, its stop timeout, SIGKILL), so podman
    sees it end; ExecStopPost= catches a podman that died first, and removes the cidfile.
    Their stdout (container ids) is not the command's output: it goes to /dev/null.

    systemd runs both after every run, also when podman ended on its own: then each is
    one shell that tests and exits (a `test -s CIDFILE` alone would not do for ExecStop:
    the cidfile outlives podman for a moment, measured on 257, and a `podman stop` ran).
    Before 254 no ';', '$' or '"' in them (252 reads them back wrongly from its transient
    unit file after a daemon-reload, measured): MAINPID is tested by `printenv`, one
    process more (measured there: 21 ms of the unit's life against 7 ms).
    """
    cid, podman = shlex.quote(container.cidfile), shlex.quote(container.podman)
    running = (
        'test -n "$MAINPID"'
        if version is None or version >= DOLLAR_SAFE_SINCE
        else "printenv MAINPID >/dev/null"
    )
    end = "rm -f --ignore" if container.remove else "stop --ignore"
    stop = (
        f"{running} && test -s {cid} || exit 0 && "
        f"exec {podman} stop --ignore --cidfile {cid} >/dev/null"
    )
    post = (
        f"test -s {cid} || exit 0 && {podman} {end} --cidfile {cid} >/dev/null || true && "
        f"exec rm -f {cid}"
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


def parse_setenv(items: Sequence[str], caller_env: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """`--setenv NAME=VALUE`, or `--setenv NAME` to pass the caller's value (as systemd-run)."""
    result: list[tuple[str, str]] = []
    if items:
        from runas_podman.core.unitprops import ENV_NAME
    for item in items:
        name, sep, value = item.partition("=")
        if not ENV_NAME.fullmatch(name):
            raise UsageError(f"--setenv '{item}': '{name}' is not a valid variable name")
        if not sep:
            if name not in caller_env:
                raise UsageError(f"--setenv {name}: the variable is not set in your environment")
            value = caller_env[name]
        result.append((name, value))
    return last_wins(result)


def last_wins(environment: Sequence[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """One entry per name, the last given (as systemd-run merges repeated -E): systemd
    refuses an Environment= block that names a variable twice."""
    return tuple(dict(environment).items())  # a later value, in the name's first place


def parse_assignments(texts: Sequence[str]) -> tuple[Assignment, ...]:
    assignments = tuple(Assignment.parse(text) for text in texts)
    for assignment in assignments:
        if assignment.name in IDENTITY_PROPERTIES:
            raise UsageError(
                f"-p {assignment.text}: the unit's identity comes from -u USER and -g GROUP, not -p"
            )
    return assignments


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
    group: str | None = None,
    waiting: Waiting | None = None,
    timer: Sequence[Assignment] = (),
) -> LaunchPlan:
    """The plan that runs `argv` (argv[0] absolute) as `user` on the chosen manager, with
    the user's primary group or `group` (-g, the system manager only)."""
    if not argv or not argv[0].startswith("/"):
        raise ValueError("argv[0] must be an absolute path")
    fixed: list[Assignment] = []
    if group is not None and manager is not Manager.SYSTEM:
        raise UsageError(
            f"-g/--group needs the system manager: {user.name}'s own manager runs "
            "everything with its own groups (drop -g, or use --via system)"
        )
    if manager is Manager.SYSTEM:
        manager_unit = user.user_manager_unit
        group = group or user.group
        fixed += [
            Assignment.typed(f"User={user.name}", "s", user.name),
            Assignment.typed(f"Group={group}", "s", group),
            Assignment.typed(f"Requires={manager_unit}", "as", [manager_unit]),
            Assignment.typed(f"After={manager_unit}", "as", [manager_unit]),
        ]
    fixed.append(Assignment.typed("Type=exec", "s", "exec"))
    env = [("XDG_RUNTIME_DIR", user.runtime_dir)] if manager is Manager.SYSTEM else []
    return LaunchPlan(
        unit=unit,
        manager=manager,
        user=user,
        argv=tuple(argv),
        description=description or truncated(f"runas-podman: {shell_join(argv)}", 200),
        assignments=(*fixed, *assignments),
        environment=last_wins([*env, *environment]),
        open_files=tuple(open_files),
        pass_fds=tuple(pass_fds),
        timer=tuple(timer),
        **(waiting or Waiting())._asdict(),
    )


class Waiting(NamedTuple):
    """How the client stays with the unit (LaunchPlan's fields of the same names)."""

    job_mode: str = "fail"
    wait: bool = True
    lifeline: bool = True
    ignore_failure: bool = False


def waiting_for(
    *, no_block: bool, remain_after_exit: bool, job_mode: str, ignore_failure: bool
) -> Waiting:
    """--no-block: started and left to run (no wait, no lifeline); -r: waited for until
    the command ends, and left up after (no lifeline binds it to this client)."""
    return Waiting(
        job_mode=job_mode, wait=not no_block,
        lifeline=not (no_block or remain_after_exit), ignore_failure=ignore_failure,
    )  # fmt: skip


def podman_plan(plan: LaunchPlan) -> LaunchPlan:
    """The plan of `podman ARGS`: fd names for run/create, and for a foreground run a
    cidfile the unit uses to stop (with --rm: remove) the container when it stops."""
    podman, *args = plan.argv
    args = inject_fd_names(args, plan.fd_names)
    run = foreground_run(args)
    if run is None:
        return plan.with_argv([podman, *args])
    cidfile = f"{plan.user.runtime_dir}/{plan.unit.removesuffix('.service')}.cid"
    args[run.options_at : run.options_at] = ["--cidfile", cidfile]
    container = Container(podman, cidfile, run.remove)
    return dataclasses.replace(plan, argv=(podman, *args), container=container)
