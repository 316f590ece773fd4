"""Every hint runas-podman prints is a command that works as printed: each test makes
the tool print one, then runs exactly that, in the testbed (issue 22)."""

from __future__ import annotations

import re

import pytest

from tests.testbed.testbed import Testbed


def test_podmans_own_option_is_shown_after_dashes(tb: Testbed) -> None:
    # (-v is ours now, as systemd-run's: the journal while the unit runs)
    result = tb.run(["runas-podman", "podman", "-u", "test", "--version"])
    assert result.returncode == 2
    # (click words the first part by its version: "No such option: --version", "... '--version'.")
    assert result.stderr.startswith("runas-podman: No such option")
    assert result.stderr.endswith(
        " (podman's own options go after --: runas-podman podman -u test -- --version)\n"
    )
    hint = re.search(r"--: (.*)\)$", result.stderr.strip())
    assert hint is not None
    ran = tb.run(["sh", "-c", hint.group(1)])
    assert ran.returncode == 0 and ran.stdout.startswith("podman version "), ran.stderr


def test_an_unknown_user_is_told_how_to_make_one(tb: Testbed) -> None:
    name = "hintuser"
    tb.run(["sh", "-c", f"loginctl disable-linger {name}; userdel -r {name}"])
    try:
        result = tb.run(["runas-podman", "exec", "-u", name, "--", "true"])
        assert result.returncode == 2
        assert result.stderr == (
            f"runas-podman: unknown user '{name}': no such account (create it first: "
            f"runas-podman setup -u {name} --create)\n"
        )
        hint = re.search(r"create it first: (.*)\)$", result.stderr.strip())
        assert hint is not None
        made = tb.run(["sh", "-c", hint.group(1)], timeout=180)
        assert made.returncode == 0, made.stdout + made.stderr
        ran = tb.run(["runas-podman", "exec", "-u", name, "--", "id", "-un"])
        assert (ran.returncode, ran.stdout) == (0, f"{name}\n"), ran.stderr
    finally:
        tb.run(["sh", "-c", f"loginctl disable-linger {name}; systemctl stop "
                            f"user@$(id -u {name}).service; userdel -r {name}"])  # fmt: skip


def test_runas_names_no_setup_for_an_unknown_target(tb: Testbed) -> None:
    result = tb.run(["runas", "-u", "nosuchuser", "true"])
    assert result.returncode == 1
    assert result.stderr == (
        "runas: unknown user 'nosuchuser': no such account (see getent passwd)\n"
    )


def test_the_api_as_another_user_says_to_run_it_as_root(tb: Testbed) -> None:
    result = tb.run(["runas-podman", "ps", "-u", "test"], user="alice")
    assert result.returncode == 125
    assert result.stderr == (
        "runas-podman: only root or test may use test's service manager (its podman API, "
        "its Quadlets): run this as root\n"
    )
    assert "--via" not in result.stderr  # ps has no --via
    as_root = tb.run(["runas-podman", "ps", "-u", "test"])
    assert as_root.returncode == 0, as_root.stderr


def doctor_line(tb: Testbed, user: str, check: str, **kwargs: object) -> str:
    result = tb.run(["runas-podman", "doctor", "-u", user], **kwargs)  # type: ignore[arg-type]
    return next(
        (line for line in result.stdout.splitlines() if line[5:].startswith(f"{check}:")), ""
    )


def fix_of(line: str) -> str:
    assert " -> " in line, line
    return line.split(" -> ", 1)[1]


def test_doctor_says_why_podman_cannot_run_and_its_fix_works(tb: Testbed) -> None:
    podman = tb.check(["sh", "-c", "command -v podman"]).stdout.strip()
    try:
        tb.check(["chmod", "644", podman])
        line = doctor_line(tb, "test", "podman")
        assert line == (
            f"fail podman: {podman} is there but cannot be executed (mode 0644, owner uid 0) "
            f"-> chmod 755 {podman}"
        )
        tb.check(["sh", "-c", fix_of(line)])
        assert doctor_line(tb, "test", "podman").startswith("ok   podman: podman version ")
    finally:
        tb.run(["chmod", "755", podman])


def test_doctor_tells_a_stopped_manager_from_a_missing_package(tb: Testbed) -> None:
    tb.run(["sh", "-c", "systemctl stop user@1001.service user-runtime-dir@1001.service"])
    try:
        line = doctor_line(tb, "alice", "user bus")
        assert line == (
            "fail user bus: /run/user/1001/bus is missing: user@1001.service is not running "
            "-> systemctl start user@1001.service"
        )
        tb.check(["sh", "-c", fix_of(line)])
        assert doctor_line(tb, "alice", "user bus") == "ok   user bus: /run/user/1001/bus"
    finally:
        tb.run(["sh", "-c", "systemctl stop user@1001.service user-runtime-dir@1001.service"])


def test_doctor_as_another_user_says_it_needs_root_for_what_it_cannot_see(tb: Testbed) -> None:
    result = tb.run(["runas-podman", "doctor", "-u", "test"], user="alice")
    for check in ("runtime dir", "user bus", "podman API"):
        assert (
            f"warn {check}: /run/user/1000 is test's alone: run doctor as root (or as the "
            "user) for this check"
        ) in result.stdout.splitlines(), result.stdout
    assert "is missing" not in result.stdout


def test_doctor_says_whether_quadlets_work_here(tb: Testbed) -> None:
    version = tb.check(["podman", "--version"]).stdout.split()[-1]
    major, minor = (int(part) for part in version.split(".")[:2])
    line = doctor_line(tb, "test", "quadlet")
    if (major, minor) >= (4, 4):
        assert line == f"ok   quadlet: podman {major}.{minor} has Quadlet"
    else:
        assert line.startswith(f"warn quadlet: podman {major}.{minor} has no Quadlet (needs 4.4)")


@pytest.mark.parametrize(("runtime", "state"), [(" --runtime", "masked-runtime"), ("", "masked")])
def test_doctor_says_podman_socket_is_masked_and_its_fix_works(
    tb: Testbed, runtime: str, state: str
) -> None:
    """issue 22: with podman.socket masked doctor said `systemctl ... start podman.socket`,
    which cannot work on a masked unit."""
    tb.check(["sh", "-c", "systemctl --user -M test@ stop podman.socket podman.service; "
                          f"systemctl --user -M test@ mask{runtime} podman.socket"])  # fmt: skip
    try:
        line = doctor_line(tb, "test", "podman API")
        assert line == (
            f"fail podman API: podman.socket is {state} in test's manager: nothing can "
            "start it, and the API commands (ps, images, logs, ...) need it -> systemctl "
            f"--user -M test@ unmask{runtime} podman.socket && runas-podman setup -u test"
        )
        tb.check(["sh", "-c", fix_of(line)])
        assert doctor_line(tb, "test", "podman API").startswith("ok   podman API: answers")
    finally:
        tb.run(["sh", "-c", f"systemctl --user -M test@ unmask{runtime} podman.socket; "
                            "systemctl --user -M test@ start podman.socket"])  # fmt: skip
