"""What systemd-run itself would send for a command line, modelled on src/run/run.c.

Used to hold the two renderings of a plan (properties.py) equal: the D-Bus properties we
send, and those systemd-run would send for the `systemd-run` line we print.
"""

from __future__ import annotations

from runas_podman.core.model import LaunchPlan
from runas_podman.core.properties import (
    DBUS_ONLY,
    Session,
    service_properties,
    systemd_run_argv,
    timer_properties,
)
from runas_podman.core.timer import parse_timer_assignment
from runas_podman.core.unitprops import UnitProperty, parse_assignment

# Properties that depend on the running client: the fds it hands over (systemd-run
# passes its own stdio for --pipe, a pty's for --pty).
SESSION = Session(stdio_fds=(0, 1, 2), tty_path=None, lifeline_fd=None)


# systemd-run's timer options and the timer settings they add (add_timer_property()).
TIMER_OPTIONS = {
    "--on-active": "OnActiveSec", "--on-boot": "OnBootSec", "--on-startup": "OnStartupSec",
    "--on-unit-active": "OnUnitActiveSec", "--on-unit-inactive": "OnUnitInactiveSec",
    "--on-calendar": "OnCalendar",
}  # fmt: skip
TIMER_FLAGS = {"--on-clock-change": "OnClockChange=yes",
               "--on-timezone-change": "OnTimezoneChange=yes"}  # fmt: skip


def systemd_run_timer_properties(argv: list[str]) -> list[UnitProperty]:
    """The timer's properties systemd-run sends (transient_timer_set_properties(): the
    unit's description, the timer settings, RemainAfterElapse=no), or none."""
    options = argv[1 : argv.index("--")]
    settings = []
    for option in options:
        name, _, value = option.partition("=")
        if name in TIMER_OPTIONS:
            settings.append(f"{TIMER_OPTIONS[name]}={value}")
        elif name in TIMER_FLAGS:
            settings.append(TIMER_FLAGS[name])
        elif name == "--timer-property":
            settings.append(value)
    if not settings:
        return []
    description = next(o.partition("=")[2] for o in options if o.startswith("--description="))
    properties = [UnitProperty("Description", "s", description)]
    for text in settings:
        properties += parse_timer_assignment(text).properties
    return [*properties, UnitProperty("RemainAfterElapse", "b", False)]


def systemd_run_properties(argv: list[str], session: Session) -> list[UnitProperty]:
    """The service properties systemd-run sends for `argv` (as run.c builds them)."""
    assert argv[0] == "systemd-run"
    dash = argv.index("--")
    options, command = argv[1:dash], argv[dash + 1 :]
    properties: list[UnitProperty] = []
    environment: list[str] = []
    expand, pty, block, ignore_failure = True, False, False, False
    for option in options:
        name, _, value = option.partition("=")
        if name == "--description":
            properties.append(UnitProperty("Description", "s", value))
        elif name == "--wait":
            properties.append(UnitProperty("AddRef", "b", True))
        elif name == "--collect":
            properties.append(UnitProperty("CollectMode", "s", "inactive-or-failed"))
        elif name == "--property":
            properties.extend(parse_assignment(value))
        elif name == "--setenv":
            environment.append(value)
        elif name == "--expand-environment":
            expand = value != "no"
        elif name == "--pty":
            pty = True
        elif name == "--no-block":
            block = True  # no AddRef, no stdio of the client's
        elif name == "--ignore-failure":
            ignore_failure = True  # ExecStart's "-"
        elif name in (*TIMER_OPTIONS, *TIMER_FLAGS, "--timer-property"):
            block = True  # a timer starts the service later: no stdio of the client's
        elif name in ("--pipe", "--quiet", "--unit", "--machine", "--user", "--job-mode"):
            pass  # no property: how to talk, what to print, the unit's name, which manager
        else:
            raise AssertionError(f"the model does not know {option}")
    if environment:
        properties.append(UnitProperty("Environment", "as", environment))
    stdin, stdout, stderr = session.stdio_fds
    if not block:
        properties += [
            UnitProperty("StandardInputFileDescriptor", "h", stdin),
            UnitProperty("StandardOutputFileDescriptor", "h", stdout),
            UnitProperty("StandardErrorFileDescriptor", "h", stderr),
        ]
    if pty:
        properties.append(UnitProperty("TTYPath", "s", session.tty_path))
    flags = ([] if expand else ["no-env-expand"]) + (["ignore-failure"] if ignore_failure else [])
    properties.append(UnitProperty("ExecStartEx", "a(sasas)", [[command[0], command, flags]]))
    return properties


def by_name(properties: list[UnitProperty]) -> dict[str, list[tuple[str, object]]]:
    """Properties grouped by name, each group in the order sent (later ones win)."""
    grouped: dict[str, list[tuple[str, object]]] = {}
    for prop in properties:
        grouped.setdefault(prop.name, []).append((prop.signature, prop.value))
    return grouped


def assert_same_unit(plan: LaunchPlan) -> None:
    """The D-Bus call and the systemd-run line describe the same service; each setting's
    properties are what its text parses to (those made typed, Assignment.typed, too)."""
    for assignment in plan.assignments:
        assert assignment.properties == tuple(parse_assignment(assignment.text)), assignment
    session = SESSION if plan.stdio.value == "pipe" else Session(tty_path="/dev/pts/7")
    ours = [p for p in service_properties(plan, session) if p.name not in DBUS_ONLY]
    if plan.pass_fds:  # systemd-run cannot pass fds: the line says so, the rest must match
        ours = [p for p in ours if p.name != "ExtraFileDescriptors"]
    theirs = systemd_run_properties(systemd_run_argv(plan), session)
    assert by_name(ours) == by_name(theirs), plan
    timer = timer_properties(plan) if plan.timer else []
    assert by_name(timer) == by_name(systemd_run_timer_properties(systemd_run_argv(plan))), plan
