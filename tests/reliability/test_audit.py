"""The security audit's seven attacks (issue 18), replayed as written, in the testbed, as
the unprivileged user: each must gain nothing. And the classes behind them, probed with
hostile values: every request field with control characters (the unit file keeps
exactly its lines), a flood of slow connections from one user (another user's allowed
command still runs within 5 s), a race on --open-file paths (200 rounds), and a service
user taking root's terminal (pidfd_getfd) while root runs a command as it.

Users: alice (uid 1001, no rights), test (the service user), the broker installed; the
polkit rules below are the audit's.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration import test_runas
from tests.integration.test_authorization import (
    ONE_COMMAND_RULE,
    PASSWORD,
    AliceShell,
    ask_alice,
    rule,
)
from tests.integration.test_runas import as_alice, sh
from tests.reliability.conftest import Figures
from tests.testbed.testbed import Testbed

tmux_session = test_runas.tmux_session  # the fixture, shared
PWNED = "/tmp/audit-pwned"
INJECTION = f"x\n[Service]\nExecStopPost=/bin/sh -c 'id > {PWNED}'"

# A sloppy rule: alice may run `/usr/bin/id -un` as root whatever else the request says
# (description, directory, extras): what stops an injection must not be the rule.
SLOPPY_RULE = """\
polkit.addRule(function(action, subject) {
    if (action.id != "org.runas_podman.run" || subject.user != "alice")
        return polkit.Result.NOT_HANDLED;
    if (action.lookup("command_line") == "/usr/bin/id -un" ||
        action.lookup("command_line") == "/usr/bin/systemctl daemon-reload")
        return polkit.Result.YES;
    return polkit.Result.NO;
});
"""
KEEP_ONE_RULE = """\
polkit.addRule(function(action, subject) {
    if (action.id != "org.runas_podman.run" || subject.user != "alice")
        return polkit.Result.NOT_HANDLED;
    if (action.lookup("command_line") == "/usr/bin/id -un")
        return polkit.Result.AUTH_SELF_KEEP;
    return polkit.Result.NO;
});
"""
ANYTHING_RULE = """\
polkit.addRule(function(action, subject) {
    if (action.id == "org.runas_podman.run" && subject.user == "alice")
        return polkit.Result.YES;
});
"""


@pytest.fixture
def audit(tb: Testbed) -> Iterator[Testbed]:
    """alice with a password, the broker installed; everything the attacks leave, gone."""
    sh(tb, f"runas-podman install-broker >/dev/null && echo alice:{PASSWORD} | chpasswd")
    yield tb
    sh(tb, "rm -f /etc/polkit-1/rules.d/50-runas-authorization-test.rules; "
           f"rm -rf {PWNED} /tmp/audit-* /tmp/w* /tmp/appcfg; passwd -d alice >/dev/null; "
           "systemctl daemon-reload")  # fmt: skip
    time.sleep(1)


def pwned(tb: Testbed) -> bool:
    return sh(tb, f"test -e {PWNED}").returncode == 0


def one_runas_line(stderr: str) -> bool:
    return stderr.startswith("runas: ") and stderr.count("\n") == 1


# --- 1. newlines in unit properties -------------------------------------------------


def test_1_a_description_cannot_add_lines_to_the_unit_file(audit: Testbed) -> None:
    rule(audit, SLOPPY_RULE)
    quoted = shlex.quote(INJECTION)
    result = audit.run(as_alice(
        f"cd /tmp && runas --via-broker -n --description {quoted} systemctl daemon-reload"
    ))  # fmt: skip
    assert result.returncode == 1 and one_runas_line(result.stderr), result.stderr
    assert "the description 'x\\n[Service]" in result.stderr
    assert "contains a control character (\\n)" in result.stderr
    sh(audit, "systemctl daemon-reload")  # root's routine reload loads nothing injected
    assert not pwned(audit)


def test_1_a_working_directory_cannot_add_lines(audit: Testbed) -> None:
    rule(audit, SLOPPY_RULE)
    directory = f"/tmp/w\n[Service]\nExecStopPost=/bin/sh -c 'id > {PWNED}'"
    sh(audit, f"install -d -o alice {shlex.quote(directory)}")
    result = audit.run(as_alice(f"cd {shlex.quote(directory)} && runas --via-broker -n id -un"))
    assert result.returncode == 1 and one_runas_line(result.stderr), result.stderr
    assert "your working directory '/tmp/w\\n[Service]" in result.stderr
    assert "change to another directory, or give -D DIR" in result.stderr
    sh(audit, "systemctl daemon-reload")
    assert not pwned(audit)


def test_1_the_broker_takes_no_terminal_name_from_the_client(audit: Testbed) -> None:
    """The request has no tty_path any more (version 3): a client that sends one is
    refused, and the broker names the terminal from the fd it receives."""
    rule(audit, SLOPPY_RULE)
    client = (
        "import json, socket, runas_podman.broker.protocol as p, runas_podman.core.elevate as e\n"
        "r = p.BrokerRequest(options=e.ElevateRequest(command=('id', '-un')), environ={},"
        " authentication=p.Authentication.POLKIT, interactive=False).to_message()\n"
        "r['tty_path'] = '/dev/tty1\\n[Service]\\nExecStopPost=/bin/true'\n"
        "s = socket.socket(socket.AF_UNIX); s.connect('/run/runas-broker.sock')\n"
        "socket.send_fds(s, [(json.dumps(r) + '\\n').encode()], [0, 1, 2])\n"
        "print(s.makefile().readline().strip())\n"
    )
    result = audit.run(as_alice(f"/opt/runas-podman/venv/bin/python -c {shlex.quote(client)}"))
    assert result.stdout == (
        '{"error": "bad broker request: unknown field \'tty_path\' in request"}\n'
    ), result.stderr


def test_1_roots_own_command_line_cannot_add_a_section(tb: Testbed) -> None:
    script = f"sleep 1\n[Service]\nExecStopPost=/bin/touch {PWNED}"
    result = tb.run(["sh", "-c", "runas-podman exec -u test -q --unit audit-argv -- sh -c "
                     f"{shlex.quote(script)} & sleep 0.5; "
                     "cat /run/systemd/transient/audit-argv.service; wait"])  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert _well_formed(result.stdout), result.stdout
    assert not any(line.startswith("ExecStopPost=") for line in lines), result.stdout
    description = next(line for line in lines if line.startswith("Description="))
    assert description.startswith("Description=runas-podman: /usr/bin/sh -c $'sleep 1\\n[")
    sh(tb, "systemctl daemon-reload")
    assert sh(tb, f"test -e {PWNED}").returncode != 0


# --- 2. polkit's temporary authorization does not carry another command -------------


PYTHON = "/opt/runas-podman/venv/bin/python"
TWICE = """\
import os, sys
from runas_podman.broker.client import BrokerCall, run_through_broker
from runas_podman.core.elevate import Caller, ElevateRequest
from runas_podman.broker.protocol import Authentication
from runas_podman.run.session import Terminal
caller = Caller(name="alice", uid=1001, gid=1001, cwd="/tmp", environ={})
call = BrokerCall(authentication=Authentication.POLKIT)
for command in (("id", "-un"), ("/bin/sh", "-c", "id > /tmp/audit-pwned; echo SECOND-RAN")):
    try:
        print("status", run_through_broker(ElevateRequest(command=command), caller,
                                           Terminal(), call), flush=True)
    except Exception as error:
        print("refused:", error, flush=True)
