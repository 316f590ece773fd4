"""`--via user`: the unit runs on the service user's own `systemd --user`."""

from __future__ import annotations

import pytest

from tests.testbed.testbed import Testbed

VIA_USER = ["runas-podman", "exec", "-u", "test", "--via", "user", "--"]


def sh(tb: Testbed, script: str, **kwargs: object):  # type: ignore[no-untyped-def]
    return tb.run(["bash", "-c", script], **kwargs)  # type: ignore[arg-type]


def test_podman_run_via_user_manager(tb: Testbed) -> None:
    result = tb.run(["runas-podman", "podman", "-u", "test", "--via", "user", "--",
                     "run", "--rm", "localhost/busybox", "echo", "hello"])  # fmt: skip
    assert (result.returncode, result.stdout, result.stderr) == (0, "hello\n", "")


def test_unit_is_in_the_users_manager(tb: Testbed) -> None:
    result = tb.run(
        [*VIA_USER, "sh", "-c", 'id -un; echo "$XDG_RUNTIME_DIR"; cat /proc/self/cgroup']
    )
    lines = result.stdout.splitlines()
    assert lines[:2] == ["test", "/run/user/1000"]
    assert any("/user@1000.service/" in line and "runas-podman-" in line for line in lines[2:])


@pytest.mark.parametrize(
    ("command", "status"), [("exit 0", 0), ("exit 42", 42), ("kill -KILL $$", 137)]
)
def test_exit_status_via_user(tb: Testbed, command: str, status: int) -> None:
    assert tb.run([*VIA_USER, "sh", "-c", command]).returncode == status


def test_stdin_via_user(tb: Testbed) -> None:
    assert sh(tb, "echo hi | runas-podman exec -u test --via user -- cat").stdout == "hi\n"


def test_user_itself_needs_no_privilege_and_auto_picks_its_manager(tb: Testbed) -> None:
    command = ["sh", "-c", "id -un; cat /proc/self/cgroup"]
    result = tb.run(["runas-podman", "exec", "-u", "test", "--", *command], user="test")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("test\n") and "/user@1000.service/" in result.stdout


def test_sigterm_to_client_stops_the_user_unit(tb: Testbed) -> None:
    result = sh(
        tb,
        "runas-podman exec -u test --via user --unit rp-usr -- sleep 300 & client=$!; "
        "until systemctl --user -M test@ -q is-active rp-usr.service; do sleep 0.05; done; "
        "kill -TERM $client; wait $client; echo status=$?; pgrep -u test -x sleep || echo none",
    )
    assert result.stdout.split() == ["status=143", "none"], result.stderr


def test_sigkilled_client_stops_the_user_unit(tb: Testbed) -> None:
    result = sh(
        tb,
        "runas-podman exec -u test --via user --unit rp-usrk -- sleep 300 & client=$!; "
        "until systemctl --user -M test@ -q is-active rp-usrk.service; do sleep 0.05; done; "
        "kill -KILL $client; wait $client; "
        "for i in $(seq 100); do "
        "[ $(systemctl --user -M test@ is-active rp-usrk.service) = inactive ] && break; "
        "sleep 0.1; done; systemctl --user -M test@ is-active rp-usrk.service; "
        "pgrep -u test -x sleep || echo none",
    )
    assert result.stdout.split() == ["inactive", "none"], result.stderr


def test_dry_run_via_user_through_systemd_run(tb: Testbed) -> None:
    dry = tb.run([*VIA_USER[:6], "--dry-run", "--", "sh", "-c", "id -un; exit 4"])
    assert dry.stdout.startswith("systemd-run --machine=test@ --user ")
    result = sh(tb, dry.stdout)
    assert (result.returncode, result.stdout) == (4, "test\n")


def test_another_user_may_not_use_tests_manager(tb: Testbed) -> None:
    result = tb.run([*VIA_USER, "true"], user="alice")
    assert result.returncode == 125
    assert result.stderr == (
        "runas-podman: only root or test may use test's service manager (--via user); "
        "use --via system, or run as root\n"
    )


def test_user_without_a_running_manager_is_told_what_to_do(tb: Testbed) -> None:
    # alice has no linger and no session: her user@1001 is not running.
    result = tb.run(["runas-podman", "exec", "-u", "alice", "--via", "user", "--", "true"],
                    user="alice")  # fmt: skip
    assert result.returncode == 125 and result.stderr.count("\n") == 1, result.stderr
    assert "user@1001.service is not running" in result.stderr
    assert "loginctl enable-linger alice" in result.stderr
