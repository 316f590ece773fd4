"""THE place where a launch becomes a unit.

A LaunchPlan (what to run, as whom, where) plus a Session (what the running client adds:
its stdio or pty, its lifeline, the manager's version) becomes every property of the
StartTransientUnit call, for the service and for its lifeline, and the same service as a
`systemd-run` command line. Nothing else in the package names a unit property it sets; a
unit test renders every plan both ways and holds them equal, property by property.
"""

from __future__ import annotations

from typing import NamedTuple

from runas_podman.core.errors import UsageError, shell_join, shown
from runas_podman.core.gate import check_unit
from runas_podman.core.model import (
    OPEN_FILE_SINCE,
    Assignment,
    LaunchPlan,
    Manager,
    Stdio,
    UnitProperty,
)

LIFELINE_SUFFIX = "-lifeline.service"
# systemd versions that changed what a unit may say (the manager's Version decides).
LIGHT_SESSION_CLASSES_SINCE = 256  # user-light, background-light, user-early (run0's)
EXPAND_ENVIRONMENT_OPTION_SINCE = 254  # systemd-run --expand-environment=
# systemd-run options measured in the testbed (252 has neither, 257 the first, 262 both).
IGNORE_FAILURE_OPTION_SINCE = 257  # systemd-run --ignore-failure (the manager: since 243)
JOB_MODE_OPTION_SINCE = 262  # systemd-run --job-mode
VERBOSE_OPTION_SINCE = 262  # systemd-run -v/--verbose, --output
# Before 254 the manager writes an Exec*Ex property into the transient unit file under its
# own name (ExecStartEx=...), which its unit-file parser does not know: after a
# daemon-reload the unit has no command (measured on 252: "no ExecStart=, ExecStop=, or
# SuccessAction=. Refusing."; 257 writes ExecStart=). For it, the classic forms.
EXEC_EX_WRITTEN_SINCE = 254
_CLASSIC_FLAGS = frozenset({"ignore-failure", "no-env-expand"})
# Properties of the service with no systemd-run equivalent (the lifeline is ours).
DBUS_ONLY = frozenset({"BindsTo"})


def lifeline_unit_name(unit: str) -> str:
    return unit.removesuffix(".service") + LIFELINE_SUFFIX


class Relay(NamedTuple):
    """Secret fds through fdrelay.py, for a manager without OpenFile=/ExtraFileDescriptors:
    the unit's stdin is `socket_fd`, and the relay runs first, with `python -I -S`."""

    python: str
    script: str
    socket_fd: int


class Session(NamedTuple):
    """What a running client adds to a plan. fds are the client's own descriptors."""

    stdio_fds: tuple[int, int, int] = (0, 1, 2)  # the unit's stdin, stdout, stderr
    tty_path: str | None = None  # the pty whose peer is in stdio_fds (Stdio.PTY)
    lifeline_fd: int | None = None  # read end of the lifeline pipe; None: no lifeline
    cat: str = "/usr/bin/cat"  # the lifeline's program
    manager_version: int | None = None  # None: the newest systemd
    relay: Relay | None = None  # secret fds through the relay instead of the properties


class TransientUnit(NamedTuple):
    """One unit of a StartTransientUnit call. A property of signature 'h' holds an fd
    number, 'a(hs)' (fd, name) pairs: systemd_bus turns them into the message's fds."""

    name: str
    properties: tuple[UnitProperty, ...]


class StartCall(NamedTuple):
    unit: TransientUnit  # the unit whose start job the call queues: the service, or its timer
    aux: tuple[TransientUnit, ...] = ()
    mode: str = "fail"  # the job mode (--job-mode)

    @property
    def fd_count(self) -> int:
        """How many fds the message carries (one D-Bus message takes at most 16)."""
        count = 0
        for unit in (self.unit, *self.aux):
            for prop in unit.properties:
                if prop.signature == "h":
                    count += 1
                elif prop.signature == "a(hs)" and isinstance(prop.value, list):
                    count += len(prop.value)
        return count


