"""systemd's own test of systemd-run (test/units/TEST-74-AUX-UTILS.run.sh), re-aimed at
`runas-podman exec`: each case runs through the real systemd-run and through ours in the
same testbed, and the results are compared."""

from __future__ import annotations

import json
import re
import shlex

import pytest

from tests.testbed.testbed import Testbed

# Root's command lines of the launch-shaped cases run both ways, through the launch server
# and in-process (BOTH); the rest once, as root's commands go by default: the server.
BOTH = pytest.mark.usefixtures("launch_path")

SYSTEMD_RUN = "systemd-run --wait --pipe --quiet --collect"


def both(tb: Testbed, ours: str, theirs: str) -> tuple[tuple[int, str], tuple[int, str]]:
    """(status, stdout) of `runas-podman exec OURS` and `systemd-run THEIRS`."""
    mine = tb.run(["sh", "-c", f"runas-podman exec -q {ours}"])
    real = tb.run(["sh", "-c", f"{SYSTEMD_RUN} {theirs}"])
    return (mine.returncode, mine.stdout), (real.returncode, real.stdout)


@BOTH
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


@BOTH
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


@BOTH
def test_uid_and_gid(tb: Testbed) -> None:
    mine, real = both(tb, "-u test -g root -- id -ng", "--uid=test --gid=root id -ng")
    assert mine == real == (0, "root\n")
    mine, real = both(tb, "-u test -- id -ng", "--uid=test id -ng")
    assert mine == real == (0, "test\n")


@BOTH
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


@BOTH
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


def sh_out(tb: Testbed, line: str) -> tuple[int, str]:
    """(status, output) of LINE with its stdout in a file (see -r: a held pipe never ends)."""
    result = tb.run(["sh", "-c", f"{line} >/run/compat.out 2>/dev/null; s=$?; "
                     "cat /run/compat.out; rm -f /run/compat.out; exit $s"])  # fmt: skip
    return result.returncode, result.stdout


def systemd_version(tb: Testbed) -> int:
    return int(tb.check(["systemctl", "--version"]).stdout.split()[1])


@BOTH
def test_remain_after_exit_and_the_last_service_type(tb: Testbed) -> None:
    """TEST-74: `--remain-after-exit --service-type=simple --service-type=oneshot true`
    started without waiting; the unit file says Type=oneshot; it stays until stopped."""
    options = "-r --no-block --service-type=simple --service-type=oneshot"
    units = {"ours": "rp-compat-remain", "real": "rp-compat-remain-real"}
    mine = tb.run(
        ["sh", "-c", f"runas-podman exec -u root --unit={units['ours']} {options} -- true"]
    )
    real = tb.run(["sh", "-c", f"systemd-run --unit={units['real']} {options} true"])
    try:
        assert (mine.returncode, mine.stdout) == (0, f"{units['ours']}.service\n"), mine.stderr
        assert real.returncode == 0, real.stderr
        for unit in units.values():
            cat = tb.run(["cat", f"/run/systemd/transient/{unit}.service"]).stdout
            assert "\nType=oneshot\n" in cat and "\nRemainAfterExit=yes\n" in cat, cat
            state = tb.run(["systemctl", "show", "-P", "ActiveState,SubState", unit]).stdout
            assert state.split() == ["active", "exited"], (unit, state)
    finally:
        for unit in units.values():  # one by one: a missing one would stop none
            tb.run(["systemctl", "stop", f"{unit}.service"])


def test_remain_after_exit_needs_no_block(tb: Testbed) -> None:
    """-r keeps the unit, and the stdio fds it was given, after the command: with the
    caller's stdio that is refused, as systemd-run 262 refuses --pipe/--pty with -r (older
    ones wait until the unit is stopped: measured 5 s here, still waiting)."""
    mine = tb.run(["runas-podman", "exec", "-u", "test", "-r", "--", "true"])
    assert (mine.returncode, mine.stderr) == (
        2,
        "runas-podman: -r/--remain-after-exit keeps the unit, and with it your "
        "stdin/stdout/stderr, after the command: add --no-block (its output then goes to "
        "the journal)\n",
    )
    real = sh_out(tb, "timeout 5 systemd-run --wait --pipe -q --uid=test -r "
                      "--unit=rp-compat-wait-r-real sh -c 'echo ran'")  # fmt: skip
    tb.run(["systemctl", "stop", "rp-compat-wait-r-real.service"])
    if systemd_version(tb) >= 262:
        assert real == (1, "")  # refused: "--pty/--pty-late/--pipe is not compatible..."
    else:
        assert real == (124, "ran\n")  # still waiting after 5 s: timeout ended it


