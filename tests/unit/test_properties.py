"""properties.py: the one place where a plan and a session become the unit(s)."""

from __future__ import annotations

import pytest

from runas_podman.core.elevate import Caller, ElevateOptions, build_elevate_plan
from runas_podman.core.errors import UsageError
from runas_podman.core.model import Manager, OpenFile, PassFd, ServiceUser, Stdio
from runas_podman.core.plan import (
    build_service_plan,
    launch_settings,
    parse_assignments,
    podman_plan,
    waiting_for,
)
from runas_podman.core.properties import (
    Session,
    lifeline_unit_name,
    service_properties,
    session_class_for,
    start_call,
    systemd_run_argv,
    systemd_run_command,
)
from tests.unit.systemd_run_model import assert_same_unit

TEST = ServiceUser("test", 1000, 1000, "test", "/home/test", "/bin/bash")
CALLER = Caller("alice", 1001, 1001, "/srv", {"TERM": "xterm"}, "user.slice", "host", True)


def plans() -> list:  # type: ignore[type-arg]
    base = {"user": TEST, "unit": "u.service"}
    return [
        build_service_plan(argv=["/usr/bin/id"], manager=Manager.SYSTEM, **base),  # type: ignore[arg-type]
        build_service_plan(
            argv=["/usr/bin/env"],
            manager=Manager.USER,
            environment=[("A", "1 2")],
            assignments=parse_assignments(["MemoryMax=1G", "Environment=B=3"]),
            open_files=[OpenFile("/etc/a:b", "one", ("read-only",))],
            **base,  # type: ignore[arg-type]
        ),
        podman_plan(
            build_service_plan(
                argv=["/usr/bin/podman", "run", "--rm", "img", "true"],
                manager=Manager.SYSTEM,
                pass_fds=[PassFd(5, "db")],
                **base,  # type: ignore[arg-type]
            )
        ),
        build_elevate_plan(
            ElevateOptions(
                command=("/usr/bin/id",),
                unit="runas-x.service",
                stdio=Stdio.PTY,
                properties=("Nice=5",),
            ),
            CALLER,
            TEST,
        ),
        *(
            build_service_plan(
                argv=["/usr/bin/true"], manager=Manager.SYSTEM,
                assignments=parse_assignments(launch_settings(
                    service_type="oneshot", remain_after_exit=remain)),
                waiting=waiting_for(no_block=no_block, remain_after_exit=remain,
                                    job_mode=mode, ignore_failure=ignore),
                **base,  # type: ignore[arg-type]
            )
            for no_block, remain, mode, ignore in [
                (True, False, "fail", False), (False, True, "replace", False),
                (False, False, "fail", True), (True, True, "fail", True),
            ]
        ),
    ]  # fmt: skip


def test_every_plan_is_the_same_unit_both_ways() -> None:
    for plan in plans():
        assert_same_unit(plan)


def test_the_lifeline_travels_in_the_same_call() -> None:
    plan = plans()[0]
    call = start_call(plan, Session(stdio_fds=(0, 1, 2), lifeline_fd=9, cat="/usr/bin/cat"))
    (lifeline,) = call.aux
    assert lifeline.name == lifeline_unit_name("u.service") == "u-lifeline.service"
    props = {p.name: p.value for p in lifeline.properties}
    assert props["StandardInputFileDescriptor"] == 9
    assert props["User"] == "test"  # no need for root to read a pipe
    service = {p.name: p.value for p in call.unit.properties}
    assert service["BindsTo"] == ["u-lifeline.service"]
    assert call.fd_count == 4


def test_passed_fds_are_counted_and_named() -> None:
    plan = plans()[2]
    call = start_call(plan, Session(lifeline_fd=9))
    service = {p.name: p.value for p in call.unit.properties}
    assert service["ExtraFileDescriptors"] == [[5, "db"]]
    assert call.fd_count == 5
    assert "--pass-fd" not in " ".join(systemd_run_argv(plan))


