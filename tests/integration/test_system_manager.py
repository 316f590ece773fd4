"""`runas-podman podman|exec -u USER` through the real system manager (PID 1 in the testbed)."""

from __future__ import annotations

import os
import re
import shlex

import pytest

from tests.testbed.testbed import Testbed

# Root's command lines run both ways: through the launch server and in-process.
pytestmark = pytest.mark.usefixtures("launch_path")

PODMAN_HELLO = ["runas-podman", "podman", "-u", "test", "--",
                "run", "--rm", "localhost/busybox", "echo", "hello"]  # fmt: skip


def sh(tb: Testbed, script: str, **kwargs: object):  # type: ignore[no-untyped-def]
    return tb.run(["bash", "-c", script], **kwargs)  # type: ignore[arg-type]


def test_seed_workflow_podman_run_prints_hello(tb: Testbed) -> None:
    result = tb.run(PODMAN_HELLO)
    assert (result.returncode, result.stdout, result.stderr) == (0, "hello\n", "")


@pytest.mark.parametrize(
    ("command", "status"),
    [("exit 0", 0), ("exit 1", 1), ("exit 42", 42), ("kill -KILL $$", 137), ("kill -TERM $$", 143)],
)
def test_exit_status_comes_back(tb: Testbed, command: str, status: int) -> None:
    result = tb.run(["runas-podman", "exec", "-u", "test", "--", "sh", "-c", command])
    assert result.returncode == status, result.stderr


def test_container_exit_status_comes_back(tb: Testbed) -> None:
    result = tb.run(["runas-podman", "podman", "-u", "test", "--", "run", "--rm",
                     "--network=none", "localhost/busybox", "sh", "-c", "exit 42"])  # fmt: skip
    assert result.returncode == 42, result.stderr


def test_stdin_is_piped_through(tb: Testbed) -> None:
    result = sh(tb, "echo hi | runas-podman exec -u test -- cat")
    assert (result.returncode, result.stdout) == (0, "hi\n")


def test_binary_stdio_is_byte_identical(tb: Testbed) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB with every byte value
    result = tb.run(["runas-podman", "exec", "-u", "test", "--", "cat"], input=data, text=False)
    assert result.returncode == 0
    assert result.stdout == data


def test_runs_as_the_user_with_its_runtime_dir(tb: Testbed) -> None:
    result = tb.run(["runas-podman", "exec", "-u", "test", "--", "sh", "-c",
                     'id -un; id -gn; echo "$XDG_RUNTIME_DIR $HOME"'])  # fmt: skip
    assert result.stdout == "test\ntest\n/run/user/1000 /home/test\n"


def test_arguments_reach_the_command_verbatim(tb: Testbed) -> None:
    arguments = ["$HOME", "$$", "${PATH}", "a b", "", "'\"", "%n %i"]
    result = tb.run(["runas-podman", "exec", "-u", "test", "--", "printf", "[%s]\n", *arguments])
    assert result.stdout == "".join(f"[{a}]\n" for a in arguments)


def test_environment_is_clean(tb: Testbed) -> None:
    result = sh(
        tb,
        "FOO=leak PYTHONPATH=/tmp/leak IFS=: LD_LIBRARY_PATH=/tmp/leak "
        "runas-podman exec -u test -- env",
    )
    names = {line.split("=", 1)[0] for line in result.stdout.splitlines()}
    assert names <= {
        "PATH", "HOME", "USER", "LOGNAME", "SHELL", "XDG_RUNTIME_DIR", "INVOCATION_ID",
        "SYSTEMD_EXEC_PID", "PODMAN_IGNORE_CGROUPSV1_WARNING", "LANG", "MEMORY_PRESSURE_WATCH",
        "MEMORY_PRESSURE_WRITE",
    }, names  # fmt: skip
    assert "XDG_RUNTIME_DIR" in names


def test_setenv_and_properties_apply(tb: Testbed) -> None:
    result = sh(
        tb,
        "OURS=from-caller runas-podman exec -u test --setenv 'GREETING=a b' --setenv OURS "
        "-p LimitNOFILE=1234 -p 'WorkingDirectory=~' -- "
        "sh -c 'echo \"$GREETING|$OURS|$(ulimit -n)|$(pwd)\"'",
    )
    assert result.stdout == "a b|from-caller|1234|/home/test\n", result.stderr


