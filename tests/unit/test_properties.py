"""properties.py: the one place where a plan and a session become the unit(s)."""

from __future__ import annotations

from runas_podman.core.elevate import Caller, ElevateOptions, build_elevate_plan
from runas_podman.core.model import Manager, OpenFile, PassFd, ServiceUser, Stdio
from runas_podman.core.plan import build_service_plan, parse_assignments, podman_plan
from runas_podman.core.properties import (
    Session,
    lifeline_unit_name,
    service_properties,
    session_class_for,
    start_call,
    systemd_run_argv,
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
    ]


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
    service = {p.name: p.value for p in call.service.properties}
    assert service["BindsTo"] == ["u-lifeline.service"]
    assert call.fd_count == 4


def test_passed_fds_are_counted_and_named() -> None:
    plan = plans()[2]
    call = start_call(plan, Session(lifeline_fd=9))
    service = {p.name: p.value for p in call.service.properties}
    assert service["ExtraFileDescriptors"] == [[5, "db"]]
    assert call.fd_count == 5
    assert "--pass-fd" not in " ".join(systemd_run_argv(plan))


def test_no_lifeline_no_aux_unit() -> None:
    call = start_call(plans()[0], Session())
    assert call.aux == () and "BindsTo" not in {p.name for p in call.service.properties}


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