def test_no_lifeline_no_aux_unit() -> None:
    call = start_call(plans()[0], Session())
    assert call.aux == () and "BindsTo" not in {p.name for p in call.unit.properties}


def test_rendering_for_systemd_252() -> None:
    plan = build_service_plan(
        argv=["/bin/sh", "-c", "echo $HOME $$"], manager=Manager.SYSTEM, user=TEST,
        unit="u.service",
    )  # fmt: skip
    argv = systemd_run_argv(plan, 252)
    assert "--expand-environment=no" not in argv  # systemd-run 252 has no such option
    assert argv[argv.index("--") + 1 :] == ["/bin/sh", "-c", "echo $$HOME $$$$"]
    assert "--expand-environment=no" in systemd_run_argv(plan, 254)


def test_session_classes_the_manager_knows() -> None:
    assert session_class_for("background-light", 252) == "background"
    assert session_class_for("user-early-light", 255) == "user"
    assert session_class_for("user-early", 252) == "user"
    assert session_class_for("background-light", 256) == "background-light"
    assert session_class_for("user-light", None) == "user-light"
    root = ServiceUser("root", 0, 0, "root", "/root", "/bin/bash")
    options = ElevateOptions(command=("/usr/bin/id",), unit="runas-x.service", stdio=Stdio.PTY)
    plan = build_elevate_plan(options, CALLER, root)
    klass = dict(plan.environment)["XDG_SESSION_CLASS"]
    assert klass == "user-early-light"
    old = {p.name: p.value for p in service_properties(plan, Session(manager_version=252))}
    assert "XDG_SESSION_CLASS=user" in old["Environment"]  # type: ignore[operator]


def test_no_block_and_remain_after_exit_leave_the_unit_to_itself() -> None:
    def plan(no_block: bool, remain: bool):  # type: ignore[no-untyped-def]
        settings = launch_settings(remain_after_exit=remain, service_type="simple")
        return build_service_plan(
            argv=["/usr/bin/true"], manager=Manager.SYSTEM, user=TEST, unit="u.service",
            assignments=parse_assignments(settings),
            waiting=waiting_for(no_block=no_block, remain_after_exit=remain,
                                job_mode="replace", ignore_failure=False),
        )  # fmt: skip

    session = Session(lifeline_fd=7)
    detached = plan(True, False)
    names = [p.name for p in service_properties(detached, session)]
    assert "AddRef" not in names and "StandardOutputFileDescriptor" not in names
    line = systemd_run_argv(detached)
    assert "--no-block" in line and "--wait" not in line and "--pipe" not in line
    assert "--job-mode=replace" in line
    remaining = plan(False, True)
    assert not remaining.lifeline and remaining.wait
    assert [a.text for a in remaining.assignments][-2:] == ["Type=simple", "RemainAfterExit=yes"]
    assert start_call(remaining, Session(lifeline_fd=None)).mode == "replace"


def test_ignore_failure_is_a_flag_and_a_line_only_since_257() -> None:
    plan = build_service_plan(
        argv=["/usr/bin/false"], manager=Manager.SYSTEM, user=TEST, unit="u.service",
        waiting=waiting_for(no_block=False, remain_after_exit=False, job_mode="fail",
                            ignore_failure=True),
    )  # fmt: skip
    (exec_start,) = [p for p in service_properties(plan, Session()) if p.name == "ExecStartEx"]
    assert exec_start.value[0][2] == ["no-env-expand", "ignore-failure"]
    assert "--ignore-failure" in systemd_run_command(plan, 257)
    with pytest.raises(UsageError, match="systemd-run has it since 257"):
        systemd_run_command(plan, 252)


def test_verbose_in_the_systemd_run_line_from_262() -> None:
    plan = plans()[0]
    line = systemd_run_command(plan, 262, "cat")
    assert " --verbose --output=cat " in line
    assert "--verbose" not in systemd_run_command(plan, 262)
    with pytest.raises(UsageError, match="-v/--verbose cannot be written as a systemd-run line "
                                         "for systemd 257"):  # fmt: skip
        systemd_run_command(plan, 257, "short")
