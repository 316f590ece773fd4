"""Timers: `--on-*` and `--timer-property` as systemd-run takes them.

With any of them the launch starts a transient timer NAME.timer instead of the service,
and the service NAME.service travels in the same StartTransientUnit call as its
auxiliary unit (systemd-run's start_transient_trigger): the timer starts it, later and
as often as it says. Each option is one `NAME=VALUE` setting of the timer, parsed here
the way systemd-run's bus_append_timer_property() parses it (the unit-file settings a
timer shares with every unit, Description= or After=, by unitprops' own rows).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from runas_podman.core.errors import UsageError, shown
from runas_podman.core.model import Assignment, UnitProperty

# The settings --on-* write (option -> setting), in systemd-run's --help order.
SPAN_OPTIONS = (
    ("--on-active", "OnActiveSec"),
    ("--on-boot", "OnBootSec"),
    ("--on-startup", "OnStartupSec"),
    ("--on-unit-active", "OnUnitActiveSec"),
    ("--on-unit-inactive", "OnUnitInactiveSec"),
)
CALENDAR_OPTION = ("--on-calendar", "OnCalendar")
FLAG_OPTIONS = (
    ("--on-clock-change", "OnClockChange"),
    ("--on-timezone-change", "OnTimezoneChange"),
)
# What makes --timer-property a timer by itself (systemd-run: arg_with_timer).
TRIGGERS = frozenset({*(setting for _o, setting in SPAN_OPTIONS), "OnCalendar"})
_BOOLEANS = frozenset({"WakeSystem", "Persistent", "OnTimezoneChange",
                       "OnClockChange", "FixedRandomDelay", "DeferReactivation"})  # fmt: skip
_SPANS_RENAMED = {"AccuracySec": "AccuracyUSec", "RandomizedDelaySec": "RandomizedDelayUSec",
                  "RandomizedOffsetSec": "RandomizedOffsetUSec"}  # fmt: skip
TIMER_SETTINGS = frozenset({*TRIGGERS, *_BOOLEANS, *_SPANS_RENAMED})


class TimerOptions(NamedTuple):
    """The timer options as given: (option, value) pairs of --on-active ... --on-calendar
    in the order given, the two flags, and --timer-property texts."""

    spans: tuple[tuple[str, str], ...] = ()
    clock_change: bool = False
    timezone_change: bool = False
    properties: tuple[str, ...] = ()


def timer_settings(options: TimerOptions) -> tuple[Assignment, ...]:
    """The timer's settings, or () when nothing asks for a timer. An empty value is
    refused (systemd-run refuses `--on-active=` too: a timer that never elapses)."""
    settings = dict((*SPAN_OPTIONS, CALENDAR_OPTION))
    texts = []
    for option, value in options.spans:
        if not value.strip():
            example = "daily" if option == "--on-calendar" else "5min"
            raise UsageError(f"{option} needs a value (e.g. {option}={example})")
        texts.append(f"{settings[option]}={value}")
    flags = zip((options.clock_change, options.timezone_change), FLAG_OPTIONS, strict=True)
    texts += [f"{setting}=yes" for given, (_option, setting) in flags if given]
    triggered = bool(texts) or any(
        text.partition("=")[0] in TRIGGERS and text.partition("=")[2] for text in options.properties
    )
    if options.properties and not triggered:
        raise UsageError(
            "--timer-property has no effect without a timer: add --on-active, --on-calendar, "
            "... (or --timer-property OnCalendar=..., as systemd-run counts it)"
        )
    return tuple(parse_timer_assignment(text) for text in (*texts, *options.properties))


def parse_timer_assignment(text: str) -> Assignment:
    """One timer setting `NAME=VALUE` -> the D-Bus properties systemd-run sends for it."""
    from runas_podman.core.unitprops import HANDLERS, SETTINGS, PropertyValueError

    name, sep, value = text.partition("=")
    if not sep or not name:
        raise UsageError(
            f"--timer-property {shown(text)} is not of the form NAME=VALUE (e.g. Persistent=yes)"
        )
    if name == "RemainAfterElapse":
        raise UsageError(
            "--timer-property RemainAfterElapse= is runas-podman's own (no, as systemd-run "
            "sets it: the timer goes once it has elapsed for the last time); drop it"
        )
    unit_setting = name not in TIMER_SETTINGS and any(
        setting.name == name and setting.family == "unit" for setting in SETTINGS
    )
    if name not in TIMER_SETTINGS and not unit_setting:
        raise UsageError(
            f"--timer-property {shown(name)} is not a timer setting: use one of "
            f"{', '.join(sorted(TIMER_SETTINGS))}, or a [Unit] setting (Description=, After=, ...)"
        )
    try:
        if "\0" in value:
            raise PropertyValueError("a NUL character cannot be passed")
        if unit_setting:
            properties = tuple(HANDLERS[name](name, value))
        else:
            properties = _timer_properties(name, value)
    except PropertyValueError as error:
        raise UsageError(f"bad value for timer setting {name}: {error}") from None
    return Assignment(text, properties)


def _timer_properties(name: str, value: str) -> tuple[UnitProperty, ...]:
    from runas_podman.core.unitprops import parse_boolean
    from runas_podman.core.unitprops import parse_timespan_usec as parse_span

    if name in _BOOLEANS:
        return (UnitProperty(name, "b", parse_boolean(value)),)
    if name in _SPANS_RENAMED:
        return (UnitProperty(_SPANS_RENAMED[name], "t", parse_span(value)),)
    if name == "OnCalendar":  # the manager parses the calendar spec (and says what is wrong)
        return (UnitProperty("TimersCalendar", "a(ss)", [[name, value]] if value else []),)
    # An empty value resets the list, as in a unit file.
    return (UnitProperty("TimersMonotonic", "a(st)", [[name, parse_span(value)]] if value else []),)


def systemd_run_timer_options(timer: Sequence[Assignment]) -> list[str]:
    """The timer's settings as systemd-run options: --on-* where one says it, else
    --timer-property (which alone makes no timer of OnClockChange=, hence the flags)."""
    options = {setting: option for option, setting in (*SPAN_OPTIONS, CALENDAR_OPTION)}
    flags = {f"{setting}=yes": option for option, setting in FLAG_OPTIONS}
    argv = []
    for assignment in timer:
        name, _, value = assignment.text.partition("=")
        if assignment.text in flags:
            argv.append(flags[assignment.text])
        elif name in options and value:
            argv.append(f"{options[name]}={value}")
        else:
            argv.append(f"--timer-property={assignment.text}")
    return argv


NOT_SET = (0, 2**64 - 1)  # systemd's "no such time" for timestamps


def next_elapse_usec(
    realtime: int, monotonic: int, now_realtime: int, now_monotonic: int
) -> int | None:
    """When a timer elapses next, in realtime µs: the earlier of its calendar time and its
    monotonic one (CLOCK_MONOTONIC, converted as systemctl list-timers converts it)."""
    candidates = [realtime] if realtime not in NOT_SET else []
    if monotonic not in NOT_SET:
        candidates.append(now_realtime + monotonic - now_monotonic)
    return min(candidates) if candidates else None


def format_time(usec: int | None) -> str:
    """A realtime timestamp as systemctl shows one (local time), or "-"."""
    if usec is None or usec in NOT_SET:
        return "-"
    import time

    return time.strftime("%a %Y-%m-%d %H:%M:%S %Z", time.localtime(usec / 1_000_000))