@BOTH
def test_no_block_with_json_names_the_unit_and_its_invocation(tb: Testbed) -> None:
    try:
        mine = tb.run(["runas-podman", "exec", "-u", "test", "--no-block", "--json=short",
                       "--unit=rp-compat-noblock", "--", "sleep", "30"])  # fmt: skip
        assert mine.returncode == 0, mine.stderr
        document = json.loads(mine.stdout)
        assert document["unit"] == "rp-compat-noblock.service"
        invocation = tb.run(["systemctl", "show", "-P", "InvocationID", document["unit"]])
        assert document["invocation_id"] == invocation.stdout.strip() != ""
    finally:
        tb.run(["systemctl", "stop", "rp-compat-noblock.service"])


@BOTH
def test_ignore_failure(tb: Testbed) -> None:
    """systemd-run's --ignore-failure (257 and later) exits 0 for a failing command; ours
    does the same on every version (the manager has the flag since 243)."""
    mine = tb.run(["runas-podman", "exec", "-u", "test", "--ignore-failure", "--", "sh", "-c",
                   "exit 3"])  # fmt: skip
    assert mine.returncode == 0, mine.stderr
    if systemd_version(tb) >= 257:
        real = tb.run(["systemd-run", "--wait", "-q", "--uid=test", "--ignore-failure",
                       "sh", "-c", "exit 3"])  # fmt: skip
        assert real.returncode == 0, real.stderr


@BOTH
def test_job_mode(tb: Testbed) -> None:
    """systemd-run has --job-mode from 262 (sid); ours on every version."""
    if systemd_version(tb) >= 262:
        mine, real = both(tb, "-u test --job-mode=replace -- echo ok", "--job-mode=replace echo ok")
        assert mine == real == (0, "ok\n")
    else:
        mine = tb.run(["runas-podman", "exec", "-q", "-u", "test", "--job-mode=replace", "--",
                       "echo", "ok"])  # fmt: skip
        assert (mine.returncode, mine.stdout) == (0, "ok\n"), mine.stderr
    bad = tb.run(["runas-podman", "exec", "-u", "test", "--job-mode=sideways", "--", "true"])
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1, bad.stderr
    assert "'sideways' is not one of" in bad.stderr


def transient(tb: Testbed, unit: str) -> list[str]:
    return tb.run(["cat", f"/run/systemd/transient/{unit}"]).stdout.splitlines()


def test_timer_property_alone_makes_a_timer(tb: Testbed) -> None:
    """TEST-74: `-r --unit=U --timer-property=OnUnitInactiveSec=16h true`."""
    units = {"ours": "rp-compat-timer0", "real": "rp-compat-timer0-real"}
    options = "-r --timer-property=OnUnitInactiveSec=16h"
    try:
        mine = tb.run(["sh", "-c", f"runas-podman exec -u root --unit={units['ours']} "
                       f"{options} -- true"])  # fmt: skip
        real = tb.run(["sh", "-c", f"systemd-run --unit={units['real']} {options} true"])
        assert (mine.returncode, mine.stdout) == (0, f"{units['ours']}.timer\n"), mine.stderr
        assert real.returncode == 0, real.stderr
        for unit in units.values():
            assert "OnUnitInactiveSec=16h" in transient(tb, f"{unit}.timer"), unit
            service = transient(tb, f"{unit}.service")
            assert any(line.startswith("ExecStart=") and "/bin/true" in line for line in service)
    finally:
        for unit in units.values():
            for suffix in (".timer", ".service"):
                tb.run(["systemctl", "stop", f"{unit}{suffix}"])


TEST74_TIMER = (
    "--on-active=10 --on-active=30s --on-boot=1s --on-startup=2m --on-unit-active=3h20m "
    "--on-unit-inactive='5d 4m 32s' --on-calendar='mon,fri *-1/2-1,3 *:30:45' "
    "--on-clock-change --on-clock-change --on-timezone-change "
    "--timer-property=After=systemd-journald.service "
    "--description='Hello world' --description='My Fancy Timer'"
)
TEST74_TIMER_LINES = [
    "Description=My Fancy Timer", "OnActiveSec=10s", "OnActiveSec=30s", "OnBootSec=1s",
    "OnStartupSec=2min", "OnUnitActiveSec=3h 20min", "OnUnitInactiveSec=5d 4min 32s",
    "OnCalendar=mon,fri *-1/2-1,3 *:30:45", "OnClockChange=yes", "OnTimezoneChange=yes",
    "After=systemd-journald.service",
]  # fmt: skip