def service_properties(plan: LaunchPlan, session: Session) -> list[UnitProperty]:
    """Every property of the service unit, in the order systemd-run would send them."""
    properties = [UnitProperty("Description", "s", plan.description)]
    if plan.wait:
        properties.append(UnitProperty("AddRef", "b", True))  # systemd-run --wait
    properties.append(UnitProperty("CollectMode", "s", "inactive-or-failed"))  # --collect
    for assignment in plan_settings(plan, session.manager_version):
        properties.extend(assignment.properties)
    environment = environment_for(plan, session.manager_version)
    if environment:
        properties.append(UnitProperty("Environment", "as", environment))
    relay = session.relay
    if plan.open_files and relay is None:
        entries = [[f.path, f.name, f.flag_bits] for f in plan.open_files]
        properties.append(UnitProperty("OpenFile", "a(sst)", entries))
    if plan.pass_fds and relay is None:
        properties.append(
            UnitProperty("ExtraFileDescriptors", "a(hs)", [[p.fd, p.name] for p in plan.pass_fds])
        )
    stdin, stdout, stderr = session.stdio_fds
    if relay is not None:
        stdin = relay.socket_fd  # the real stdin travels to the relay with the secrets
    if plan.wait:  # --no-block: the manager's defaults (no input, output to the journal)
        properties += [
            UnitProperty("StandardInputFileDescriptor", "h", stdin),
            UnitProperty("StandardOutputFileDescriptor", "h", stdout),
            UnitProperty("StandardErrorFileDescriptor", "h", stderr),
        ]
    if session.tty_path is not None:
        properties.append(UnitProperty("TTYPath", "s", session.tty_path))
    # ExecStartEx with no-env-expand: arguments reach the command verbatim ($$, $HOME).
    argv = list(plan.argv)
    if relay is not None:
        argv = [relay.python, "-I", "-S", relay.script, "--", *argv]
    flags = ["no-env-expand", *(["ignore-failure"] if plan.ignore_failure else [])]
    properties.append(UnitProperty("ExecStartEx", "a(sasas)", [[argv[0], argv, flags]]))
    if session.lifeline_fd is not None:
        # BindsTo: when the lifeline stops (the client is gone), so does the service.
        properties.append(UnitProperty("BindsTo", "as", [lifeline_unit_name(plan.unit)]))
    return [classic_exec(prop, session.manager_version) for prop in properties]


# What 252 reads back changed from its own transient unit file after a daemon-reload
# (measured for each of ; $ " ' \\ ` % # & | < * {} and blanks: only these two).
CHANGED_BY_A_RELOAD = frozenset(";$")


def check_reruns(plan: LaunchPlan, version: int | None) -> None:
    """A unit that runs its command again later (a timer, Restart=) must run the same
    command after a daemon-reload: refused where the manager would change it."""
    if version is None or version >= EXEC_EX_WRITTEN_SINCE:
        return
    restarts = any(a.name == "Restart" and a.text.partition("=")[2] not in ("", "no")
                   for a in plan.assignments)  # fmt: skip
    if not (plan.timer or restarts):
        return
    changed = next((arg for arg in plan.argv if CHANGED_BY_A_RELOAD & set(arg)), None)
    if changed is not None:
        raise UsageError(
            f"systemd {version} reads a transient unit's command back with ';' and '$' "
            f"changed after a daemon-reload, and {'a timer' if plan.timer else 'Restart='} "
            f"runs it again later: argument {shown(changed)} would change; put the command "
            "in a script and run that"
        )


def classic_exec(prop: UnitProperty, version: int | None) -> UnitProperty:
    """An Exec*Ex command line as its classic Exec*= twin for a manager older than
    EXEC_EX_WRITTEN_SINCE: ignore-failure as the flag, no-env-expand as "$$" (systemd's own
    escape for a verbatim "$", as the systemd-run line for such a manager writes it)."""
    if version is None or version >= EXEC_EX_WRITTEN_SINCE or prop.signature != "a(sasas)":
        return prop
    entries = []
    for path, argv, flags in prop.value:  # type: ignore[attr-defined]
        if not _CLASSIC_FLAGS.issuperset(flags):
            return prop  # +, !, |: no classic form (a -p of the caller's own)
        if "no-env-expand" in flags:
            argv = [arg.replace("$", "$$") for arg in argv]
        entries.append([path, list(argv), "ignore-failure" in flags])
    return UnitProperty(prop.name.removesuffix("Ex"), "a(sasb)", entries)


def plan_settings(plan: LaunchPlan, version: int | None) -> tuple[Assignment, ...]:
    """The plan's settings and, for a `podman run`, its container's cleanup as the
    manager of `version` takes it."""
    if plan.container is None:
        return plan.assignments
    from runas_podman.core.plan import container_cleanup

    return (*plan.assignments, *container_cleanup(plan.container, version))


def session_class_for(klass: str, version: int | None) -> str:
    """A pam_systemd session class the manager knows: before 256 there are no light
    classes and no user-early (pam_systemd 252 fails the session, and the unit hangs)."""
    if version is None or version >= LIGHT_SESSION_CLASSES_SINCE:
        return klass
    klass = klass.removesuffix("-light")
    return "user" if klass == "user-early" else klass


def environment_for(plan: LaunchPlan, version: int | None) -> list[str]:
    return [
        f"{name}={session_class_for(value, version) if name == 'XDG_SESSION_CLASS' else value}"
        for name, value in plan.environment
    ]


def lifeline_properties(plan: LaunchPlan, session: Session) -> list[UnitProperty]:
    """A `cat` reading a pipe only the client writes to: it ends when the client does."""
    assert session.lifeline_fd is not None
    properties = [
        UnitProperty("Description", "s", f"runas-podman lifeline of {plan.unit}"),
        UnitProperty("Type", "s", "simple"),  # nothing waits for cat to exec
        UnitProperty("CollectMode", "s", "inactive-or-failed"),
        UnitProperty("StandardInputFileDescriptor", "h", session.lifeline_fd),
        UnitProperty("StandardOutput", "s", "null"),
        UnitProperty("StandardError", "s", "null"),
        UnitProperty("NoNewPrivileges", "b", True),
        UnitProperty("ExecStart", "a(sasb)", [[session.cat, [session.cat], False]]),
    ]
    if plan.manager is Manager.SYSTEM:  # no need for root to read a pipe
        properties.append(UnitProperty("User", "s", plan.user.name))
    return properties


