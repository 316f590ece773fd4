"""File descriptors: the command sees 0, 1, 2 and what was asked for, nothing the caller held.

The caller holds fds 7, 8 and 9 open (a file read, a file written, /dev/null both ways).
The command lists its shell's own fds (`ls` runs as a child, `; :` keeps the shell
from exec'ing it, so ls's own directory fd is not in the list).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.reliability.conftest import ALICE_PASSWORD, Figures
from tests.reliability.inside import sh
from tests.testbed.testbed import Testbed

WRITTEN = "/tmp/rel-fds-out"  # the file the caller holds open for writing, as fd 8
LIST_FDS = "'ls -1 /proc/$$/fd; :'"
ONLY_STDIO = "0\n1\n2\n"

PLAIN_CASES = {
    "exec-system": f"runas-podman exec -u test -- sh -c {LIST_FDS}",
    "exec-user": f"runas-podman exec -u test --via user -- sh -c {LIST_FDS}",
    "podman-run": "runas-podman podman -u test -- run --rm --network=none localhost/busybox "
    f"sh -c {LIST_FDS}",
    "runas": f"runas -u test sh -c {LIST_FDS}",
}


def holding_fds(written: str = WRITTEN) -> str:
    """Shell code that opens fds 7, 8 (writing to `written`) and 9 for what follows."""
    return f"exec 7</etc/hostname 8>{written} 9<>/dev/null; "


@pytest.fixture
def fds_tb(tb: Testbed) -> Iterator[Testbed]:
    yield tb
    tb.run(["rm", "-f", WRITTEN])


@pytest.mark.parametrize("case", list(PLAIN_CASES))
def test_command_sees_only_stdio(fds_tb: Testbed, figures: Figures, case: str) -> None:
    result = sh(fds_tb, holding_fds() + PLAIN_CASES[case])
    figures(f"fds {case}: caller held 0-2,7-9; command saw {result.stdout.split()}")
    assert (result.returncode, result.stdout, result.stderr) == (0, ONLY_STDIO, "")


def test_command_through_the_broker_sees_only_stdio(
    tb: Testbed, wheel_alice: Testbed, figures: Figures
) -> None:
    # alice may not write WRITTEN (root's, from other tests): her fd 8 writes to /dev/null.
    script = f"{holding_fds('/dev/null')} echo {ALICE_PASSWORD} | runas -S -u test sh -c {LIST_FDS}"
    result = tb.run(
        ["setpriv", "--reuid=alice", "--regid=alice", "--init-groups", "bash", "-c", script]
    )
    figures(f"fds runas-broker: caller held 0-2,7-9; command saw {result.stdout.split()}")
    assert (result.returncode, result.stdout, result.stderr) == (0, ONLY_STDIO, "")


@pytest.mark.parametrize("via", ["system", "user"])
def test_command_sees_stdio_and_the_fds_asked_for(
    fds_tb: Testbed, figures: Figures, via: str
) -> None:
    # fd 3: the caller's fd 8 (--pass-fd comes first), fd 4: /etc/hostname (--open-file,
    # read-only: without the flag systemd opens read-write, which test may not).
    hostname = fds_tb.run(["cat", "/etc/hostname"]).stdout
    result = sh(
        fds_tb,
        f"{holding_fds()} runas-podman exec -u test --via {via} --pass-fd 8 "
        "--open-file /etc/hostname:hostname:read-only "
        f"-- sh -c 'ls -1 /proc/$$/fd; echo through-fd-3 >&3; cat <&4'; cat {WRITTEN}",
    )
    listed = result.stdout.split()[:5]
    figures(f"fds exec-{via} --pass-fd 8 --open-file: command saw {listed}")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == f"0\n1\n2\n3\n4\n{hostname}through-fd-3\n"