def test_only_stdio_fds_are_passed(tb: Testbed) -> None:
    result = sh(tb, "exec 7</etc/hostname; runas-podman exec -u test -- ls /proc/self/fd")
    # 0-2 are stdio; 3 is ls's own directory handle.
    assert result.stdout.split() == ["0", "1", "2", "3"]


def test_dry_run_through_systemd_run_does_the_same(tb: Testbed) -> None:
    script = 'id -un; echo "$XDG_RUNTIME_DIR|$GREETING|$$"; ulimit -n; cat; exit 7'
    options = ["-u", "test", "-p", "LimitNOFILE=2345", "--setenv", "GREETING=hi there"]
    ours = tb.run(["runas-podman", "exec", *options, "--", "sh", "-c", script], input="in\n")
    dry = tb.run(["runas-podman", "exec", *options, "--dry-run", "--", "sh", "-c", script])
    assert dry.returncode == 0 and dry.stdout.startswith("systemd-run ")
    theirs = sh(tb, dry.stdout, input="in\n")
    assert ours.returncode == theirs.returncode == 7
    first_lines = lambda out: out.splitlines()[:1] + out.splitlines()[2:]  # noqa: E731
    assert first_lines(ours.stdout) == first_lines(theirs.stdout) == ["test", "2345", "in"]
    # The second line has the unit's own PID, the rest must match.
    assert ours.stdout.splitlines()[1].rsplit("|", 1)[0] == "/run/user/1000|hi there"
    assert theirs.stdout.splitlines()[1].rsplit("|", 1)[0] == "/run/user/1000|hi there"


def test_dry_run_of_podman_through_systemd_run_prints_hello(tb: Testbed) -> None:
    dry = tb.run([*PODMAN_HELLO[:2], "--dry-run", *PODMAN_HELLO[2:]])
    assert "--property=User=test" in dry.stdout and "/usr/bin/podman run" in dry.stdout
    result = sh(tb, dry.stdout)
    assert (result.returncode, result.stdout) == (0, "hello\n")


def test_systemd_run_backend_runs_the_same_plan(tb: Testbed) -> None:
    result = tb.run(["runas-podman", "exec", "-u", "test", "--backend", "systemd-run", "--",
                     "sh", "-c", "id -un; exit 3"])  # fmt: skip
    assert (result.returncode, result.stdout) == (3, "test\n")


@pytest.mark.parametrize(("signal_name", "status"), [("TERM", 143), ("INT", 130), ("HUP", 129)])
def test_signal_to_client_stops_the_unit(tb: Testbed, signal_name: str, status: int) -> None:
    result = sh(
        tb,
        "runas-podman exec -u test --unit rp-signal -- sleep 300 & client=$!; "
        "until systemctl -q is-active rp-signal.service; do sleep 0.05; done; "
        f"kill -{signal_name} $client; wait $client; echo status=$?; "
        "pgrep -u test -x sleep || echo no-sleep-left",
    )
    assert result.stdout.split() == [f"status={status}", "no-sleep-left"], result.stderr


def test_sigkilled_client_leaves_no_unit_running(tb: Testbed) -> None:
    result = sh(
        tb,
        "runas-podman exec -u test --unit rp-orphan -- sleep 300 & client=$!; "
        "until systemctl -q is-active rp-orphan.service; do sleep 0.05; done; "
        "kill -KILL $client; wait $client; echo status=$?; "
        "for i in $(seq 100); do [ $(systemctl is-active rp-orphan.service) = inactive ] && break; "
        "sleep 0.1; done; "
        "systemctl is-active rp-orphan.service; pgrep -u test -x sleep || echo no-sleep-left",
    )
    assert result.stdout.split() == ["status=137", "inactive", "no-sleep-left"], result.stderr


