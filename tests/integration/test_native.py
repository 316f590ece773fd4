"""The native backend, in a container of the testbed tree whose PID 1 is not systemd
(tests/testbed/native.py: nspawn --as-pid2). Real PAM, real podman, real tmux; no
manager, no logind, no journal."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.integration.test_runas import RUN0_257_ENVIRONMENT, Tmux
from tests.testbed.testbed import Testbed

NOTE = (
    "runas: note: systemd is not PID 1 here (no /run/systemd/system): running the command "
    "natively (--backend native)\n"
)
# What only systemd adds: the manager (INVOCATION_ID, SYSTEMD_EXEC_PID, its LANG and
# DefaultEnvironment=) and logind through pam_systemd (XDG_SESSION_*, XDG_RUNTIME_DIR,
# the session bus). Everything else the command sees is the same set of names.
SYSTEMD_ONLY = {
    "INVOCATION_ID", "SYSTEMD_EXEC_PID", "LANG", "PODMAN_IGNORE_CGROUPSV1_WARNING",
    "XDG_SESSION_ID", "XDG_SESSION_TYPE", "XDG_SESSION_CLASS", "XDG_RUNTIME_DIR",
    "DBUS_SESSION_BUS_ADDRESS",
}  # fmt: skip


def sh(bed: Testbed, script: str, **kwargs: object):  # type: ignore[no-untyped-def]
    return bed.run(["bash", "-c", script], **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def nc(native_container: Testbed) -> Iterator[Testbed]:
    """The container, checked after the test: no process of user test is left (but
    podman's pause process, `catatonit -P`, which keeps its rootless namespaces)."""
    yield native_container
    leftovers = "pgrep -u test -a | grep -v 'catatonit -P' || true"
    deadline = time.monotonic() + 5
    left = sh(native_container, leftovers).stdout.strip()
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = sh(native_container, leftovers).stdout.strip()
    assert left == "", f"processes of test left behind: {left}"


def test_pid1_is_not_systemd(nc: Testbed) -> None:
    result = sh(nc, "cat /proc/1/comm; test -e /run/systemd/system && echo systemd-runtime")
    assert result.stdout == "(sd-stubinit)\n"


def test_runas_user_id(nc: Testbed) -> None:
    result = nc.run(["runas", "-u", "test", "id", "-un"])
    assert (result.returncode, result.stdout, result.stderr) == (0, "test\n", NOTE)


def test_explicit_backend_says_nothing(nc: Testbed) -> None:
    result = nc.run(["runas", "--backend", "native", "-u", "test", "id", "-Gn"])
    assert (result.returncode, result.stdout, result.stderr) == (0, "test\n", "")


@pytest.mark.parametrize(
    ("command", "status"),
    [("exit 0", 0), ("exit 3", 3), ("kill -9 $$", 137), ("kill -TERM $$", 143)],
)
def test_exit_status(nc: Testbed, command: str, status: int) -> None:
    assert nc.run(["runas", "--pipe", "-u", "test", "sh", "-c", command]).returncode == status


def test_own_failures_exit_1_with_one_line(nc: Testbed) -> None:
    result = nc.run(["runas", "-u", "nosuch", "id"])
    assert result.returncode == 1
    assert result.stderr.startswith("runas: unknown user 'nosuch'")
    assert result.stderr.count("\n") == 1
    result = nc.run(["runas", "--backend=native", "-p", "MemoryMax=1G", "id"])
    assert (result.returncode, result.stderr) == (
        1,
        "runas: -p MemoryMax=1G: the native backend (no systemd as PID 1) cannot honour it "
        "(a cgroup setting needs the service manager); drop it, or run where systemd is PID 1\n",
    )
    result = nc.run(["runas", "--backend=native", "--empower", "id"])
    assert result.returncode == 1 and "AmbientCapabilities" in result.stderr
    result = nc.run(["runas", "--backend=native", "-u", "test", "/etc/passwd"])
    assert result.returncode == 1 and result.stderr.count("\n") == 1


def test_nice_is_honoured(nc: Testbed) -> None:
    result = nc.run(["runas", "--backend=native", "--nice", "7", "-u", "test", "nice"])
    assert result.stdout == "7\n"


def test_environment_allowlist(nc: Testbed) -> None:
    result = nc.run(
        ["runas", "--backend=native", "-u", "test", "env"],
        env={"LD_PRELOAD": "/nonexistent/evil.so", "PATH": "/evil:/usr/local/bin:/usr/bin:/bin",
             "PYTHONPATH": "/evil", "IFS": ":", "FOO": "leak"},
    )  # fmt: skip
    env = dict(line.split("=", 1) for line in result.stdout.splitlines())
    for leaked in ("LD_PRELOAD", "PYTHONPATH", "IFS", "FOO"):
        assert leaked not in env
    assert env["PATH"] == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    assert (env["SUDO_USER"], env["SUDO_UID"], env["SUDO_GID"]) == ("root", "0", "0")
    assert (env["USER"], env["LOGNAME"], env["HOME"], env["SHELL"]) == (
        "test", "test", "/home/test", "/bin/bash",
    )  # fmt: skip
    assert set(env) == RUN0_257_ENVIRONMENT - SYSTEMD_ONLY  # the systemd path's names


def test_setenv_preserve_env_and_prefix(nc: Testbed) -> None:
    result = nc.run(
        ["runas", "--backend=native", "-u", "test", "--setenv", "A=1", "--env", "B",
         "--preserve-env", "C,D", "sh", "-c", 'echo "$A|$B|$C|$D|$SHELL_PROMPT_PREFIX"'],
        env={"B": "b", "C": "c", "SYSTEMD_RUN_SHELL_PROMPT_PREFIX": "% "},
    )  # fmt: skip
    assert result.stdout == "1|b|c||% \n"


def test_working_directory(nc: Testbed) -> None:
    result = sh(nc, "cd /var/tmp && runas pwd && runas -u test pwd && runas -D /usr -u test pwd "
                    "&& runas -i pwd")  # fmt: skip
    assert result.stdout.split() == ["/var/tmp", "/home/test", "/usr", "/root"]


def test_pty_session_in_tmux(nc: Testbed) -> None:
    session = Tmux(nc, "runas -u test")
    try:
        session.wait_for("test@")
        session.keys("id -un; stty size; tty", "Enter")
        screen = session.wait_for("/dev/pts/")  # the last line of the three
        assert "\ntest\n30 100\n/dev/pts/" in screen
        nc.run(["tmux", "resize-window", "-t", "rt", "-x", "80", "-y", "20"])
        time.sleep(0.3)
        session.keys("stty size", "Enter")
        session.wait_for("20 80")
        session.keys("exit 3", "Enter")
        assert session.status() == 3
        raw = session.raw()
        tint = b"\x1b[48;2;51;51;13m"  # yellowish: another user
        assert tint in raw and raw.rindex(b"\x1b[0m\x1b[J") > raw.rindex(tint)
        # title restored (sid's bash then writes an OSC 3008 end of its own)
        assert raw.rindex(b"\x1b[23;2t") > raw.rindex(tint)
    finally:
        session.close()


def test_ctrl_c_reaches_the_command_on_a_pty(nc: Testbed) -> None:
    session = Tmux(nc, "runas -u test sh -c 'trap \"echo caught; exit 9\" INT; echo ready; "
                       "sleep 30'")  # fmt: skip
    try:
        session.wait_for("ready")
        session.keys("C-c")
        assert session.status() == 9
        assert "caught" in session.screen()
    finally:
        session.close()


def test_sigterm_to_the_client_ends_the_command(nc: Testbed) -> None:
    result = sh(
        nc,
        "rm -f /tmp/cmd.pid; runas -u test sh -c 'echo $$ > /tmp/cmd.pid; exec sleep 300' & "
        "client=$!; for i in $(seq 100); do [ -s /tmp/cmd.pid ] && break; sleep 0.05; done; "
        "kill -TERM $client; wait $client; echo status=$?; "
        "kill -0 $(cat /tmp/cmd.pid) 2>/dev/null && echo alive || echo gone",
    )
    assert result.stdout.split() == ["status=143", "gone"]


def test_command_ignoring_sigterm_gets_sighup(nc: Testbed) -> None:
    """SendSIGHUP=yes (runas's plan): a command that ignores SIGTERM still ends."""
    result = sh(
        nc,
        'rm -f /tmp/cmd.pid; runas -u test sh -c \'trap "" TERM; echo $$ > /tmp/cmd.pid; '
        "sleep 300' & client=$!; for i in $(seq 100); do [ -s /tmp/cmd.pid ] && break; "
        "sleep 0.05; done; kill -TERM $client; wait $client; echo status=$?",
        timeout=30,
    )
    assert result.stdout.split() == ["status=143"]


def test_non_root_caller_gets_one_line(nc: Testbed) -> None:
    sh(nc, "rm -f /run/runas-broker.sock")
    result = nc.run(["runas", "-u", "test", "id"], user="alice")
    assert result.returncode == 1
    assert result.stderr.startswith(NOTE)
    line = result.stderr.removeprefix(NOTE)
    assert line.startswith("runas: systemd is not PID 1 here, and without it only root")
    assert line.count("\n") == 1
    result = nc.run(["runas-podman", "exec", "-u", "test", "--", "id"], user="alice")
    assert result.returncode == 125
    assert result.stderr.splitlines()[-1].startswith("runas-podman: systemd is not PID 1 here")


def test_podman_run_prints_hello(nc: Testbed) -> None:
    result = nc.run(
        ["runas-podman", "podman", "-u", "test", "--", "run", "--rm", "localhost/busybox",
         "echo", "hello"],
        timeout=120,
    )  # fmt: skip
    assert (result.returncode, result.stdout) == (0, "hello\n"), result.stderr
    assert sh(nc, "stat -c '%U %a' /run/user/1000").stdout == "test 700\n"
    left = nc.run(["runas-podman", "podman", "-u", "test", "--", "ps", "-aq"])
    assert left.stdout == ""
    assert sh(nc, "ls /run/user/1000/*.cid 2>/dev/null || true").stdout == ""


def test_podman_run_status(nc: Testbed) -> None:
    result = nc.run(
        ["runas-podman", "podman", "-u", "test", "--", "run", "--rm", "localhost/busybox",
         "sh", "-c", "exit 4"],
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 4


def test_open_file_reaches_the_command_as_fd_3(nc: Testbed) -> None:
    sh(nc, "install -d -m 0700 /etc/rp-native && echo s3cret > /etc/rp-native/secret")
    result = nc.run(
        ["runas-podman", "exec", "-u", "test", "--open-file",
         "/etc/rp-native/secret:token:read-only", "--",
         "sh", "-c", 'cat <&3; echo "$LISTEN_FDS $LISTEN_FDNAMES $((LISTEN_PID == $$))"'],
    )  # fmt: skip
    assert (result.returncode, result.stdout) == (0, "s3cret\n1 token 1\n"), result.stderr
    result = sh(
        nc,
        "runas-podman exec -u test --pass-fd 5:five --open-file /etc/rp-native/secret "
        "-- sh -c 'cat <&3; cat <&4; echo $LISTEN_FDNAMES' 5< <(echo passed)",
    )
    assert result.stdout == "passed\ns3cret\nfive:secret\n", result.stderr


def test_open_file_in_a_podman_container(nc: Testbed) -> None:
    sh(nc, "install -d -m 0700 /etc/rp-native && echo s3cret > /etc/rp-native/secret")
    result = nc.run(
        ["runas-podman", "podman", "-u", "test", "--open-file",
         "/etc/rp-native/secret:token:read-only", "--", "run", "--rm", "localhost/busybox",
         "sh", "-c", 'cat <&3; echo "$LISTEN_FDS $LISTEN_FDNAMES"'],
        timeout=120,
    )  # fmt: skip
    assert (result.returncode, result.stdout) == (0, "s3cret\n1 token\n"), result.stderr


def test_open_file_refuses_a_path_others_control(nc: Testbed) -> None:
    sh(nc, "echo x > /home/test/app.conf && chown test /home/test/app.conf")
    result = nc.run(
        ["runas-podman", "exec", "-u", "test", "--open-file", "/home/test/app.conf", "--", "true"]
    )
    assert result.returncode == 2 and "owned by test" in result.stderr


# --- the broker in listen mode (runit, s6, OpenRC) ----------------------------------------


@pytest.fixture
def listening_broker(nc: Testbed) -> Iterator[Testbed]:
    sh(
        nc,
        "groupadd -f wheel; usermod -aG wheel alice; echo alice:alice-password | chpasswd; "
        "rm -f /run/runas-broker.sock; setsid -f sh -c 'echo $$ > /run/broker.pid; "
        "exec runas-podman broker --listen /run/runas-broker.sock' "
        "</dev/null >/run/broker.log 2>&1; "
        "for i in $(seq 100); do [ -S /run/runas-broker.sock ] && break; sleep 0.05; done",
    )
    yield nc
    sh(nc, "kill -TERM $(cat /run/broker.pid); for i in $(seq 100); do "
           "[ -e /run/runas-broker.sock ] || break; sleep 0.05; done; "
           "gpasswd -d alice wheel >/dev/null; passwd -d alice >/dev/null")  # fmt: skip


def as_alice(script: str) -> list[str]:
    return ["setpriv", "--reuid=alice", "--regid=alice", "--init-groups", "bash", "-c", script]


def test_broker_listen_socket(listening_broker: Testbed) -> None:
    result = sh(listening_broker, "stat -c '%a %U %F' /run/runas-broker.sock; cat /run/broker.log")
    assert result.stdout.splitlines() == [
        "666 root socket",
        "runas-broker: listening on /run/runas-broker.sock",
    ]


def test_broker_runs_natively_for_a_wheel_member(listening_broker: Testbed) -> None:
    result = listening_broker.run(
        as_alice("printf 'alice-password\\nrest of stdin\\n' | "
                 "runas -S -u test sh -c 'id -un; cat; echo $SUDO_USER; exit 5'")
    )  # fmt: skip
    assert (result.returncode, result.stdout) == (5, "test\nrest of stdin\nalice\n"), result.stderr
    log = sh(listening_broker, "cat /run/broker.log").stdout
    assert "alice (uid 1001) ran runas-" in log and "as test: status 5" in log


def test_broker_wrong_password(listening_broker: Testbed) -> None:
    result = listening_broker.run(as_alice("echo wrong | runas -S -u test true"))
    assert result.returncode == 1
    assert result.stderr.endswith(
        "runas: authentication failed: the password on stdin (-S) was wrong\n"
    )


def test_broker_refuses_who_is_not_in_wheel(listening_broker: Testbed) -> None:
    result = listening_broker.run(["bash", "-c", "echo x | runas -S id"], user="test")
    assert result.returncode == 1
    assert result.stderr.endswith(
        "runas: test is not in group wheel: the wheel+PAM path is for its members\n"
    )


def test_broker_stops_the_command_when_the_client_dies(listening_broker: Testbed) -> None:
    result = sh(
        listening_broker,
        "rm -f /tmp/cmd.pid; setpriv --reuid=alice --regid=alice --init-groups bash -c "
        '\'exec runas -S -u test sh -c "echo \\$\\$ > /tmp/cmd.pid; exec sleep 300" '
        "<<< alice-password' & client=$!; "
        "for i in $(seq 200); do [ -s /tmp/cmd.pid ] && break; sleep 0.05; done; "
        "kill -KILL $client; for i in $(seq 100); do kill -0 $(cat /tmp/cmd.pid) 2>/dev/null "
        "|| break; sleep 0.05; done; kill -0 $(cat /tmp/cmd.pid) 2>/dev/null && echo alive "
        "|| echo gone",
    )
    assert result.stdout.split() == ["gone"], result.stderr
