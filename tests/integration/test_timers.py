"""Timers: --on-* on exec and podman start the command later, on either manager, and
`runas-podman timers -u USER` lists them."""

from __future__ import annotations

import json

from tests.testbed.testbed import Testbed

# A timer elapses within AccuracySec= (default 1 min: measured ~50 s on an idle user
# manager); the tests ask for a prompt one.
SOON = "--timer-property=AccuracySec=100ms"


def wait_for(tb: Testbed, script: str, seconds: int = 30) -> str:
    """The output of SCRIPT once it succeeds (tried every 0.2 s)."""
    result = tb.run(["bash", "-c", f"for i in $(seq {seconds * 5}); do out=$({script}) "
                     "&& { echo \"$out\"; exit 0; }; sleep 0.2; done; exit 1"])  # fmt: skip
    assert result.returncode == 0, f"never true: {script}"
    return result.stdout


def test_a_timer_runs_the_command_later_as_the_user_on_both_managers(tb: Testbed) -> None:
    units = {"system": "rp-timer-sys", "user": "rp-timer-usr"}
    try:
        for via, unit in units.items():
            tb.run(["rm", "-f", f"/tmp/{unit}"])
            started = tb.run(["runas-podman", "exec", "-u", "test", "--via", via,
                              f"--unit={unit}", "--on-active=1s", SOON, "--",
                              "sh", "-c", f"id -un > /tmp/{unit}"])  # fmt: skip
            assert (started.returncode, started.stdout) == (0, f"{unit}.timer\n"), started.stderr
        for unit in units.values():
            assert wait_for(tb, f"cat /tmp/{unit} 2>/dev/null | grep .") == "test\n"
    finally:
        tb.run(["systemctl", "stop", "rp-timer-sys.timer"])
        tb.run(["systemctl", "--user", "-M", "test@", "stop", "rp-timer-usr.timer"])
        tb.run(["rm", "-f", "/tmp/rp-timer-sys", "/tmp/rp-timer-usr"])


def test_a_podman_run_from_a_timer_logs_and_cleans_up(tb: Testbed) -> None:
    """The container's output goes to the journal under its name (podman's journald log
    driver, as with the plain systemd-run line); --rm removes it after the run."""
    name = "rp-timer-box"
    started = tb.run(["runas-podman", "podman", "-u", "test", "--unit=rp-timer-podman",
                      "--on-active=1s", SOON, "--json=short", "--", "run", "--rm", "--network=none",
                      f"--name={name}", "localhost/busybox", "echo", "from-timer"])  # fmt: skip
    try:
        assert started.returncode == 0, started.stderr
        assert json.loads(started.stdout) == {
            "unit": "rp-timer-podman.timer", "service": "rp-timer-podman.service",
        }  # fmt: skip
        assert "from-timer" in wait_for(
            tb, f"journalctl CONTAINER_NAME={name} -o cat --no-pager | grep from-timer"
        )
        wait_for(tb, "! systemctl -q is-active rp-timer-podman.service")
        listed = tb.run(["runas-podman", "podman", "-q", "-u", "test", "--", "ps", "-a",
                         "--format", "{{.Names}}"])  # fmt: skip
        assert name not in listed.stdout.split()
    finally:
        tb.run(["systemctl", "stop", "rp-timer-podman.timer", "rp-timer-podman.service"])


def test_timers_lists_them_on_both_managers(tb: Testbed) -> None:
    try:
        for via in ("system", "user"):
            started = tb.run(["runas-podman", "exec", "-u", "test", "--via", via,
                              f"--unit=rp-timer-list-{via}", "--on-calendar=2099-01-01",
                              "--", "true"])  # fmt: skip
            assert started.returncode == 0, started.stderr
        listed = tb.run(["runas-podman", "timers", "-u", "test", "--format", "json"])
        assert listed.returncode == 0, listed.stderr
        rows = {row["timer"]: row for row in json.loads(listed.stdout)}
        for via in ("system", "user"):
            row = rows[f"rp-timer-list-{via}.timer"]
            assert (row["activates"], row["manager"]) == (f"rp-timer-list-{via}.service", via)
            assert row["next_usec"] > 4_000_000_000 * 1_000_000  # 2099
        table = tb.run(["runas-podman", "timers", "-u", "test"]).stdout.splitlines()
        assert table[0].split() == ["NEXT", "LAST", "TIMER", "ACTIVATES", "MANAGER"]
        assert any("rp-timer-list-system.timer" in line and "2099-01-01" in line for line in table)
        # Root's timers are not test's.
        assert (
            "rp-timer-list-system.timer"
            not in tb.run(["runas-podman", "timers", "-u", "root"]).stdout
        )
        # Someone else sees the system manager's only, and is told so.
        other = tb.run(["runas-podman", "timers", "-u", "test"], user="alice")
        assert other.returncode == 0, other.stderr
        assert "rp-timer-list-system.timer" in other.stdout
        assert "rp-timer-list-user.timer" not in other.stdout
        assert other.stderr == (
            "runas-podman: note: test's own manager's timers are not listed: only root or "
            "test may read them\n"
        )
    finally:
        tb.run(["systemctl", "stop", "rp-timer-list-system.timer"])
        tb.run(["systemctl", "--user", "-M", "test@", "stop", "rp-timer-list-user.timer"])


def test_what_a_timer_cannot_take_is_refused_in_one_line(tb: Testbed) -> None:
    for extra, words in (
        (["--pty"], "-t/--pty hands over what this process has now"),
        (["--pass-fd", "0"], "--pass-fd"),
        (["--backend", "native"], "needs systemd's service manager"),
        (["--on-calendar", "bogus spec"], "Invalid calendar spec"),
    ):
        result = tb.run(["runas-podman", "exec", "-u", "test", "--unit=rp-timer-bad",
                         "--on-active=1h", *extra, "--", "true"])  # fmt: skip
        assert result.returncode in (2, 125) and result.stderr.count("\n") == 1, result.stderr
        assert words in result.stderr
    left = tb.run(["systemctl", "list-units", "--all", "--plain", "--no-legend", "rp-timer-bad*"])
    assert left.stdout.strip() == ""


