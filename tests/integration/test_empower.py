"""`runas --empower` in the testbed: the same unit as run0 --empower where systemd has it
(>= 259: sid), the project's group and polkit rule (`runas-podman install --empower`)
where polkit can honour them (trixie), capabilities and one clear line where it cannot
(bookworm's polkit 122). Real polkit, real PAM, the real run0."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from tests.integration.test_runas import polkit_group  # noqa: F401  (a fixture)
from tests.testbed.testbed import Testbed

RULE = "/etc/polkit-1/rules.d/49-runas-empower.rules"
SYSUSERS = "/etc/sysusers.d/runas-empower.conf"
SYSTEMD_RULE = "/usr/share/polkit-1/rules.d/empower.rules"
# What the command reports about itself: user, groups, directory, capabilities (all of the
# bounding set, as ambient and effective), prompt prefix and session class.
REPORT = (
    "id -un; id -Gn; pwd; "
    "b=$(grep CapBnd /proc/self/status | cut -f2); "
    'for c in CapAmb CapEff; do [ "$(grep $c /proc/self/status | cut -f2)" = "$b" ] '
    "&& echo $c=all; done; "
    'echo "$SHELL_PROMPT_PREFIX|$XDG_SESSION_CLASS"'
)
PUMPKIN = "\N{JACK-O-LANTERN} "
# The unit's own properties, as the unit reads them (systemctl show works unprivileged).
SHOW = "systemctl show -p User -p AmbientCapabilities -p SupplementaryGroups -p WorkingDirectory "


def sh(tb: Testbed, script: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return tb.run(["bash", "-c", script], **kwargs)  # type: ignore[arg-type]


def as_alice(tb: Testbed, script: str) -> subprocess.CompletedProcess[str]:
    """A script run as alice (with her groups) from /var/tmp, as a user at a shell would."""
    return tb.run(
        ["setpriv", "--reuid=alice", "--regid=alice", "--init-groups", "bash", "-c",
         f"cd /var/tmp && {script}"]
    )  # fmt: skip


def systemd_version(tb: Testbed) -> int:
    return int(tb.check(["systemctl", "--version"]).stdout.split()[1])


def run0_has_empower(tb: Testbed) -> bool:
    return systemd_version(tb) >= 259


def polkit_version(tb: Testbed) -> int:
    return int(tb.check(["pkaction", "--version"]).stdout.split()[-1].split(".")[0])


def light_background(tb: Testbed) -> str:
    """The session class of a pipe: systemd < 256 knows no light classes."""
    return "background-light" if systemd_version(tb) >= 256 else "background"


def group_exists(tb: Testbed) -> bool:
    return tb.run(["getent", "group", "empower"]).returncode == 0


@pytest.fixture
def empower_installed(polkit_group: Testbed) -> Iterator[Testbed]:  # noqa: F811
    """`runas-podman install --empower` where polkit honours a process's groups; afterwards
    uninstall (which takes the group and rule away) and the testbed's PAM file and broker
    back, as test_installed leaves it."""
    tb = polkit_group
    assert not group_exists(tb), "the testbed should not have group empower"
    result = tb.run(["runas-podman", "install", "--empower"])
    try:
        # bookworm's polkit 122: refused (test_install_empower_adds_what_is_missing_...)
        assert result.returncode == (0 if polkit_version(tb) >= 126 else 125), result.stderr
        yield tb
    finally:
        tb.run(["runas-podman", "uninstall", "--force"])
        tb.install_services()


def test_install_empower_adds_what_is_missing_or_names_the_polkit_needed(
    polkit_group: Testbed,  # noqa: F811
) -> None:
    tb = polkit_group
    result = tb.run(["runas-podman", "install", "--empower"])
    try:
        if polkit_version(tb) < 126:  # bookworm: polkit 122
            assert result.returncode == 125
            assert result.stderr.count("\n") == 1 and "needs polkit >= 126" in result.stderr
            assert result.stdout == "" and not group_exists(tb)
            assert tb.run(["test", "-e", RULE]).returncode == 1
            assert tb.run(["test", "-e", SYSUSERS]).returncode == 1
            return
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert f"installed {SYSUSERS} (group empower)" in lines and "created group empower" in lines
        systemd_ships_rule = tb.run(["test", "-e", SYSTEMD_RULE]).returncode == 0
        assert systemd_ships_rule == (systemd_version(tb) >= 259)
        # The rule only where systemd's is missing (trixie); sid has systemd's.
        assert (f"installed {RULE} (polkit: every action for group empower)" in lines) == (
            not systemd_ships_rule
        )
        uninstall = tb.run(["runas-podman", "uninstall"])
        assert uninstall.returncode == 0, uninstall.stderr
        assert "removed group empower" in uninstall.stdout.splitlines()
        assert not group_exists(tb) and tb.run(["test", "-e", RULE]).returncode == 1
        assert tb.run(["test", "-e", SYSTEMD_RULE]).returncode == (0 if systemd_ships_rule else 1)
    finally:
        tb.run(["runas-podman", "uninstall", "--force"])
        tb.install_services()


def test_without_the_group_capabilities_and_one_line(polkit_group: Testbed) -> None:  # noqa: F811
    tb = polkit_group
    assert not group_exists(tb)
    ours = as_alice(tb, f"runas --empower sh -c '{REPORT}'")
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout.splitlines() == [
        "alice", "alice runasers", "/var/tmp", "CapAmb=all", "CapEff=all",
        f"{PUMPKIN}|{light_background(tb)}",
    ]  # fmt: skip
    assert ours.stderr == ""  # captured: the command's stderr alone
    dry = as_alice(tb, "runas --empower --dry-run true")
    assert dry.stderr.count("\n") == 1
    assert dry.stderr.startswith("runas: note: no group 'empower' here: ")
    assert "systemd >= 259" in dry.stderr and "runas-podman install --empower" in dry.stderr
    if run0_has_empower(tb):  # sid: run0 itself gives the same, silently
        theirs = as_alice(tb, f"run0 --empower sh -c '{REPORT}'")
        assert (theirs.returncode, theirs.stdout, theirs.stderr) == (0, ours.stdout, "")


def test_same_unit_as_run0_with_the_group(empower_installed: Testbed) -> None:
    tb = empower_installed
    if polkit_version(tb) < 126:  # bookworm: install --empower is refused (the test above)
        assert not group_exists(tb)
        return
    ours = as_alice(tb, f"runas --empower --unit rp-empower sh -c '{REPORT}; {SHOW} rp-empower'")
    assert ours.returncode == 0 and ours.stderr == "", ours.stderr
    lines = ours.stdout.splitlines()
    assert lines[:6] == ["alice", "alice empower runasers", "/var/tmp", "CapAmb=all",
                         "CapEff=all", f"{PUMPKIN}|background-light"]  # fmt: skip
    assert "SupplementaryGroups=empower" in lines and "User=alice" in lines
    assert "WorkingDirectory=/var/tmp" in lines
    if run0_has_empower(tb):
        theirs = as_alice(
            tb, f"run0 --empower --unit=rp-empower0 sh -c '{REPORT}; {SHOW} rp-empower0'"
        )
        assert (theirs.returncode, theirs.stdout, theirs.stderr) == (0, ours.stdout, "")


def test_the_group_gets_polkits_rights(empower_installed: Testbed) -> None:
    """The point of the group: polkit allows the empowered command every action (here
    logind's set-user-linger for another user, which alice alone may not do)."""
    tb = empower_installed
    if polkit_version(tb) < 126:
        assert not group_exists(tb)
        return
    linger = "loginctl --no-ask-password enable-linger daemon && loginctl disable-linger daemon"
    assert as_alice(tb, linger).returncode == 1  # not without --empower
    for tool in ("runas", "run0") if run0_has_empower(tb) else ("runas",):
        result = as_alice(tb, f"{tool} --empower sh -c '{linger} && echo allowed'")
        assert (result.returncode, result.stdout) == (0, "allowed\n"), (tool, result.stderr)


def test_empower_another_user_as_run0(polkit_group: Testbed) -> None:  # noqa: F811
    """run0 >= 259 empowers -u USER too: that user's home, every capability."""
    tb = polkit_group
    ours = as_alice(tb, f"runas --empower -u test sh -c '{REPORT}'")
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout.splitlines() == [
        "test", "test", "/home/test", "CapAmb=all", "CapEff=all",
        f"{PUMPKIN}|{light_background(tb)}",
    ]  # fmt: skip
    if run0_has_empower(tb):
        theirs = as_alice(tb, f"run0 --empower -u test sh -c '{REPORT}'")
        assert (theirs.returncode, theirs.stdout) == (0, ours.stdout)


def test_dry_run_line_runs_on_this_systemd(tb: Testbed) -> None:
    """The systemd-run line for the manager's version starts the same empowered unit."""
    dry = sh(tb, "cd /var/tmp && runas --empower --pipe --dry-run sh -c "
                 "'grep CapAmb /proc/self/status; pwd'")  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    line = dry.stdout.strip()
    assert "--property=AmbientCapabilities=~" in line
    ran = sh(tb, f"cd /var/tmp && {line}")
    assert ran.returncode == 0, ran.stderr
    capamb, directory = ran.stdout.split("\n")[:2]
    assert int(capamb.split()[-1], 16) != 0 and directory == "/var/tmp"