def test_every_timer_option_as_test74_checks_it(tb: Testbed) -> None:
    """TEST-74's timer with every option: both timer files hold the same settings, both
    pass systemd-analyze verify, the service keeps -r and the description, not After=."""
    units = {"ours": "rp-compat-timer1", "real": "rp-compat-timer1-real"}
    try:
        mine = tb.run(["sh", "-c", f"runas-podman exec -u root -r --unit={units['ours']} "
                       f"{TEST74_TIMER} -- true"])  # fmt: skip
        real = tb.run(["sh", "-c", f"systemd-run -r --unit={units['real']} {TEST74_TIMER} true"])
        assert mine.returncode == 0, mine.stderr
        assert real.returncode == 0, real.stderr
        timers = []
        for unit in units.values():
            timer = transient(tb, f"{unit}.timer")
            service = transient(tb, f"{unit}.service")
            for line in TEST74_TIMER_LINES:
                assert line in timer, (unit, line, timer)
            assert "Description=My Fancy Timer" in service and "RemainAfterExit=yes" in service
            assert "After=systemd-journald.service" not in service
            for suffix in (".service", ".timer"):
                verify = tb.run(["systemd-analyze", "verify", "--recursive-errors=no",
                                 f"/run/systemd/transient/{unit}{suffix}"])  # fmt: skip
                assert verify.returncode == 0, (unit, suffix, verify.stderr)
            timers.append({line for line in timer if "=" in line})
        assert timers[0] == timers[1]  # the same settings (a flag given twice: one line here)
    finally:
        for unit in units.values():
            for suffix in (".timer", ".service"):
                tb.run(["systemctl", "stop", f"{unit}{suffix}"])


@pytest.mark.parametrize(
    "option", ["on-active", "on-boot", "on-calendar", "on-startup", "on-unit-active",
               "on-unit-inactive"],
)  # fmt: skip
def test_empty_timer_values_fail_as_in_systemd_run(tb: Testbed, option: str) -> None:
    """TEST-74: `--OPT=` and `--OPT=''` fail; ours in one line, nothing left behind."""
    for value in ("", "''"):
        mine = tb.run(["sh", "-c", f"runas-podman exec -u test --unit=rp-compat-empty "
                       f"--{option}={value} -- true"])  # fmt: skip
        real = tb.run(
            ["sh", "-c", f"systemd-run --unit=rp-compat-empty-real --{option}={value} true"]
        )
        assert real.returncode != 0
        assert mine.returncode != 0 and mine.stderr.count("\n") == 1, mine.stderr
        assert "Traceback" not in mine.stderr
    left = tb.run(
        ["systemctl", "list-units", "--all", "--plain", "--no-legend", "rp-compat-empty*"]
    )
    assert left.stdout.strip() == ""


# A line the unit logs itself. Through a stream that is connected while the process lives:
# a `logger` line can miss its _SYSTEMD_UNIT= when logger has exited before journald reads
# it (journald's own race on 252/257, measured), and then no unit's journal shows it.
LOGS = "sh -c 'echo out; systemd-cat -t rp-verbose sh -c \"echo via-journal; sleep 0.5\"'"


@BOTH
def test_verbose_shows_the_units_journal_to_its_end(tb: Testbed) -> None:
    """systemd-run 262's -v: the unit's journal on stdout while it runs, to the manager's
    last word about it ("Deactivated successfully"); ours on every version and manager."""
    for via in ("system", "user"):
        mine = tb.run(["sh", "-c", f"runas-podman exec -q -u test --via {via} -v --output=cat "
                       f"-- {LOGS}"])  # fmt: skip
        assert mine.returncode == 0, mine.stderr
        lines = mine.stdout.splitlines()
        assert "out" in lines and "via-journal" in lines, (via, lines)
        assert any(line.startswith("Started runas-podman-") for line in lines), (via, lines)
        if via == "system":
            assert lines[-1].endswith(".service: Deactivated successfully."), lines
    if systemd_version(tb) >= 262:
        real = tb.run(
            ["sh", "-c", f"systemd-run --wait --pipe -q --uid=test -v --output=cat {LOGS}"]
        )
        assert real.returncode == 0, real.stderr
        lines = real.stdout.splitlines()
        assert "out" in lines and "via-journal" in lines
        assert lines[-1].endswith(".service: Deactivated successfully."), lines