"""


@pytest.mark.parametrize("others", ["NO", "NOT_HANDLED"])
def test_2_a_kept_authorization_does_not_carry_another_command(
    audit: Testbed, tmux_session, others: str
) -> None:  # type: ignore[no-untyped-def]
    """One client process authenticates once for `id -un` (AUTH_SELF_KEEP), then asks
    for a shell in a second request on a new connection. The rule says NO to anything
    else, or leaves it to the action's default (auth_admin: a challenge)."""
    rule(audit, KEEP_ONE_RULE.replace("polkit.Result.NO", f"polkit.Result.{others}"))
    sh(audit, "cat > /tmp/audit-twice.py && chmod 644 /tmp/audit-twice.py", input=TWICE)
    shell = AliceShell(tmux_session("runas -u alice", width=200))
    screen = shell.run(f"cd /tmp && {PYTHON} /tmp/audit-twice.py", password=PASSWORD)
    assert "root" in screen and "status 0" in screen, screen
    assert "SECOND-RAN" not in screen.splitlines() and not pwned(audit), screen
    assert "refused: not authorized to run '/bin/sh -c 'id > /tmp/audit-pwned;" in screen or (
        "refused: not running '/bin/sh -c" in screen and "names no command" in screen
    ), screen


# --- 3. nobody locks others out of the broker ----------------------------------------


