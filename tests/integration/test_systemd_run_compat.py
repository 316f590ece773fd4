"""systemd's own test of systemd-run (test/units/TEST-74-AUX-UTILS.run.sh), re-aimed at
`runas-podman exec`: each case runs through the real systemd-run and through ours in the
same testbed, and the results are compared."""

from __future__ import annotations

import shlex

import pytest

from tests.testbed.testbed import Testbed

# Root's command lines run both ways: through the launch server and in-process.
pytestmark = pytest.mark.usefixtures("launch_path")

SYSTEMD_RUN = "systemd-run --wait --pipe --quiet --collect"


def both(tb: Testbed, ours: str, theirs: str) -> tuple[tuple[int, str], tuple[int, str]]:
    """(status, stdout) of `runas-podman exec OURS` and `systemd-run THEIRS`."""
    mine = tb.run(["sh", "-c", f"runas-podman exec -q {ours}"])
    real = tb.run(["sh", "-c", f"{SYSTEMD_RUN} {theirs}"])
    return (mine.returncode, mine.stdout), (real.returncode, real.stdout)


def test_a_repeated_setenv_keeps_the_last_value(tb: Testbed) -> None:
    env = "-E ENV_HELLO=nope -E " + shlex.quote("ENV_HELLO=env world")
    mine, real = both(tb, f"-u root {env} -- printenv ENV_HELLO", f"{env} printenv ENV_HELLO")
    assert mine == real == (0, "env world\n")
    # A name the plan sets itself: the caller's value wins, as the last one.
    mine, real = both(
        tb, "-u test -E XDG_RUNTIME_DIR=/tmp -- printenv XDG_RUNTIME_DIR",
        "--uid=test -E XDG_RUNTIME_DIR=/tmp printenv XDG_RUNTIME_DIR",
    )  # fmt: skip
    assert mine == real == (0, "/tmp\n")


def test_a_slice_must_be_a_slice(tb: Testbed) -> None:
    mine = tb.run(["runas-podman", "exec", "-u", "test", "--slice=foo.service", "--", "true"])
    real = tb.run(["systemd-run", "--wait", "--slice=foo.service", "true"])
    assert real.returncode != 0 and "is not a slice" in real.stderr
    assert (mine.returncode, mine.stderr) == (
        2,
        "runas-podman: --slice 'foo.service' is not a slice (it names a .service unit): give "
        "NAME or NAME.slice\n",
    )
    mine, real = both(
        tb, "-u test --slice=foo -- sh -c 'cat /proc/self/cgroup'",
        "--uid=test --slice=foo sh -c 'cat /proc/self/cgroup'",
    )  # fmt: skip
    assert mine[0] == real[0] == 0
    assert "/foo.slice/" in mine[1] and "/foo.slice/" in real[1]


def test_uid_and_gid(tb: Testbed) -> None:
    mine, real = both(tb, "-u test -g root -- id -ng", "--uid=test --gid=root id -ng")
    assert mine == real == (0, "root\n")
    mine, real = both(tb, "-u test -- id -ng", "--uid=test id -ng")
    assert mine == real == (0, "test\n")


def test_slice_inherit(tb: Testbed) -> None:
    """TEST-74: a unit started from inside `outer.slice` with --slice-inherit lands in it
    (with --slice=foo: in outer-foo.slice), for systemd-run and for us."""
    show = "sh -c 'grep -o \"[a-z-]*\\.slice/[^/]*\\.service\" /proc/self/cgroup | tail -1'"
    for extra, expected in (("", "outer.slice/"), ("--slice=foo", "outer-foo.slice/")):
        inner_ours = f"runas-podman exec -q -u test --slice-inherit {extra} -- {show}"
        inner_real = f"systemd-run --wait --pipe -q --uid=test --slice-inherit {extra} {show}"
        results = [
            tb.run(["sh", "-c", f"{SYSTEMD_RUN} --slice=outer sh -c {shlex.quote(inner)}"])
            for inner in (inner_ours, inner_real)
        ]
        mine, real = results
        assert mine.returncode == real.returncode == 0, (mine.stderr, real.stderr)
        assert mine.stdout.startswith(expected) and real.stdout.startswith(expected), (
            mine.stdout, real.stdout,
        )  # fmt: skip


def test_same_dir_and_send_sighup(tb: Testbed) -> None:
    mine, real = both(tb, "-u test -d -- pwd", "--uid=test -d pwd")
    assert mine == real == (0, "/\n")
    mine = tb.run(["sh", "-c", "cd /tmp && runas-podman exec -q -u test -d -- pwd"])
    real = tb.run(["sh", "-c", f"cd /tmp && {SYSTEMD_RUN} --uid=test -d pwd"])
    assert (mine.returncode, mine.stdout) == (real.returncode, real.stdout) == (0, "/tmp\n")
    conflict = tb.run(["runas-podman", "exec", "-u", "test", "-d", "-D", "/", "--", "true"])
    assert conflict.returncode == 2 and "contradict" in conflict.stderr
    shown = tb.run(
        ["runas-podman", "exec", "-u", "test", "--send-sighup", "--dry-run", "--", "true"]
    )
    assert "--property=SendSIGHUP=yes" in shown.stdout
