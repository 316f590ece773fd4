"""The pure decisions of the native backend (native.py): a LaunchPlan, run without systemd.

Where PID 1 is not systemd (containers, CI jobs), runas and runas-podman run the plan
themselves: fork, PAM session, groups, gid, uid, working directory, exec. What the
command gets must be what the unit would have got, so everything here starts from the
same LaunchPlan the systemd path sends (elevate.py, plan.py): the environment is the
plan's allowlisted one plus what systemd itself adds for `User=`, and every property of
the plan is either honoured here or refused in one line, never dropped unseen.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from runas_podman.core.errors import UsageError
from runas_podman.core.model import UNIT_SEARCH_PATH, LaunchPlan, ServiceUser

# The system manager's own PATH for its services (the fixed search path of model.py).
DEFAULT_PATH = ":".join(UNIT_SEARCH_PATH)
# How long a stopped command may take before SIGKILL (systemd's DefaultTimeoutStopSec).
DEFAULT_STOP_TIMEOUT = 90.0
# Unit types a plain fork+exec+wait behaves as: the start is over once exec succeeded.
EXEC_TYPES = frozenset({"exec", "simple", "oneshot"})
# No cgroups without a manager: the plan's default slice means nothing, another is refused.
DEFAULT_SLICE = "user.slice"
# The journal fields runas adds (the caller); without a journal the broker's log line
# and SUDO_* carry the same facts. Other LogExtraFields= are refused.
CALLER_LOG_FIELDS = (b"ELEVATED_UID=", b"ELEVATED_GID=", b"ELEVATED_USER=")


@dataclass(frozen=True)
class NativeSpec:
    """What the native executor does for a plan, beyond its argv, user and environment."""

    pam_service: str | None = None  # PAMName=: a PAM session around the command
    group: str | None = None  # Group=: the primary group (default: the user's own)
    working_directory: str | None = None  # "~", an absolute path, or None for "/"
    working_directory_optional: bool = False  # WorkingDirectory=-PATH
    nice: int | None = None
    umask: int | None = None
    send_sighup: bool = False  # SendSIGHUP=: SIGHUP follows the stop signal
    ignore_sigpipe: bool = True  # systemd's default; runas sets IgnoreSIGPIPE=no
    stop_timeout: float = DEFAULT_STOP_TIMEOUT
    environment: tuple[tuple[str, str], ...] = ()  # -p Environment= assignments, in order
    exec_stop: tuple[tuple[str, ...], ...] = ()  # ExecStop= argvs (podman's cleanup)
    exec_stop_post: tuple[tuple[str, ...], ...] = ()  # ExecStopPost= argvs
    runtime_dir: bool = False  # XDG_RUNTIME_DIR=/run/user/UID is made when missing


class Unsupported(UsageError):
    """A plan property the native executor cannot honour: refused before anything runs."""


def _refuse(text: str, why: str) -> Unsupported:
    return Unsupported(
        f"-p {text}: the native backend (no systemd as PID 1) cannot honour it ({why}); "
        "drop it, or run where systemd is PID 1"
    )


def _exec_argvs(values: object) -> tuple[tuple[str, ...], ...]:
    """ExecStop(Post)Ex values, a(sasas): [[path, argv, flags], ...] -> argvs with the path."""
    argvs: list[tuple[str, ...]] = []
    if isinstance(values, list):
        for path, argv, _flags in values:
            argvs.append((str(path), *(str(arg) for arg in list(argv)[1:])))
    return tuple(argvs)


def native_spec(plan: LaunchPlan) -> NativeSpec:
    """Every property of the plan, honoured (in the spec) or refused (Unsupported)."""
    fields: dict[str, object] = {}
    environment: list[tuple[str, str]] = []
    stop: list[tuple[str, ...]] = []
    stop_post: list[tuple[str, ...]] = []
    from runas_podman.core.properties import plan_settings

    for assignment in plan_settings(plan, None):  # (natively, MAINPID is set too)
        for prop in assignment.properties:
            name, value = prop.name, prop.value
            if name == "User":
                if value != plan.user.name:
                    raise _refuse(assignment.text, "the user comes from -u")
            elif name == "Group":
                fields["group"] = str(value)
            elif name == "PAMName":
                fields["pam_service"] = str(value)
            elif name == "Type":
                if value not in EXEC_TYPES:
                    raise _refuse(assignment.text, f"only {', '.join(sorted(EXEC_TYPES))}")
            elif name == "WorkingDirectory":
                text = str(value)
                fields["working_directory_optional"] = text.startswith("-")
                fields["working_directory"] = text.removeprefix("-") or None
            elif name == "Nice":
                fields["nice"] = int(str(value))
            elif name == "UMask":
                fields["umask"] = int(str(value))
            elif name == "SendSIGHUP":
                fields["send_sighup"] = bool(value)
            elif name == "IgnoreSIGPIPE":
                fields["ignore_sigpipe"] = bool(value)
            elif name == "TimeoutStopUSec":
                fields["stop_timeout"] = int(str(value)) / 1_000_000
            elif name == "Environment" and isinstance(value, list):
                for entry in value:
                    key, _, text = str(entry).partition("=")
                    environment.append((key, text))
            elif name == "ExecStopEx":
                stop += _exec_argvs(value)
            elif name == "ExecStopPostEx":
                stop_post += _exec_argvs(value)
            elif name == "Slice":
                if value != DEFAULT_SLICE:
                    raise _refuse(assignment.text, "there are no slices without systemd")
            elif name in ("Requires", "After") and value == [plan.user.user_manager_unit]:
                pass  # the user's manager: natively, its runtime directory is made instead
            elif name == "LogExtraFields" and isinstance(value, list):
                if not all(bytes(v).startswith(CALLER_LOG_FIELDS) for v in value):
                    raise _refuse(assignment.text, "there is no journal")
            else:
                raise _refuse(assignment.text, _why(name))
    runtime_dir = dict(plan.environment).get("XDG_RUNTIME_DIR") == plan.user.runtime_dir
    return NativeSpec(
        environment=tuple(environment), exec_stop=tuple(stop), exec_stop_post=tuple(stop_post),
        runtime_dir=runtime_dir, **fields,  # type: ignore[arg-type]
    )  # fmt: skip


def _why(name: str) -> str:
    if name.startswith(("Memory", "CPU", "IO", "Tasks", "Device", "IP", "Startup")):
        return "a cgroup setting needs the service manager"
    if name in ("AmbientCapabilities", "SupplementaryGroups"):
        return "--empower and extra groups need the service manager"
    return "only the settings of docs/elevation.md are done natively"


def service_environment(plan: LaunchPlan, spec: NativeSpec, user: ServiceUser) -> dict[str, str]:
    """What systemd's exec would give the command before PAM: the manager's PATH, what
    `User=` adds (HOME, USER, LOGNAME, SHELL), then Environment= in the unit's order
    (-p Environment= first, then the plan's own allowlisted variables)."""
    env = {"PATH": DEFAULT_PATH}
    env.update(HOME=user.home, LOGNAME=user.name, USER=user.name, SHELL=user.shell or "/bin/sh")
    env.update(spec.environment)
    env.update(plan.environment)
    return env


def listen_environment(names: Sequence[str], pid: int) -> dict[str, str]:
    """LISTEN_FDS, LISTEN_FDNAMES, LISTEN_PID as systemd sets them for fds from 3 on."""
    if not names:
        return {}
    return {"LISTEN_FDS": str(len(names)), "LISTEN_FDNAMES": ":".join(names),
            "LISTEN_PID": str(pid)}  # fmt: skip


def working_directory(spec: NativeSpec, user: ServiceUser) -> str:
    """WorkingDirectory= as systemd reads it: ~ is the user's home; none is /."""
    if spec.working_directory is None:
        return "/"
    if spec.working_directory == "~":
        return user.home or "/"
    return spec.working_directory


def exit_status(wait_status: int) -> int:
    """The status a shell reports: the exit code, or 128+N for signal N."""
    code = os.waitstatus_to_exitcode(wait_status)
    return code if code >= 0 else 128 - code


def pam_environment(entries: Mapping[str, str]) -> list[str]:
    """NAME=VALUE strings for pam_putenv, skipping names PAM refuses (empty, with '=')."""
    return [f"{name}={value}" for name, value in entries.items() if name and "=" not in name]