def test_verbose_needs_a_unit_to_wait_for(tb: Testbed) -> None:
    for extra, message in (
        (["--output=cat"], "runas-podman: --output sets how -v/--verbose shows the journal: "
                           "add -v\n"),
        (["-v", "--no-block"], "runas-podman: -v/--verbose shows the unit's journal while "
         "runas-podman waits for it, and with --no-block it does not wait: drop one of them "
         "(journalctl -u UNIT shows it)\n"),
        (["-v", "--on-active=1h"], "with --on-*/--timer-property it does not wait"),
    ):  # fmt: skip
        result = tb.run(["runas-podman", "exec", "-u", "test", *extra, "--", "true"])
        assert result.returncode == 2 and message.split(": ", 1)[-1] in result.stderr
        assert result.stderr.count("\n") == 1, result.stderr


# --- TEST-74's remaining systemd-run cases, each through both tools --------------------------


@BOTH
def test_the_callers_environment_is_not_inherited(tb: Testbed) -> None:
    show = "sh -c 'echo \"[$PARENT_FOO]\"'"
    mine = tb.run(["sh", "-c", f"PARENT_FOO=bar runas-podman exec -q -u root -- {show}"])
    real = tb.run(["sh", "-c", f"PARENT_FOO=bar {SYSTEMD_RUN} {show}"])
    assert (mine.returncode, mine.stdout) == (real.returncode, real.stdout) == (0, "[]\n")


def test_pwd_and_invocation_id(tb: Testbed) -> None:
    show = 'sh -c \'echo "$PWD"; test -n "$INVOCATION_ID" && echo has-invocation\''
    mine, real = both(tb, f"-u root -- {show}", show)
    assert mine == real == (0, "/\nhas-invocation\n")


def test_working_directory_given_twice_and_send_sighup(tb: Testbed) -> None:
    options = "--send-sighup --working-directory='' --working-directory=/tmp"
    mine, real = both(tb, f"-u root {options} -- pwd", f"{options} pwd")
    assert mine == real == (0, "/tmp\n")


def test_limit_core_given_twice_with_private_tmp(tb: Testbed) -> None:
    tb.check(["touch", "/tmp/public-marker"])
    options = "-p LimitCORE=1M:2M -p LimitCORE=16M:32M -p PrivateTmp=yes"
    show = (
        "sh -c 'ulimit -c -S; ulimit -c -H; "
        "test -e /tmp/public-marker && echo seen || echo private'"
    )
    mine, real = both(tb, f"-u root {options} -- {show}", f"{options} {show}")
    # (TEST-74 reads 16384/32768: KiB; Debian's bash counts 512-byte blocks for -c)
    assert mine == real == (0, "32768\n65536\nprivate\n")


def test_root_with_another_group(tb: Testbed) -> None:
    """TEST-74's `--gid=testuser` alone: root with the group; ours names the user (-u)."""
    mine, real = both(tb, "-u root -g test -- sh -c 'id -nu; id -ng'",
                      "--gid=test sh -c 'id -nu; id -ng'")  # fmt: skip
    assert mine == real == (0, "root\ntest\n")


def test_nice_without_environment_expansion(tb: Testbed) -> None:
    show = "sh -c 'cut -d\" \" -f19 /proc/self/stat'"
    mine, real = both(tb, f"-u root --nice=10 -- {show}", f"--nice=10 {show}")
    assert mine == real == (0, "10\n")


def test_setenv_overrides_empty_copied_and_environment_with_quotes(tb: Testbed) -> None:
    options = (
        "--setenv=ENV_HELLO=nope --setenv='ENV_HELLO=env world' --setenv=EMPTY= "
        "--setenv=PARENT_FOO --property=\"Environment=ALSO_HELLO='also world'\""
    )
    show = 'sh -c \'printf "%s|" "$ENV_HELLO" "[$EMPTY]" "$PARENT_FOO" "$ALSO_HELLO"\''
    mine = tb.run(["sh", "-c", f"PARENT_FOO=bar runas-podman exec -q -u root {options} -- {show}"])
    real = tb.run(["sh", "-c", f"PARENT_FOO=bar {SYSTEMD_RUN} {options} {show}"])
    assert (mine.returncode, mine.stdout) == (real.returncode, real.stdout)
    assert mine.stdout == "env world|[]|bar|also world|"