def test_open_file_reaches_each_run_where_the_manager_opens_files(tb: Testbed) -> None:
    """systemd >= 253 opens --open-file at each run (OpenFile=); 252 has no OpenFile=, and
    the fd relay needs a client the timer's run does not have: refused in one line."""
    version = int(tb.check(["systemctl", "--version"]).stdout.split()[1])
    argv = ["runas-podman", "exec", "-u", "test", "--unit=rp-timer-file", "--on-active=1s",
            SOON, "--open-file=/etc/hostname:host", "--",
            "sh", "-c", "cat <&3 > /tmp/rp-timer-file"]  # fmt: skip
    try:
        started = tb.run(argv)
        if version < 253:
            assert (started.returncode, started.stdout) == (2, "")
            assert (
                started.stderr.startswith(
                    "runas-podman: --open-file with a timer needs OpenFile= (systemd >= 253; this "
                    "manager is 252)"
                )
                and started.stderr.count("\n") == 1
            ), started.stderr
            return
        assert started.returncode == 0, started.stderr
        expected = tb.check(["cat", "/etc/hostname"]).stdout
        assert wait_for(tb, "cat /tmp/rp-timer-file 2>/dev/null | grep .") == expected
    finally:
        tb.run(["systemctl", "stop", "rp-timer-file.timer"])
        tb.run(["rm", "-f", "/tmp/rp-timer-file"])


def test_logs_shows_a_units_journal_on_either_manager(tb: Testbed) -> None:
    """`runas-podman logs -u USER UNIT`: a --no-block unit of the system manager and one of
    the user's own, as root and as the user; someone else is refused in one line."""
    units = {"system": "rp-logs-sys", "user": "rp-logs-usr"}
    for via, unit in units.items():
        started = tb.run(["runas-podman", "exec", "-u", "test", "--via", via, f"--unit={unit}",
                          "--no-block", "--", "sh", "-c", f"echo line-of-{via}"])  # fmt: skip
        assert started.returncode == 0, started.stderr
    for via, unit in units.items():
        for who in ("root", "test"):
            shown = wait_for(tb, f"runuser -u {who} -- runas-podman logs -u test -n 50 "
                                 f"{unit}.service | grep line-of-{via}")  # fmt: skip
            assert f"line-of-{via}" in shown, (via, who)
    refused = tb.run(["runas-podman", "logs", "-u", "test", "rp-logs-sys.service"], user="alice")
    assert (refused.returncode, refused.stderr) == (
        125,
        "runas-podman: only root or test may read test's journal: run this as root\n",
    )
    bad = tb.run(["runas-podman", "logs", "-u", "test", "-n", "5", "some-container"])
    assert bad.returncode == 2 and "-n/--lines is for a unit's journal" in bad.stderr


def test_a_timers_command_is_the_same_after_a_daemon_reload(tb: Testbed) -> None:
    """systemd 252 reads ';' and '$' back changed from a transient unit after a reload
    (measured, with every other shell character unchanged): a timer's later run would run
    another command, so such a timer is refused there; elsewhere it runs as given."""
    version = int(tb.check(["systemctl", "--version"]).stdout.split()[1])
    script = "echo one; echo $((40 + 2)) > /tmp/rp-timer-reload"
    argv = ["runas-podman", "exec", "-u", "test", "--unit=rp-timer-reload", "--on-active=2s",
            SOON, "--", "sh", "-c", script]  # fmt: skip
    tb.run(["rm", "-f", "/tmp/rp-timer-reload"])
    try:
        started = tb.run(argv)
        if version < 254:
            assert (started.returncode, started.stdout) == (2, "")
            assert started.stderr == (
                f"runas-podman: systemd {version} reads a transient unit's command back with "
                "';' and '$' changed after a daemon-reload, and a timer runs it again later: "
                "argument 'echo one; echo $((40 + 2)) > /tmp/rp-timer-reload' would change; "
                "put the command in a script and run that\n"
            )
            return
        assert started.returncode == 0, started.stderr
        tb.check(["systemctl", "daemon-reload"])
        assert wait_for(tb, "cat /tmp/rp-timer-reload 2>/dev/null | grep .") == "42\n"
    finally:
        tb.run(["systemctl", "stop", "rp-timer-reload.timer"])
        tb.run(["rm", "-f", "/tmp/rp-timer-reload"])


def test_a_timer_that_starts_no_service_does_not_break_the_list(tb: Testbed) -> None:
    """(attacker review) A system timer whose unit is a target has no User=: skipped, not
    the whole list's failure."""
    made = (
        "cd /run/systemd/system && "
        "printf '[Timer]\\nOnActiveSec=1h\\nUnit=rp-timer-target.target\\n' > rp-timer-target.timer"
        " && printf '[Unit]\\nDescription=x\\n' > rp-timer-target.target && "
        "systemctl daemon-reload && systemctl start rp-timer-target.timer"
    )
    tb.check(["sh", "-c", made])
    try:
        for who in ("root", "alice"):
            listed = tb.run(["runas-podman", "timers", "-u", "test"], user=who)
            assert listed.returncode == 0, (who, listed.stderr)
            assert "rp-timer-target" not in listed.stdout
    finally:
        tb.run(["sh", "-c", "systemctl stop rp-timer-target.timer; rm -f /run/systemd/system/"
                            "rp-timer-target.*; systemctl daemon-reload"])  # fmt: skip