FLOOD = """\
import socket, sys, time
held = []
for _ in range(64):
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect('/run/runas-broker.sock')
    except OSError:
        continue
    held.append(s)
print(len(held), flush=True)
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    for s in held:
        try:
            s.send(b' ')
        except OSError:
            pass
    time.sleep(1)
"""


def test_3_a_flood_of_slow_connections_locks_nobody_out(audit: Testbed, figures: Figures) -> None:
    rule(audit, ONE_COMMAND_RULE)
    sh(audit, "cat > /tmp/audit-flood.py && chmod 644 /tmp/audit-flood.py", input=FLOOD)
    flood = (
        f"setpriv --reuid=test --regid=test --init-groups {PYTHON} /tmp/audit-flood.py 25 "
        "> /tmp/audit-flood.out 2>&1 &"
    )
    script = (
        f"{flood} sleep 3; for i in 1 2 3; do start=$(date +%s%N); "
        "setpriv --reuid=alice --regid=alice --init-groups sh -c "
        "'cd /tmp && runas --via-broker -n id -un'; echo \"status=$? ms=$(( ($(date +%s%N) - "
        'start) / 1000000 ))"; sleep 2; done; wait'
    )
    result = sh(audit, script, timeout=120)
    runs = [line for line in result.stdout.splitlines() if line.startswith("status=")]
    figures(f"broker flood: test holds slow connections; alice's allowed command: {runs}")
    # A burst of connections opened and closed at once (systemd 252 fails an Accept=yes
    # socket after 200 in 2 s unless told otherwise) leaves the socket up for others.
    burst = (
        f"setpriv --reuid=test --regid=test --init-groups {PYTHON} -c "
        "'import socket\nfor _ in range(300):\n s = socket.socket(socket.AF_UNIX)\n "
        's.connect("/run/runas-broker.sock")\n s.close()\'; sleep 1; '
        "systemctl is-active runas-broker.socket; "
        "setpriv --reuid=alice --regid=alice --init-groups sh -c "
        "'cd /tmp && runas --via-broker -n id -un'"
    )
    after = sh(audit, burst, timeout=120)
    socket_state = after.stdout.splitlines()[:1]
    figures(f"broker burst: 300 connections opened and closed by test: socket "
            f"{socket_state}, then alice's command: {after.returncode}")  # fmt: skip
    assert after.stdout == "active\nroot\n", after.stdout + after.stderr
    assert result.stdout.count("root\n") == 3, result.stdout + result.stderr
    for line in runs:
        status, ms = (int(part.split("=")[1]) for part in line.split())
        assert status == 0 and ms < 5000, runs
    journal = sh(audit, "journalctl -u 'runas-broker@*' --since=-60s -o cat --no-pager").stdout
    assert "sent no request or answer in time" in journal  # the slow ones were cut off


# --- 4. --open-file through a component that does not exist yet -------------------


