"""systemd's own test of systemd-run (test/units/TEST-74-AUX-UTILS.run.sh), re-aimed at
`runas-podman exec`: each case runs through the real systemd-run and through ours in the
same testbed, and the results are compared."""

from __future__ import annotations

import shlex

from tests.testbed.testbed import Testbed

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