def test_protect_proc_like_systemd_run(tb: Testbed) -> None:
    """TEST-74 expects the unit to see the caller's boot ID through ProtectProc=invisible.
    In the nspawn testbed systemd-run's unit does not (nspawn's own boot_id mount is not
    carried over: measured on 252, 257, 262); ours sees exactly what systemd-run's sees."""
    show = "cat /proc/sys/kernel/random/boot_id"
    mine, real = both(tb, f"-u root -p ProtectProc=invisible -- {show}",
                      f"-p ProtectProc=invisible {show}")  # fmt: skip
    assert mine[0] == real[0] == 0 and len(mine[1].strip()) == 36
    assert mine == real


@BOTH
def test_the_user_managers_cgroup_identity_and_directory(tb: Testbed) -> None:
    show = (
        'sh -c \'id -nu; id -ng; echo "$PWD"; test -n "$INVOCATION_ID" && cat /proc/self/cgroup\''
    )
    mine = tb.run(["sh", "-c", f"runas-podman exec -q -u test --via user -- {show}"])
    real = tb.run(["sh", "-c", f"systemd-run --wait --pipe -q --user --machine=test@ {show}"])
    for result in (mine, real):
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[:3] == ["test", "test", "/home/test"], lines
        assert re.search(r"/user\.slice/.*/user@1000\.service/.*/(run|runas-podman)-.+\.service$",
                         lines[-1]), lines  # fmt: skip


@pytest.mark.parametrize("mode", ["short", "pretty"])
def test_json_names_the_unit(tb: Testbed, mode: str) -> None:
    """Ours on every version; systemd-run has --json from 257 (252: "unrecognized option")."""
    mine = tb.run(["runas-podman", "exec", "-u", "root", f"--json={mode}", "--", "true"])
    assert mine.returncode == 0, mine.stderr
    document = json.loads(mine.stdout)
    assert document["unit"].startswith("runas-podman-") and len(document["invocation_id"]) == 32
    if systemd_version(tb) >= 257:
        real = tb.run(["systemd-run", f"--json={mode}", "true"])
        assert real.returncode == 0, real.stderr
        assert set(json.loads(real.stdout)) == set(document) == {"unit", "invocation_id"}


@pytest.mark.parametrize(
    "arguments",
    [[], ["--", ""], ["--foo=bar", "--", "true"], ["--nice=", "--", "true"],
     ["--nice=''", "--", "true"], ["--property=", "--", "true"], ["--property=''", "--", "true"],
     ["--service-type=", "--", "true"], ["--setenv=", "--", "true"], ["--setenv=''", "--", "true"],
     ["--slice=foo.service", "--", "true"]],
)  # fmt: skip
def test_what_systemd_run_refuses_we_refuse_in_one_line(tb: Testbed, arguments: list[str]) -> None:
    mine = tb.run(["runas-podman", "exec", "-u", "root", *arguments])
    theirs = [a for a in arguments if a != "--"]
    real = tb.run(["systemd-run", "--wait", *theirs])
    assert real.returncode != 0
    assert mine.returncode == 2 and mine.stderr.count("\n") == 1, mine.stderr
    assert mine.stderr.startswith("runas-podman: ") and "Traceback" not in mine.stderr


def test_verbose_in_the_dry_run_line(tb: Testbed) -> None:
    """-v is systemd-run's from 262: in the --dry-run line there, refused before."""
    shown = tb.run(["runas-podman", "exec", "-u", "test", "-v", "--output=cat", "--dry-run",
                    "--", "true"])  # fmt: skip
    if systemd_version(tb) >= 262:
        assert shown.returncode == 0 and " --verbose --output=cat " in shown.stdout, shown
        ran = tb.run(["sh", "-c", shown.stdout.strip()])
        assert ran.returncode == 0 and "Deactivated successfully" in ran.stdout, ran.stderr
    else:
        assert shown.returncode == 2 and "-v/--verbose cannot be written as a systemd-run line" in (
            shown.stderr
        )