RACER = """\
import os, shutil, sys, time
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    shutil.rmtree('/tmp/appcfg', ignore_errors=True)
    try:
        os.mkdir('/tmp/appcfg')
        os.symlink('/etc/shadow', '/tmp/appcfg/db.conf')
    except OSError:
        pass
    time.sleep(0.001)
"""


def test_4_open_file_race_never_yields_a_file_the_caller_could_not_read(
    audit: Testbed, figures: Figures
) -> None:
    """test rewrites /tmp/appcfg (missing, then its own, with db.conf -> /etc/shadow)
    while root launches with --open-file /tmp/appcfg/db.conf, 200 rounds."""
    sh(audit, "cat > /tmp/audit-racer.py && chmod 644 /tmp/audit-racer.py", input=RACER)
    script = (
        f"setpriv --reuid=test --regid=test --init-groups {PYTHON} /tmp/audit-racer.py 600 & "
        "racer=$!; refused=0; leaked=0; other=0; for i in $(seq 200); do "
        "out=$(runas-podman exec -u test -q --open-file /tmp/appcfg/db.conf:db:graceful -- "
        "sh -c 'head -c 120 <&3' 2>&1); case $out in *root:*) leaked=$((leaked+1));; "
        "*'writable by others'*|*'owned by test'*) refused=$((refused+1));; "
        '*) other=$((other+1)); echo "other: $out";; esac; done; kill $racer; wait; '
        "echo refused=$refused leaked=$leaked other=$other"
    )
    result = sh(audit, script, timeout=900)
    summary = result.stdout.splitlines()[-1]
    figures(f"open-file race (200 rounds, test racing): {summary}")
    assert summary == "refused=200 leaked=0 other=0", result.stdout[-2000:]


# --- 5. control sequences never reach a prompt or a log raw -------------------------


def test_5_a_hostile_command_line_is_shown_escaped(audit: Testbed, tmux_session) -> None:  # type: ignore[no-untyped-def]
    rule(audit, ask_alice("AUTH_SELF"))
    hostile = (
        "cp /bin/bash /tmp/audit-rootbash; chmod 4755 /tmp/audit-rootbash #\r\x1b[2K"
        "Authentication is required to run '/usr/bin/id -un' as root\x1b[8m"
    )
    shell = AliceShell(tmux_session("runas -u alice", width=250))
    shell.tmux.keys(f"cd /tmp && runas --via-broker /bin/sh -c $'{_bash_escaped(hostile)}'",
                    "Enter")  # fmt: skip
    screen = shell.tmux.wait_for("Password:", timeout=20)
    prompt = [line for line in screen.splitlines()
              if line.startswith("Authentication is required to run '/bin/sh -c $'cp")]  # fmt: skip
    assert len(prompt) == 1 and "#\\r\\e[2KAuthentication is required" in prompt[0], screen
    raw = shell.tmux.raw()
    assert b"\r\x1b[2KAuthentication" not in raw and b"\x1b[8m" not in raw
    shell.tmux.keys("C-c")
    time.sleep(2)
    assert sh(audit, "test -e /tmp/audit-rootbash").returncode != 0
    journal = audit.run(
        ["journalctl", "-u", "runas-broker@*", "--since=-60s", "-o", "cat", "--no-pager"],
        text=False,
    ).stdout
    assert b"\x1b" not in journal and b"\\e[2K" in journal  # type: ignore[operator]


def _bash_escaped(text: str) -> str:
    return (
        text.replace("\\", "\\\\").replace("'", "\\'").replace("\r", "\\r").replace("\x1b", "\\e")
    )


# --- 6. root's terminal is never handed to the service user ------------------------


THIEF = """\
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
pidfd = os.pidfd_open(int(sys.argv[1]))
root = os.stat(sys.argv[2]).st_rdev
got = []
for target in (0, 1, 2):
    fd = libc.syscall(438, pidfd, target, 0)  # pidfd_getfd
    if fd < 0:
        got.append(f"failed-{ctypes.get_errno()}")
    elif os.isatty(fd):
        got.append("root-tty" if os.fstat(fd).st_rdev == root else "other-tty")
    else:
        got.append("not-a-tty")
print(*got)
"""


