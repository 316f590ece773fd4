"""systemd's own test of run0 (the run0 part of test/units/TEST-74-AUX-UTILS.run.sh),
re-aimed at `runas`: each case through `runas` and, where the suite has run0 (257, 262),
through the real run0 in the same testbed, the results compared."""

from __future__ import annotations

import pytest

from tests.testbed.testbed import Testbed


def has_run0(tb: Testbed) -> bool:
    return tb.run(["sh", "-c", "command -v run0"]).returncode == 0


def both(tb: Testbed, line: str) -> tuple[str, str | None]:
    """stdout of LINE with `ELEVATE` as runas, and as run0 where there is one."""
    mine = tb.run(["sh", "-c", line.replace("ELEVATE", "runas")])
    assert mine.returncode == 0, (line, mine.stderr)
    if not has_run0(tb):
        return mine.stdout, None
    real = tb.run(["sh", "-c", line.replace("ELEVATE", "run0")])
    assert real.returncode == 0, (line, real.stderr)
    return mine.stdout, real.stdout


@pytest.mark.parametrize("target", ["", "root", "0", "test"])
def test_sudo_variables_session_type_and_shell(tb: Testbed, target: str) -> None:
    user = f"--user={target} " if target else ""
    show = "sh -c 'echo \"$SUDO_USER $SUDO_UID $SUDO_GID $XDG_SESSION_TYPE\"'"
    mine, real = both(tb, f"ELEVATE {user}{show}")
    assert mine == "root 0 0 unspecified\n"
    assert real in (None, mine)
    if target:
        shell = tb.check(["sh", "-c", f"getent passwd {target} | cut -d: -f7"]).stdout
        mine, real = both(tb, f"ELEVATE --user={target} printenv SHELL")
        assert mine == shell and real in (None, mine)


def test_32_chained_calls(tb: Testbed) -> None:
    chain = " ".join(["ELEVATE"] * 32)
    mine, real = both(tb, f"{chain} sh -c 'echo $SUDO_USER'")
    assert mine == "root\n" and real in (None, mine)


@pytest.mark.parametrize(
    ("start", "arguments", "expected"),
    [("/", "", "/"), ("/", "-D /tmp", "/tmp"), ("/", "--user=test", "/home/test"),
     ("/", "-D /tmp --user=test", "/tmp"), ("/tmp", "", "/tmp"), ("/tmp", "-D /", "/"),
     ("/tmp", "--user=test", "/home/test"), ("/tmp", "-D / --user=test", "/")],
)  # fmt: skip
def test_working_directory_rules(tb: Testbed, start: str, arguments: str, expected: str) -> None:
    """TEST-74's cases for run0's working directory, "/" included (systemd PR 34771)."""
    mine, real = both(tb, f"cd {start} && ELEVATE {arguments} pwd")
    assert mine == f"{expected}\n" and real in (None, mine)


def test_pty_allocated_or_not_without_a_terminal(tb: Testbed) -> None:
    mine, real = both(tb, "ELEVATE --pipe tty </dev/null || true")
    assert mine == "not a tty\n" and real in (None, mine)
    mine, real = both(tb, "ELEVATE --pty tty </dev/null")
    assert mine.startswith("/dev/pts/") and (real is None or real.startswith("/dev/pts/"))
