"""`runas`, the run0-style elevator, in the testbed: real PAM sessions, real polkit, tmux."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.testbed.testbed import Testbed

POLKIT_RULE = "/etc/polkit-1/rules.d/50-runas-test.rules"


def sh(tb: Testbed, script: str, **kwargs: object):  # type: ignore[no-untyped-def]
    return tb.run(["bash", "-c", script], **kwargs)  # type: ignore[arg-type]


class Tmux:
    """A detached tmux session inside the testbed, its raw output recorded."""

    def __init__(self, tb: Testbed, command: str, width: int = 100, height: int = 30) -> None:
        self.tb = tb
        sh(tb, "tmux kill-session -t rt 2>/dev/null; rm -f /run/rt-raw /run/rt-status")
        wrapped = f"{command}; echo $? > /run/rt-status; sleep 30"
        result = tb.run(["tmux", "new-session", "-d", "-s", "rt", "-x", str(width),
                         "-y", str(height), wrapped])  # fmt: skip
        assert result.returncode == 0, result.stderr
        tb.run(["tmux", "pipe-pane", "-t", "rt", "-o", "cat >> /run/rt-raw"])

    def keys(self, *keys: str) -> None:
        self.tb.run(["tmux", "send-keys", "-t", "rt", *keys])

    def screen(self) -> str:
        return self.tb.run(["tmux", "capture-pane", "-t", "rt", "-p"]).stdout

    def wait_for(self, text: str, timeout: float = 15) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{text!r} did not appear; the screen:\n{self.screen()}")

    def status(self, timeout: float = 15) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = self.tb.run(["cat", "/run/rt-status"])
            if result.returncode == 0 and result.stdout.strip():
                return int(result.stdout)
            time.sleep(0.1)
        raise AssertionError(f"no exit status; the screen:\n{self.screen()}")

    def raw(self) -> bytes:
        return self.tb.run(["cat", "/run/rt-raw"], text=False).stdout  # type: ignore[return-value]

    def close(self) -> None:
        sh(self.tb, "tmux kill-session -t rt 2>/dev/null; rm -f /run/rt-raw /run/rt-status")


@pytest.fixture
def tmux_session(tb: Testbed) -> Iterator[type[Tmux]]:
    sessions: list[Tmux] = []

    def start(command: str, **size: int) -> Tmux:
        session = Tmux(tb, command, **size)
        sessions.append(session)
        return session

    yield start  # type: ignore[misc]
    for session in sessions:
        session.close()


def test_interactive_shell_as_another_user(tmux_session) -> None:  # type: ignore[no-untyped-def]
    session = tmux_session("runas -u test")
    session.wait_for("test@")
    session.keys("id -un; stty size", "Enter")
    session.wait_for("30 100")
    assert "\ntest\n" in session.screen()
    session.keys("tmux resize-window -t rt -x 80 -y 20 2>/dev/null; true", "Enter")
    session.tb.run(["tmux", "resize-window", "-t", "rt", "-x", "80", "-y", "20"])
    time.sleep(0.3)
    session.keys("stty size", "Enter")
    session.wait_for("20 80")
    session.keys("exit 3", "Enter")
    assert session.status() == 3
    raw = session.raw()
    tint = b"\x1b[48;2;51;51;13m"  # yellowish: another user
    assert tint in raw
    assert b"\x1b]2;\xf0\x9f\x9f\xa1 /bin/bash -l on " in raw  # yellow dot in the title
    assert raw.rindex(b"\x1b[0m\x1b[J") > raw.rindex(tint)  # reset after the last tint
    assert raw.endswith(b"\x1b[23;2t")  # title restored


def test_interactive_root_session_is_red(tmux_session) -> None:  # type: ignore[no-untyped-def]
    session = tmux_session("runas")
    session.wait_for("root@")
    session.keys("echo $SHELL_PROMPT_PREFIX; exit", "Enter")
    assert session.status() == 0
    raw = session.raw()
    assert b"\x1b[48;2;51;13;13m" in raw  # reddish: root
    assert "\N{LARGE RED CIRCLE}".encode() in raw and "\N{SUPERHERO}".encode() in raw


def test_background_can_be_disabled(tmux_session) -> None:  # type: ignore[no-untyped-def]
    session = tmux_session("runas --background= -u test sh -c 'echo plain'")
    assert session.status() == 0
    assert b"48;2;" not in session.raw()


def test_ctrl_c_reaches_the_command_not_runas(tmux_session) -> None:  # type: ignore[no-untyped-def]
    session = tmux_session(
        "runas -u test sh -c 'trap \"echo caught; exit 9\" INT; echo ready; sleep 30'"
    )
    session.wait_for("ready")
    session.keys("C-c")
    assert session.status() == 9
    assert "caught" in session.screen()


def test_pipe_mode_passes_stdin(tb: Testbed) -> None:
    result = sh(tb, "echo hi | runas -u test cat")
    assert (result.returncode, result.stdout) == (0, "hi\n")


def test_large_binary_stdio_is_byte_identical(tb: Testbed) -> None:
    data = bytes(range(256)) * (64 * 4096)  # 64 MiB
    result = tb.run(["runas", "-u", "test", "cat"], input=data, text=False, timeout=300)
    assert result.returncode == 0
    assert len(result.stdout) == len(data) and result.stdout == data


@pytest.mark.parametrize(
    ("command", "status"), [("exit 0", 0), ("exit 42", 42), ("kill -9 $$", 137)]
)
def test_exit_status(tb: Testbed, command: str, status: int) -> None:
    assert tb.run(["runas", "--pipe", "sh", "-c", command]).returncode == status


def test_environment_allowlist(tb: Testbed) -> None:
    result = tb.run(
        ["runas", "-u", "test", "env"],
        env={"LD_PRELOAD": "/nonexistent/evil.so", "PATH": "/evil:/usr/local/bin:/usr/bin:/bin",
             "PYTHONPATH": "/evil", "IFS": ":", "FOO": "leak"},
    )  # fmt: skip
    env = dict(line.split("=", 1) for line in result.stdout.splitlines())
    for leaked in ("LD_PRELOAD", "PYTHONPATH", "IFS", "FOO"):
        assert leaked not in env
    assert "/evil" not in env["PATH"]
    assert (env["SUDO_USER"], env["SUDO_UID"], env["SUDO_GID"]) == ("root", "0", "0")
    assert env["SHELL_PROMPT_PREFIX"] == "\N{SUPERHERO} "
    assert env["USER"] == "test" and env["HOME"] == "/home/test"
    assert "XDG_SESSION_ID" in env  # a real PAM session (pam_systemd)


def test_setenv_preserve_env_and_prefix_override(tb: Testbed) -> None:
    result = tb.run(
        ["runas", "-u", "test", "--setenv", "A=1", "--env", "B", "--preserve-env", "C,D",
         "sh", "-c", 'echo "$A|$B|$C|$D|$SHELL_PROMPT_PREFIX"'],
        env={"B": "b", "C": "c", "SYSTEMD_RUN_SHELL_PROMPT_PREFIX": "% "},
    )  # fmt: skip
    assert result.stdout == "1|b|c||% \n"


def test_working_directory(tb: Testbed) -> None:
    result = sh(tb, "cd /var/tmp && runas pwd && runas -u test pwd && runas -D /usr -u test pwd "
                    "&& runas -i pwd")  # fmt: skip
    assert result.stdout.split() == ["/var/tmp", "/home/test", "/usr", "/root"]


def test_usage_errors_exit_1_with_one_line(tb: Testbed) -> None:
    for arguments, fragment in [
        (["-i", "-D", "/tmp", "true"], "-i already changes"),
        (["--bogus"], "No such option '--bogus'"),
        (["-u", "nosuch", "true"], "unknown user 'nosuch'"),
        (["--lightweight", "maybe", "true"], "not a boolean"),
    ]:
        result = tb.run(["runas", *arguments])
        assert result.returncode == 1, (arguments, result.stderr)
        assert result.stderr.count("\n") == 1 and fragment in result.stderr, result.stderr


@pytest.fixture
def polkit_group(tb: Testbed) -> Iterator[Testbed]:
    """alice in group runasers, which a polkit rule lets manage units."""
    rule = (
        "polkit.addRule(function(action, subject) {\\n"
        '  if (action.id == "org.freedesktop.systemd1.manage-units" &&\\n'
        '      subject.isInGroup("runasers")) { return polkit.Result.YES; }\\n'
        "});\\n"
    )
    sh(tb, f"groupadd -f runasers; usermod -aG runasers alice; printf '{rule}' > {POLKIT_RULE}")
    deadline = time.monotonic() + 15  # polkitd picks rule files up by itself, soon
    while tb.run(["runas", "-n", "true"], user="alice").returncode != 0:
        assert time.monotonic() < deadline, "polkitd did not load the rule"
        time.sleep(0.3)
    yield tb
    sh(tb, f"rm -f {POLKIT_RULE}; gpasswd -d alice runasers; groupdel runasers")


def test_unprivileged_caller_is_denied_without_a_rule(tb: Testbed) -> None:
    result = tb.run(["runas", "-u", "test", "true"], user="alice")
    assert result.returncode == 1
    assert result.stderr.startswith("runas: access denied: ") and result.stderr.count("\n") == 1


def test_unprivileged_caller_allowed_by_a_polkit_rule(polkit_group: Testbed) -> None:
    script = 'id -un; echo "$SUDO_USER $SUDO_UID"'
    result = polkit_group.run(["runas", "-u", "test", "sh", "-c", script], user="alice")
    assert result.stdout == "test\nalice 1001\n", result.stderr


def test_empower_keeps_the_user_and_grants_capabilities(polkit_group: Testbed) -> None:
    result = polkit_group.run(
        ["runas", "--empower", "sh", "-c", "id -un; grep CapAmb /proc/self/status"], user="alice"
    )
    lines = result.stdout.split()
    assert lines[0] == "alice", result.stderr
    assert int(lines[-1], 16) != 0  # ambient capabilities granted


def test_polkit_agent_asks_on_the_terminal(tb: Testbed, tmux_session) -> None:  # type: ignore[no-untyped-def]
    """As with run0: pkttyagent serves the caller's logind session, so alice gets a real
    one first (an outer runas opens it through PAM), then elevates from inside it."""
    rule = (
        "polkit.addRule(function(action, subject) {\\n"
        '  if (action.id == "org.freedesktop.systemd1.manage-units" && subject.user == "alice")\\n'
        "    { return polkit.Result.AUTH_SELF; }\\n});\\n"
    )
    sh(tb, f"echo alice:alice-password | chpasswd; printf '{rule}' > {POLKIT_RULE}; sleep 1")
    try:
        session = tmux_session(
            """runas -u alice sh -c "runas -u test sh -c 'echo authorized-as-\\$(id -un)'" """
        )
        session.wait_for("Password:", timeout=20)  # pkttyagent's prompt
        assert "AUTHENTICATING FOR org.freedesktop.systemd1.manage-units" in session.screen()
        session.keys("alice-password", "Enter")
        screen = session.wait_for("authorized-as-test", timeout=20)
        assert screen.count("Password:") == 1  # one authorization for the unit and its lifeline
        assert session.status() == 0
    finally:
        sh(tb, f"rm -f {POLKIT_RULE}; passwd -d alice >/dev/null")


# --- the same scenarios as systemd's run0, compared with the real run0 of the testbed --------

# What run0 (systemd 257, trixie's testbed) answered, for suites whose systemd has no run0.
TEST_ID = "uid=1000(test) gid=1000(test) groups=1000(test)\n"
RUN0_257: dict[str, tuple[int, str, str]] = {
    "-u test id": (0, TEST_ID, ""),
    "-u test --setenv=FOO=bar sh -c echo $FOO": (0, "bar\n", ""),
    "-u test --chdir=/tmp pwd": (0, "/tmp\n", ""),
    "--pipe sh -c exit 7": (7, "", ""),
    "--pipe -u test sh -c echo out; echo err >&2; exit 3": (3, "out\n", "err\n"),
}
RUN0_257_ENVIRONMENT = {
    "DBUS_SESSION_BUS_ADDRESS", "HOME", "INVOCATION_ID", "LANG", "LOGNAME", "PATH",
    "PODMAN_IGNORE_CGROUPSV1_WARNING", "SHELL", "SHELL_PROMPT_PREFIX", "SUDO_GID", "SUDO_UID",
    "SUDO_USER", "SYSTEMD_EXEC_PID", "USER", "XDG_RUNTIME_DIR", "XDG_SESSION_CLASS",
    "XDG_SESSION_ID", "XDG_SESSION_TYPE",
}  # fmt: skip


def has_run0(tb: Testbed) -> bool:
    return tb.run(["sh", "-c", "command -v run0"]).returncode == 0


@pytest.mark.parametrize(
    "arguments",
    [
        ["-u", "test", "id"],
        ["-u", "test", "--setenv=FOO=bar", "sh", "-c", "echo $FOO"],
        ["-u", "test", "--chdir=/tmp", "pwd"],
        ["--pipe", "sh", "-c", "exit 7"],
        ["--pipe", "-u", "test", "sh", "-c", "echo out; echo err >&2; exit 3"],
    ],
)
def test_same_as_run0(tb: Testbed, arguments: list[str]) -> None:
    ours = tb.run(["runas", *arguments])
    if has_run0(tb):
        theirs = tb.run(["run0", *arguments])
        expected = (theirs.returncode, theirs.stdout, theirs.stderr)
    else:  # systemd < 256 (bookworm): what run0 257 answered, recorded in the testbed
        expected = RUN0_257[" ".join(arguments)]
    assert (ours.returncode, ours.stdout, ours.stderr) == expected


def test_same_environment_names_as_run0(tb: Testbed) -> None:
    names = {}
    for tool in ("runas", "run0") if has_run0(tb) else ("runas",):
        result = tb.run([tool, "-u", "test", "env"])
        names[tool] = {line.split("=", 1)[0] for line in result.stdout.splitlines()}
    varying = {"INVOCATION_ID", "SYSTEMD_EXEC_PID", "MEMORY_PRESSURE_WATCH",
               "MEMORY_PRESSURE_WRITE"}  # fmt: skip
    reference = names.get("run0", RUN0_257_ENVIRONMENT)
    assert names["runas"] - varying == reference - varying


# --- the wheel+PAM path: the root broker --------------------------------------------


@pytest.fixture
def wheel_alice(tb: Testbed) -> Iterator[Testbed]:
    sh(tb, "groupadd -f wheel; usermod -aG wheel alice; echo alice:alice-password | chpasswd")
    yield tb
    sh(tb, "gpasswd -d alice wheel >/dev/null; passwd -d alice >/dev/null")


def as_alice(command: str) -> list[str]:
    return ["setpriv", "--reuid=alice", "--regid=alice", "--init-groups", "sh", "-c", command]


def test_broker_password_from_stdin(wheel_alice: Testbed) -> None:
    result = wheel_alice.run(
        as_alice("printf 'alice-password\\nrest of stdin\\n' | "
                 "runas -S -u test sh -c 'id -un; cat; echo $SUDO_USER $SUDO_UID'")
    )  # fmt: skip
    assert result.stdout == "test\nrest of stdin\nalice 1001\n", result.stderr


def test_broker_wrong_password(wheel_alice: Testbed) -> None:
    result = wheel_alice.run(as_alice("echo wrong | runas -S -u test true"))
    assert result.returncode == 1
    assert result.stderr == "runas: authentication failed: the password on stdin (-S) was wrong\n"


def test_broker_refuses_who_is_not_in_wheel(tb: Testbed) -> None:
    result = tb.run(["sh", "-c", "echo x | runas -S true"], user="test")
    assert result.returncode == 1
    assert result.stderr == (
        "runas: test is not in group wheel: the wheel+PAM path is for its members\n"
    )


def test_broker_stops_the_unit_when_the_client_dies(wheel_alice: Testbed) -> None:
    result = sh(
        wheel_alice,
        # exec all the way down: $client is runas itself (a pipe would make it a child).
        "setpriv --reuid=alice --regid=alice --init-groups bash -c "
        "'exec runas -S -u test --unit rp-broker sleep 300 <<< alice-password' & client=$!; "
        # running: its main process is sleep (systemd 252 keeps a PAM unit `activating`)
        "for i in $(seq 200); do p=$(systemctl show -P MainPID rp-broker.service); "
        '[ "$(cat /proc/$p/comm 2>/dev/null)" = sleep ] && break; sleep 0.05; done; '
        "kill -KILL $client; wait $client; "
        "for i in $(seq 100); do [ $(systemctl is-active rp-broker.service) = inactive ] && break; "
        "sleep 0.1; done; systemctl is-active rp-broker.service; "
        "pgrep -u test -x sleep || echo none",
    )
    assert result.stdout.split() == ["inactive", "none"], result.stderr


def test_broker_pty_session(wheel_alice: Testbed, tmux_session) -> None:  # type: ignore[no-untyped-def]
    session = tmux_session("setpriv --reuid=alice --regid=alice --init-groups runas -S -u test")
    time.sleep(0.5)
    session.keys("alice-password", "Enter")  # -S: the first line of stdin (here the terminal)
    session.wait_for("test@")
    session.keys("echo $SUDO_USER; exit 4", "Enter")
    assert session.status() == 4
    assert "alice" in session.screen()
    assert b"\x1b[48;2;51;51;13m" in session.raw()