@pytest.mark.parametrize("mode", ["default", "--pipe"])
def test_6_the_service_user_cannot_take_roots_terminal(
    tb: Testbed, tmux_session, mode: str
) -> None:  # type: ignore[no-untyped-def]
    """`test` takes the unit's fds 0-2 (pidfd_getfd): by default they are a pty of the
    unit's own, never root's terminal; with --pipe (documented risk) they are root's."""
    sh(tb, "cat > /tmp/audit-thief.py && chmod 644 /tmp/audit-thief.py", input=THIEF)
    flag = "--pipe " if mode == "--pipe" else ""
    session = tmux_session(
        f"tty > /tmp/audit-roottty; runas-podman exec -u test -q {flag}--unit audit-tty -- sleep 4"
    )
    deadline = time.monotonic() + 10
    main_pid = "0"
    while main_pid in ("", "0") and time.monotonic() < deadline:
        main_pid = sh(tb, "systemctl show -p MainPID --value audit-tty.service").stdout.strip()
        time.sleep(0.1)
    root_tty = sh(tb, "cat /tmp/audit-roottty").stdout.strip()
    stolen = tb.run(
        ["setpriv", "--reuid=test", "--regid=test", "--init-groups", PYTHON,
         "/tmp/audit-thief.py", main_pid, root_tty]
    )  # fmt: skip
    assert session.status(timeout=20) == 0
    sh(tb, "rm -f /tmp/audit-thief.py /tmp/audit-roottty")
    if mode == "--pipe":  # the risk --pipe documents: this test can fail
        assert stolen.stdout == "root-tty root-tty root-tty\n", stolen.stdout + stolen.stderr
    else:
        assert stolen.stdout == "other-tty other-tty other-tty\n", stolen.stdout + stolen.stderr


# --- 7. a rule written from the policy file's comment does what it says ------------


def test_7_a_rule_from_the_documented_details_refuses_additions(audit: Testbed) -> None:
    rule(audit, ONE_COMMAND_RULE)  # extras == "", as the comment says to allow nothing more
    result = audit.run(as_alice(
        "cd /tmp && runas --via-broker -n -p 'ExecStartPre=/bin/sh -c \"id > /tmp/audit-doc\"' "
        "id -un"
    ))  # fmt: skip
    assert result.returncode == 1 and one_runas_line(result.stderr), result.stderr
    assert "with -p 'ExecStartPre=/bin/sh -c \"id > /tmp/audit-doc\"'" in result.stderr
    assert sh(audit, "test -e /tmp/audit-doc").returncode != 0
    plain = audit.run(as_alice("cd /tmp && runas --via-broker -n id -un"))
    assert (plain.returncode, plain.stdout) == (0, "root\n"), plain.stderr


# --- the class: hostile strings in every field -----------------------------------------

INJECTED = f"x\nINJECTED=1\n[Service]\nExecStopPost=/bin/touch {PWNED}"
TERMINAL = "\x1b[2K\r\x85\x7f\tq"
PIECES = ["\n", "\r", "\x1b", "\x85", "\x7f", "\t", "[Service]", "INJECTED=1", "a", " "]
HOSTILE = (
    st.lists(st.sampled_from(PIECES), min_size=1, max_size=6)
    .map("".join)
    .filter(lambda text: any(c in text for c in "\n\r\x1b\x85\x7f\t"))
)
FIELDS = ["--description", "-D", "--setenv", "-p SyslogIdentifier", "-p Description",
          "-p ExecSearchPath", "--slice", "--unit", "argument"]  # fmt: skip