def test_sigkilled_client_stops_a_running_container(tb: Testbed) -> None:
    # Kill the client only once the container runs (podman forwards SIGTERM from then on);
    # --init, because a bare `sleep` as the container's PID 1 would ignore SIGTERM.
    result = sh(
        tb,
        "out=$(mktemp); runas-podman podman -u test --unit rp-ctr -- run --rm --init "
        "--network=none --name rp-ctr localhost/busybox sh -c 'echo ready; exec sleep 300' "
        ">$out & client=$!; until grep -q ready $out; do sleep 0.05; done; "
        "kill -KILL $client; wait $client; echo status=$?; "
        "for i in $(seq 100); do [ $(systemctl is-active rp-ctr.service) = inactive ] && break; "
        "sleep 0.1; done; "
        "systemctl is-active rp-ctr.service; "
        "runuser -u test -- env XDG_RUNTIME_DIR=/run/user/1000 PODMAN_IGNORE_CGROUPSV1_WARNING=1 "
        "podman ps -q --filter name=rp-ctr | wc -l; rm -f $out",
        timeout=60,
    )
    assert result.stdout.split() == ["status=137", "inactive", "0"], result.stderr


def one_line_error(result, status: int, fragment: str) -> None:  # type: ignore[no-untyped-def]
    assert result.returncode == status, (result.returncode, result.stderr)
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("runas-podman: ") and fragment in result.stderr, result.stderr


def test_error_unknown_user(tb: Testbed) -> None:
    one_line_error(tb.run(["runas-podman", "exec", "-u", "nosuch", "--", "true"]), 2,
                   "unknown user 'nosuch'")  # fmt: skip


def test_error_no_system_bus(tb: Testbed) -> None:
    result = tb.run(["runas-podman", "exec", "-u", "test", "--", "true"],
                    env={"DBUS_SYSTEM_BUS_ADDRESS": "unix:path=/run/nonexistent"})  # fmt: skip
    one_line_error(result, 125, "cannot connect to the system bus")


def test_error_podman_not_installed(tb: Testbed) -> None:
    # Hide podman in a private mount namespace: a real missing binary, nothing faked in ours.
    result = sh(
        tb,
        "unshare -m sh -c 'touch /run/not-podman; mount --bind /run/not-podman /usr/bin/podman; "
        "exec runas-podman podman -u test -- ps'",
    )
    one_line_error(result, 127, "podman: command not found")
    assert "apt-get install podman" in result.stderr


def test_error_command_not_found(tb: Testbed) -> None:
    one_line_error(tb.run(["runas-podman", "exec", "-u", "test", "--", "no-such-command"]), 127,
                   "no-such-command: command not found")  # fmt: skip


def test_error_access_denied_for_unprivileged_caller(tb: Testbed) -> None:
    result = tb.run(["runas-podman", "exec", "-u", "test", "--", "true"], user="alice")
    one_line_error(result, 125, "access denied")


def test_error_unit_name_taken(tb: Testbed) -> None:
    result = sh(
        tb,
        "runas-podman exec -u test --unit rp-taken -- sleep 300 & first=$!; "
        "until systemctl -q is-active rp-taken.service; do sleep 0.05; done; "
        "runas-podman exec -u test --unit rp-taken -- true; echo status=$? >&2; "
        "kill -TERM $first; wait $first; echo first=$? >&2",
    )
    lines = result.stderr.splitlines()
    # The refused second client must not have touched the first one's unit.
    assert lines[-2:] == ["status=125", "first=143"], lines
    assert lines[0].startswith("runas-podman: unit rp-taken.service already exists")