def timer_properties(plan: LaunchPlan) -> list[UnitProperty]:
    """The timer's: the service's description, its settings, and gone once it has
    elapsed for the last time (systemd-run's RemainAfterElapse=no)."""
    properties = [UnitProperty("Description", "s", plan.description)]
    for assignment in plan.timer:
        properties.extend(assignment.properties)
    properties.append(UnitProperty("RemainAfterElapse", "b", False))
    return properties


def start_call(plan: LaunchPlan, session: Session) -> StartCall:
    """The whole StartTransientUnit call: the service, and its lifeline in the same call
    (one polkit authorization for both); with a timer, the timer and its service."""
    service = TransientUnit(plan.unit, tuple(service_properties(plan, session)))
    check_unit(*service)  # the gate, again: what the session added (TTYPath=) included
    if plan.timer_unit is not None:
        timer = TransientUnit(plan.timer_unit, tuple(timer_properties(plan)))
        check_unit(*timer)
        return StartCall(timer, (service,), plan.job_mode)
    if session.lifeline_fd is None:
        return StartCall(service, mode=plan.job_mode)
    lifeline = TransientUnit(
        lifeline_unit_name(plan.unit), tuple(lifeline_properties(plan, session))
    )
    check_unit(*lifeline)
    return StartCall(service, (lifeline,), plan.job_mode)


# --- the same unit as a systemd-run command line ------------------------------------------


def systemd_run_argv(
    plan: LaunchPlan, version: int | None = None, follow: str | None = None
) -> list[str]:
    """The systemd-run invocation that starts the same service (without the lifeline),
    for a systemd-run (and manager) of `version` (None: the newest); `follow`: -v's
    output mode."""
    argv = ["systemd-run"]
    if plan.manager is Manager.USER:
        argv += [f"--machine={plan.user.name}@", "--user"]
    argv += [f"--unit={plan.unit}", f"--description={plan.description}"]
    if plan.timer:
        from runas_podman.core.timer import systemd_run_timer_options

        argv += systemd_run_timer_options(plan.timer)
    elif plan.wait:
        argv += ["--wait", "--pty" if plan.stdio is Stdio.PTY else "--pipe"]
    else:
        argv.append("--no-block")
    argv += ["--quiet", "--collect"]
    if follow is not None:
        argv += ["--verbose", f"--output={follow}"]
    if plan.job_mode != "fail":
        argv.append(f"--job-mode={plan.job_mode}")
    if plan.ignore_failure:
        argv.append("--ignore-failure")
    command = list(plan.argv)
    if version is None or version >= EXPAND_ENVIRONMENT_OPTION_SINCE:
        argv.append("--expand-environment=no")
    else:  # no such option: "$$" is systemd's own escape for a verbatim "$"
        command = [arg.replace("$", "$$") for arg in command]
    argv += [f"--property={assignment.text}" for assignment in plan_settings(plan, version)]
    argv += [f"--setenv={entry}" for entry in environment_for(plan, version)]
    argv += [f"--property=OpenFile={f.assignment}" for f in plan.open_files]
    argv += ["--", *command]
    return argv


def needs_relay(plan: LaunchPlan, version: int | None) -> bool:
    """Whether the manager lacks a property the plan's secret fds need (fdrelay.py)."""
    return version is not None and any(version < since for _f, since in plan.required_systemd())


def systemd_run_command(
    plan: LaunchPlan, version: int | None = None, follow: str | None = None
) -> str:
    for option, asked, since in (
        ("--ignore-failure", plan.ignore_failure, IGNORE_FAILURE_OPTION_SINCE),
        ("--job-mode", plan.job_mode != "fail", JOB_MODE_OPTION_SINCE),
        ("-v/--verbose", follow is not None, VERBOSE_OPTION_SINCE),
    ):
        if asked and version is not None and version < since:
            raise UsageError(
                f"{option} cannot be written as a systemd-run line for systemd {version} "
                f"(systemd-run has it since {since}); runas-podman itself passes it over "
                "D-Bus: run it without --dry-run"
            )
    if plan.open_files and needs_relay(plan, version):
        raise UsageError(
            f"--open-file cannot be written as a systemd-run line for systemd {version} "
            f"(OpenFile= needs {OPEN_FILE_SINCE}); runas-podman itself passes the files "
            "through its fd relay: run it without --dry-run"
        )
    command = shell_join(systemd_run_argv(plan, version, follow))
    if plan.pass_fds:
        # ExtraFileDescriptors cannot be given to systemd-run: say so where it shows.
        passed = " ".join(f"{p.fd}:{p.name}" for p in plan.pass_fds)
        command += f"  # without --pass-fd {passed}: systemd-run cannot pass fds"
    return command
