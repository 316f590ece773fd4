"""The native backend's pure decisions: which properties it honours, the environment."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys

import pytest

from runas_podman.core.elevate import Caller, ElevateOptions, build_elevate_plan
from runas_podman.core.model import Manager, ServiceUser, Stdio
from runas_podman.core.native_plan import (
    DEFAULT_PATH,
    NativeSpec,
    Unsupported,
    exit_status,
    listen_environment,
    native_spec,
    pam_environment,
    service_environment,
    working_directory,
)
from runas_podman.core.plan import build_service_plan, parse_assignments, podman_plan
from runas_podman.host.backend import choose_backend

TEST = ServiceUser("test", 1000, 1000, "test", "/home/test", "/bin/bash")
CALLER = Caller(
    name="root", uid=0, gid=0, cwd="/srv",
    environ={"TERM": "xterm", "LD_PRELOAD": "/evil.so", "PATH": "/evil:/usr/bin",
             "PYTHONPATH": "/evil", "IFS": ":", "KEEP": "kept"},
)  # fmt: skip


def runas_plan(**options: object):  # type: ignore[no-untyped-def]
    values: dict[str, object] = {"command": ("/usr/bin/id",), "unit": "runas-x.service"}
    values.update(options)
    return build_elevate_plan(ElevateOptions(**values), CALLER, TEST)  # type: ignore[arg-type]


def test_runas_plan_is_honoured_as_run0_builds_it() -> None:
    spec = native_spec(runas_plan(nice=5, group="users", stdio=Stdio.PTY))
    assert spec == NativeSpec(
        pam_service="runas", group="users", working_directory="~", nice=5, send_sighup=True,
        ignore_sigpipe=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("properties", "fragment"),
    [(("MemoryMax=1G",), "MemoryMax=1G: the native backend"),
     (("CPUQuota=50%",), "a cgroup setting"),
     (("Type=forking",), "only exec, oneshot, simple"),
     (("LogExtraFields=FOO=1",), "there is no journal"),
     (("ProtectSystem=strict",), "only the settings of docs/elevation.md")],
)  # fmt: skip
def test_what_cannot_be_honoured_is_refused(properties: tuple[str, ...], fragment: str) -> None:
    with pytest.raises(Unsupported, match=fragment):
        native_spec(runas_plan(properties=properties))


def test_empower_and_other_slices_are_refused() -> None:
    with pytest.raises(Unsupported, match="AmbientCapabilities"):
        native_spec(runas_plan(empower=True))
    with pytest.raises(Unsupported, match="no slices"):
        native_spec(runas_plan(slice="system"))


def test_honoured_properties() -> None:
    spec = native_spec(
        runas_plan(properties=("UMask=0077", "Environment=A=1 B=2", "TimeoutStopSec=5",
                               "WorkingDirectory=-/srv/app", "Type=oneshot"))
    )  # fmt: skip
    assert (spec.umask, spec.environment, spec.stop_timeout) == (0o077, (("A", "1"), ("B", "2")), 5)
    assert (spec.working_directory, spec.working_directory_optional) == ("/srv/app", True)


def podman_service_plan(*args: str):  # type: ignore[no-untyped-def]
    plan = build_service_plan(
        user=TEST, argv=["/usr/bin/podman", *args], manager=Manager.SYSTEM,
        unit="runas-podman-x.service", assignments=parse_assignments(["Nice=3"]),
        environment=(("GREETING", "hi"),),
    )  # fmt: skip
    return podman_plan(plan)


def test_podman_plan_makes_the_runtime_dir_and_keeps_its_cleanup() -> None:
    spec = native_spec(podman_service_plan("run", "--rm", "localhost/busybox", "true"))
    assert spec.runtime_dir and spec.group == "test" and spec.nice == 3
    assert [argv[0] for argv in (*spec.exec_stop, *spec.exec_stop_post)] == ["/bin/sh"] * 2
    assert (
        "podman stop --ignore --cidfile /run/user/1000/runas-podman-x.cid" in spec.exec_stop[0][2]
    )
    assert "rm -f --ignore" in spec.exec_stop_post[0][2]
    assert native_spec(podman_service_plan("ps")).exec_stop == ()


def test_user_manager_dependency_of_another_user_is_refused() -> None:
    plan = podman_service_plan("ps")
    other = dataclasses.replace(plan, assignments=parse_assignments(["Requires=user@0.service"]))
    with pytest.raises(Unsupported, match=r"Requires=user@0\.service"):
        native_spec(other)


def test_environment_is_the_plans_plus_what_user_adds() -> None:
    plan = runas_plan(setenv=("A=1",), preserve_env=("KEEP",), properties=("Environment=A=0 B=2",))
    env = service_environment(plan, native_spec(plan), TEST)
    assert env == {
        "PATH": DEFAULT_PATH, "HOME": "/home/test", "LOGNAME": "test", "USER": "test",
        "SHELL": "/bin/bash", "B": "2", "SUDO_USER": "root", "SUDO_UID": "0", "SUDO_GID": "0",
        "SHELL_PROMPT_PREFIX": "\N{SUPERHERO} ", "KEEP": "kept", "A": "1",
    }  # fmt: skip
    assert not {"LD_PRELOAD", "PYTHONPATH", "IFS", "TERM"} & set(env)


def test_podman_environment_has_the_runtime_dir() -> None:
    plan = podman_service_plan("ps")
    env = service_environment(plan, native_spec(plan), TEST)
    assert env["XDG_RUNTIME_DIR"] == "/run/user/1000" and env["GREETING"] == "hi"


def test_listen_environment() -> None:
    assert listen_environment((), 42) == {}
    assert listen_environment(("a", "b"), 42) == {
        "LISTEN_FDS": "2", "LISTEN_FDNAMES": "a:b", "LISTEN_PID": "42"
    }  # fmt: skip


def test_working_directory_rules() -> None:
    assert working_directory(NativeSpec(), TEST) == "/"
    assert working_directory(NativeSpec(working_directory="~"), TEST) == "/home/test"
    assert working_directory(NativeSpec(working_directory="/srv"), TEST) == "/srv"


def test_exit_status_of_a_signal_is_128_plus_n() -> None:
    done = subprocess.run([sys.executable, "-c", "import os; os.kill(os.getpid(), 15)"])
    assert done.returncode == -signal.SIGTERM
    pid = os.fork()
    if pid == 0:  # pragma: no cover
        os._exit(7)
    assert exit_status(os.waitpid(pid, 0)[1]) == 7
    pid = os.fork()
    if pid == 0:  # pragma: no cover
        os.kill(os.getpid(), signal.SIGKILL)
    assert exit_status(os.waitpid(pid, 0)[1]) == 137


def test_choose_backend() -> None:
    assert choose_backend("auto", True) == ("dbus", None)
    backend, note = choose_backend("auto", False)
    assert backend == "native" and note is not None and "\n" not in note
    assert choose_backend("native", True) == ("native", None)
    assert choose_backend("dbus", False) == ("dbus", None)


def test_pam_environment_skips_what_pam_refuses() -> None:
    assert pam_environment({"A": "1", "": "x", "B=C": "y"}) == ["A=1"]