def test_error_user_manager_fails_to_start(tb: Testbed) -> None:
    setup = (
        "useradd --create-home rpbroken; uid=$(id -u rpbroken); "
        "dropins=/run/systemd/system/user@$uid.service.d; mkdir -p $dropins; "
        "printf '[Service]\\nExecStartPre=/bin/false\\n' > $dropins/fail.conf; "
        "systemctl daemon-reload"
    )
    cleanup = (
        "uid=$(id -u rpbroken); rm -rf /run/systemd/system/user@$uid.service.d; "
        "systemctl daemon-reload; systemctl reset-failed user@$uid.service; userdel -r rpbroken"
    )
    assert sh(tb, setup).returncode == 0
    try:
        result = tb.run(["runas-podman", "exec", "-u", "rpbroken", "--", "true"])
        one_line_error(result, 125, "failed to start")
        assert "user@" in result.stderr
    finally:
        sh(tb, cleanup)


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        (["-p", "Foo=bar"], "unknown property 'Foo'"),
        (["-p", "MemoryMax"], "NAME=VALUE"),
        (["-p", "Nice=99"], "out of range"),
        (["-p", "User=root"], "identity comes from -u"),
        (["--unit", "bad/name"], "not a valid unit name"),
        (["--setenv", "1X=y"], "not a valid variable name"),
        (["--via", "bogus"], "'bogus' is not one of"),
    ],
)
def test_usage_errors_start_nothing(tb: Testbed, arguments: list[str], fragment: str) -> None:
    result = tb.run(["runas-podman", "exec", "-u", "test", *arguments, "--", "true"])
    one_line_error(result, 2, fragment)


def test_help_and_version_need_no_bus(tb: Testbed) -> None:
    env = {"DBUS_SYSTEM_BUS_ADDRESS": "unix:path=/run/nonexistent"}
    version = tb.run(["runas-podman", "--version"], env=env)
    assert version.returncode == 0 and "runas-podman" in version.stdout
    helped = tb.run(["runas-podman", "podman", "--help"], env=env)
    assert helped.returncode == 0 and "--via" in helped.stdout


def test_podman_args_are_shell_safe_in_dry_run(tb: Testbed) -> None:
    dry = tb.run(["runas-podman", "exec", "-u", "test", "--dry-run", "--", "echo", "a;b", "$(x)"])
    # systemd-run < 254 has no --expand-environment=no: systemd's own "$$" keeps a "$"
    version = int(tb.check(["systemctl", "--version"]).stdout.split()[1])
    dollar = "$(x)" if version >= 254 else "$$(x)"
    assert shlex.split(dry.stdout)[-3:] == ["/usr/bin/echo", "a;b", dollar]
    ran = tb.run(["bash", "-c", dry.stdout])
    assert ran.stdout == "a;b $(x)\n", ran.stderr  # what systemd-run ran: the same words


def test_a_daemon_reload_keeps_a_running_units_commands(tb: Testbed) -> None:
    """The manager writes a transient unit to /run/systemd/transient and reads it again at
    every daemon-reload. 252 wrote our ExecStartEx=/ExecStopEx= there under names its own
    parser does not know: after a reload the unit had no command and no container cleanup
    (measured). Now, on every suite: the same commands after a reload, and stopping the
    unit still removes its container."""
    unit, box = "rp-reload", f"rp-reload-{os.urandom(3).hex()}"  # a name free at once
    started = tb.run(["runas-podman", "podman", "-u", "test", f"--unit={unit}", "--no-block",
                      "--", "run", "--rm", "--init", "--network=none", f"--name={box}",
                      "localhost/busybox", "sleep", "300"])  # fmt: skip
    try:
        assert started.returncode == 0, started.stderr
        waited = sh(tb, "for i in $(seq 150); do runas-podman podman -q -u test -- container "
                        f"exists {box} && exit 0; sleep 0.2; done; exit 1")  # fmt: skip
        assert waited.returncode == 0, tb.run(["journalctl", "-u", unit, "-n", "20"]).stdout
        show = ["systemctl", "show", "-P", "ExecStart,ExecStop,ExecStopPost", unit]
        before = commands(tb.check(show).stdout)
        tb.check(["systemctl", "daemon-reload"])
        after = commands(tb.check(show).stdout)
        assert after == before and len(after) == 3, after
        assert "argv[]=/usr/bin/podman run" in after[0] and "podman stop" in after[1]
        tb.check(["systemctl", "stop", f"{unit}.service"])
        gone = tb.run(["runas-podman", "podman", "-q", "-u", "test", "--",
                       "container", "exists", box])  # fmt: skip
        assert gone.returncode == 1, gone.stderr
    finally:
        tb.run(["systemctl", "stop", f"{unit}.service"])


def commands(shown: str) -> list[str]:
    """systemctl show's command lines without their run-time fields (pid, times)."""
    return re.findall(r"path=.*? ; argv\[\]=.*? ; ignore_errors=\w+", shown)
