"""core/timer.py: --on-* and --timer-property as systemd-run takes them, and the call
that starts a timer with its service."""

from __future__ import annotations

import pytest

from runas_podman.core.errors import UsageError
from runas_podman.core.model import Manager, ServiceUser, UnitProperty
from runas_podman.core.plan import build_service_plan, podman_plan, waiting_for
from runas_podman.core.properties import Session, start_call, systemd_run_argv
from runas_podman.core.timer import (
    TimerOptions,
    format_time,
    next_elapse_usec,
    parse_timer_assignment,
    timer_settings,
)
from tests.unit.systemd_run_model import assert_same_unit

TEST = ServiceUser("test", 1000, 1000, "test", "/home/test", "/bin/bash")
HOUR = 3600 * 1_000_000


def properties(text: str) -> tuple[UnitProperty, ...]:
    return parse_timer_assignment(text).properties


def test_the_settings_send_what_systemd_run_sends() -> None:
    # bus_append_timer_property(): spans as TimersMonotonic (µs), calendars as
    # TimersCalendar, the *Sec spans renamed to *USec, booleans as they are.
    assert properties("OnActiveSec=30s") == (
        UnitProperty("TimersMonotonic", "a(st)", [["OnActiveSec", 30_000_000]]),
    )
    assert properties("OnUnitInactiveSec=5d 4m 32s") == (
        UnitProperty("TimersMonotonic", "a(st)", [["OnUnitInactiveSec", 432_272_000_000]]),
    )
    assert properties("OnCalendar=mon,fri *-1/2-1,3 *:30:45") == (
        UnitProperty("TimersCalendar", "a(ss)", [["OnCalendar", "mon,fri *-1/2-1,3 *:30:45"]]),
    )
    assert properties("RandomizedDelaySec=5min") == (
        UnitProperty("RandomizedDelayUSec", "t", 300_000_000),
    )
    assert properties("Persistent=yes") == (UnitProperty("Persistent", "b", True),)
    assert properties("OnCalendar=") == (UnitProperty("TimersCalendar", "a(ss)", []),)
    # A [Unit] setting, as any unit takes it.
    assert properties("After=systemd-journald.service") == (
        UnitProperty("After", "as", ["systemd-journald.service"]),
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Bogus=1", "'Bogus' is not a timer setting"),
        ("ExecStart=/bin/true", "'ExecStart' is not a timer setting"),  # the service's
        ("OnActiveSec=5x", "bad value for timer setting OnActiveSec: '5x' is not a time span"),
        ("Persistent=maybe", "bad value for timer setting Persistent"),
        ("OnCalendar=a\0b", "a NUL character cannot be passed"),
        ("novalue", "is not of the form NAME=VALUE"),
    ],
)
def test_bad_settings_are_refused_in_one_line(text: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_timer_assignment(text)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_options_become_settings() -> None:
    options = TimerOptions(
        spans=(("--on-active", "10"), ("--on-active", "30s"), ("--on-calendar", "daily")),
        clock_change=True, timezone_change=True, properties=("Persistent=yes",),
    )  # fmt: skip
    texts = [a.text for a in timer_settings(options)]
    assert texts == ["OnActiveSec=10", "OnActiveSec=30s", "OnCalendar=daily",
                     "OnClockChange=yes", "OnTimezoneChange=yes", "Persistent=yes"]  # fmt: skip
    assert timer_settings(TimerOptions()) == ()
    # --timer-property with a trigger is a timer by itself, as in systemd-run.
    assert timer_settings(TimerOptions(properties=("OnUnitInactiveSec=16h",)))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (TimerOptions(spans=(("--on-active", ""),)), "--on-active needs a value"),
        (TimerOptions(spans=(("--on-calendar", " "),)), "--on-calendar needs a value"),
        (TimerOptions(properties=("Persistent=yes",)), "--timer-property has no effect"),
        (TimerOptions(properties=("OnCalendar=",)), "--timer-property has no effect"),
    ],
)
def test_what_systemd_run_refuses_is_refused(options: TimerOptions, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        timer_settings(options)


def timer_plan(**extra: object) -> object:
    timer = timer_settings(
        TimerOptions(spans=(("--on-calendar", "daily"),), clock_change=True,
                     properties=("Persistent=yes",))
    )  # fmt: skip
    return build_service_plan(
        user=TEST, argv=["/usr/bin/podman", "run", "--rm", "img", "true"],
        manager=Manager.SYSTEM, unit="backup.service", timer=timer,
        waiting=waiting_for(no_block=True, remain_after_exit=False, job_mode="fail",
                            ignore_failure=False), **extra,  # type: ignore[arg-type]
    )  # fmt: skip


def test_the_call_starts_the_timer_with_its_service() -> None:
    plan = podman_plan(timer_plan())  # type: ignore[arg-type]
    assert plan.timer_unit == "backup.timer"
    call = start_call(plan, Session())
    assert call.unit.name == "backup.timer"
    (service,) = call.aux
    assert service.name == "backup.service"
    timer = {p.name: p.value for p in call.unit.properties}
    assert timer["RemainAfterElapse"] is False and timer["Persistent"] is True
    assert timer["Description"] == plan.description
    names = {p.name for p in service.properties}
    # Nothing of this client's: no stdio, no AddRef, no lifeline (the runs come later).
    assert not names & {"StandardInputFileDescriptor", "AddRef", "BindsTo"}
    assert "ExecStop" in {n.removesuffix("Ex") for n in names}  # the container's cleanup
    assert call.fd_count == 0
    assert_same_unit(plan)
    argv = systemd_run_argv(plan)
    assert "--on-calendar=daily" in argv and "--on-clock-change" in argv
    assert "--timer-property=Persistent=yes" in argv
    assert "--wait" not in argv and "--no-block" not in argv and "--pipe" not in argv


def test_next_elapse_and_its_form() -> None:
    now_real, now_mono = 1_000 * HOUR, 5 * HOUR
    assert next_elapse_usec(0, 6 * HOUR, now_real, now_mono) == 1_001 * HOUR
    assert next_elapse_usec(1_000 * HOUR + 10, 6 * HOUR, now_real, now_mono) == 1_000 * HOUR + 10
    assert next_elapse_usec(2**64 - 1, 0, now_real, now_mono) is None
    assert format_time(None) == "-"
    assert format_time(0) == "-"
    assert format_time(1_796_687_394_000_000)[:4].strip() in ("Mon", "Tue", "Wed", "Thu", "Fri",
                                                              "Sat", "Sun")  # fmt: skip


def test_the_journal_of_a_unit_on_either_manager() -> None:
    """-v's matches: those --unit adds, written out (a `+` term follows them), and by
    fields for a user's manager (--user-unit would match the caller's own uid)."""
    from runas_podman.run.journal import unit_matches

    plan = timer_plan()
    assert unit_matches(plan) == [  # type: ignore[arg-type]
        "_SYSTEMD_UNIT=backup.service", "+", "UNIT=backup.service", "_PID=1",
        "+", "OBJECT_SYSTEMD_UNIT=backup.service", "_UID=0",
    ]  # fmt: skip
    import dataclasses

    mine = dataclasses.replace(plan, manager=Manager.USER)  # type: ignore[type-var]
    assert unit_matches(mine) == [
        "_SYSTEMD_USER_UNIT=backup.service", "_UID=1000", "+", "USER_UNIT=backup.service",
        "_UID=1000",
    ]  # fmt: skip


def test_remain_after_elapse_is_ours() -> None:
    with pytest.raises(UsageError, match="RemainAfterElapse= is runas-podman's own"):
        parse_timer_assignment("RemainAfterElapse=yes")


def test_a_rerun_on_252_refuses_what_a_reload_changes() -> None:
    from runas_podman.core.properties import check_reruns

    plan = timer_plan()
    import dataclasses

    risky = dataclasses.replace(plan, argv=("/bin/sh", "-c", "a; b"))  # type: ignore[type-var]
    with pytest.raises(UsageError, match="systemd 252 reads a transient unit's command back"):
        check_reruns(risky, 252)
    check_reruns(risky, 254)  # written and read back as given from 254 on
    check_reruns(plan, 252)  # nothing of ';' or '$' in it
    once = dataclasses.replace(risky, timer=())  # runs once: a reload cannot change it
    check_reruns(once, 252)


def test_tables_show_what_a_user_chose_escaped() -> None:
    from runas_podman.manage.podman_api import render_table

    table = render_table(["NAME"], [["x\x1b]0;OWNED\x07y"]])
    assert "\x1b" not in table and "\x07" not in table and table.count("\n") == 1