def _option(field: str, value: str) -> str:
    if field == "--setenv":
        return f"--setenv {shlex.quote('HOSTILE=' + value)}"
    if field == "-p ExecSearchPath":
        return f"-p {shlex.quote('ExecSearchPath=' + chr(34) + '/x' + value + chr(34))}"
    if field.startswith("-p "):
        return f"-p {shlex.quote(field[3:] + '=' + value)}"
    if field == "-D":
        return f"-D {shlex.quote('/tmp/' + value)}"
    if field == "argument":
        return ""
    return f"{field} {shlex.quote(value)}"


def _well_formed(unit_file: str) -> bool:
    """The unit file as systemd writes it for what was asked: its comment, [Unit] and
    [Service] (a new section for each property it appends), Key=value lines, no raw
    C0 control or DEL, and nothing a value injected (INJECTED=, ExecStopPost=)."""
    lines = unit_file.split("\n")  # systemd's lines (str.splitlines would also cut at NEL)
    if not lines or not lines[0].startswith("# This is a transient unit file"):
        return False
    if any(c in unit_file for c in "\r\x1b\x7f"):  # (C1 such as NEL: no line break to it)
        return False
    for line in lines[1:]:
        if line in ("", "[Unit]", "[Service]"):
            continue
        key, equals, _value = line.partition("=")
        if not equals or not key.isalnum() or key in ("INJECTED", "ExecStopPost"):
            return False
    return True


def _launch(tb: Testbed, field: str, value: str, broker: bool) -> None:
    """Root's CLI or the broker (alice, any command allowed): refused in one line, or it
    runs and its unit file (printed by the command itself) has exactly its lines."""
    show = "cat /run/systemd/transient/audit-h.service"
    argument = shlex.quote(value) if field == "argument" else ""
    command = f"sh -c {shlex.quote(show)} {argument}"
    option = _option(field, value)
    unit = "" if field == "--unit" else "--unit audit-h"
    if broker:
        line = f"cd /tmp && runas --via-broker -n -u test {unit} {option} {command}"
        result = tb.run(as_alice(line))
        prog, refused = "runas: ", 1
    else:
        line = f"runas-podman exec -u test -q {unit} {option} -- {command}"
        result = tb.run(["sh", "-c", line])
        prog, refused = "runas-podman: ", 2
    if result.returncode != 0:
        assert result.returncode == refused and result.stderr.startswith(prog), (line, result)
        assert result.stderr.count("\n") == 1, result.stderr
        assert not any(c in result.stderr for c in "\r\x1b\x85\x7f"), result.stderr
    else:
        assert field in ("--setenv", "argument"), (line, result.stdout)  # escaped by systemd
        assert _well_formed(result.stdout), (line, result.stdout)


@pytest.mark.parametrize("broker", [False, True], ids=["cli", "broker"])
@pytest.mark.parametrize("value", [INJECTED, TERMINAL], ids=["lines", "terminal"])
@pytest.mark.parametrize("field", FIELDS)
def test_hostile_values_in_every_field(
    audit_module: Testbed, field: str, value: str, broker: bool
) -> None:
    _launch(audit_module, field, value, broker)
    assert sh(audit_module, f"test -e {PWNED}").returncode != 0


@settings(max_examples=20, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))  # fmt: skip
@given(field=st.sampled_from(FIELDS), value=HOSTILE, broker=st.booleans())
def test_generated_hostile_strings_keep_the_unit_file_whole(
    audit_module: Testbed, field: str, value: str, broker: bool
) -> None:
    _launch(audit_module, field, value, broker)


@pytest.fixture(scope="module")
def audit_module(testbed: Testbed) -> Iterator[Testbed]:
    sh(testbed, f"runas-podman install-broker >/dev/null && echo alice:{PASSWORD} | chpasswd")
    rule(testbed, ANYTHING_RULE)
    yield testbed
    sh(testbed, "rm -f /etc/polkit-1/rules.d/50-runas-authorization-test.rules; "
                f"rm -f {PWNED}; passwd -d alice >/dev/null")  # fmt: skip
