"""The options admins know from systemd-run and podman, in the testbed."""

from __future__ import annotations

import json

import pytest

from tests.integration.test_runas import Tmux
from tests.testbed.testbed import Testbed


def test_slice_nice_working_directory_and_setenv_alias(tb: Testbed) -> None:
    result = tb.run(
        ["runas-podman", "exec", "-u", "test", "--slice", "conv-test", "--nice", "7",
         "-D", "/tmp", "-E", "GREETING=hi", "--unit", "rp-conv", "--", "sh", "-c",
         "echo $GREETING; nice; pwd; cat /proc/self/cgroup | grep -o 'conv-test.slice' | head -1"]
    )  # fmt: skip
    tb.run(["systemctl", "stop", "conv-test.slice"])  # systemd keeps a used slice around
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["hi", "7", "/tmp", "conv-test.slice"]


def test_dry_run_shows_the_new_options(tb: Testbed) -> None:
    result = tb.run(["runas-podman", "exec", "-u", "test", "--slice", "x", "--nice", "3",
                     "-D", "~", "--dry-run", "--", "true"])  # fmt: skip
    assert result.returncode == 0, result.stderr
    for text in ("--property=Slice=x.slice", "--property=Nice=3", "--property=WorkingDirectory=~"):
        assert text in result.stdout


@pytest.mark.parametrize("mode", ["short", "pretty"])
def test_json_prints_unit_and_invocation_id_first(tb: Testbed, mode: str) -> None:
    result = tb.run(["runas-podman", "exec", "-u", "test", f"--json={mode}", "--unit",
                     "rp-json", "--", "echo", "after"])  # fmt: skip
    assert result.returncode == 0, result.stderr
    # The JSON comes once systemd has assigned the invocation ID: a fast command's own
    # output may come before it, never inside it.
    start, end = result.stdout.index("{"), result.stdout.rindex("}") + 1
    document = json.loads(result.stdout[start:end])
    assert document["unit"] == "rp-json.service"
    assert len(document["invocation_id"]) == 32 and int(document["invocation_id"], 16)
    assert (result.stdout[:start] + result.stdout[end:]).split() == ["after"]
    assert (mode == "pretty") == ("\n  " in result.stdout[start:end])


def test_summary_on_a_terminal_unless_quiet(tb: Testbed) -> None:
    tmux = Tmux(tb, "runas-podman exec -u test --unit rp-sum -- sh -c 'echo work'")
    try:
        screen = tmux.wait_for("runas-podman: rp-sum.service: success")
        assert tmux.status() == 0
        line = next(x for x in screen.splitlines() if x.startswith("runas-podman: rp-sum"))
        assert ", ran " in line  # CPU, memory and IO where the host accounts them
    finally:
        tmux.close()
    quiet = Tmux(tb, "runas-podman exec -u test -q -- sh -c 'echo quiet-work'")
    try:
        screen = quiet.wait_for("quiet-work")
        assert quiet.status() == 0
        assert "runas-podman:" not in quiet.screen()
    finally:
        quiet.close()


def test_podman_run_it_is_interactive_with_pty(tb: Testbed) -> None:
    tmux = Tmux(tb, "runas-podman podman -u test -t -q -- run -it --rm --network=none "
                    "localhost/busybox sh")  # fmt: skip
    try:
        tmux.wait_for("/ #", timeout=30)
        tmux.keys("echo inside-$((6*7))", "Enter")
        tmux.wait_for("inside-42")
        tmux.keys("exit 5", "Enter")
        assert tmux.status(timeout=30) == 5
    finally:
        tmux.close()


@pytest.mark.parametrize("command", [["ps", "-a"], ["images"], ["doctor"]])
def test_format_json_parses(tb: Testbed, command: list[str]) -> None:
    for flag in (["--format", "json"], ["--json"]):
        result = tb.run(["runas-podman", *command, "-u", "test", *flag])
        assert result.returncode == 0, result.stderr
        assert isinstance(json.loads(result.stdout), list)


def test_inspect_and_quadlet_list_format_json(tb: Testbed) -> None:
    sh = "runuser -u test -- env XDG_RUNTIME_DIR=/run/user/1000 PODMAN_IGNORE_CGROUPSV1_WARNING=1 "
    tb.check(["bash", "-c", sh + "podman create --name rp-inspect --network=none "
              "localhost/busybox true"])  # fmt: skip
    try:
        result = tb.run(["runas-podman", "inspect", "-u", "test", "--format", "json",
                         "rp-inspect"])  # fmt: skip
        assert json.loads(result.stdout)[0]["Name"] == "rp-inspect"
        table = tb.run(["runas-podman", "inspect", "-u", "test", "--format", "table",
                        "rp-inspect"])  # fmt: skip
        assert table.stdout.splitlines()[0].split()[:2] == ["CONTAINER", "ID"]
    finally:
        tb.run(["bash", "-c", sh + "podman rm -f rp-inspect"])
    listed = tb.run(["runas-podman", "quadlet", "list", "-u", "test", "--format", "json"])
    assert listed.returncode == 0, listed.stderr
    assert isinstance(json.loads(listed.stdout), list)


def test_credentials_and_syscall_filter_reach_the_unit(tb: Testbed) -> None:
    result = tb.run(
        ["bash", "-c",
         "runas-podman exec -u test --unit rp-props -p LoadCredential=host:/etc/hostname "
         "-p SystemCallFilter=@system-service -p IPAddressDeny=any -- "
         "sh -c 'cat \"$CREDENTIALS_DIRECTORY/host\"; sleep 2' & client=$!; sleep 1; "
         "systemctl show rp-props.service -p LoadCredential -p SystemCallFilter "
         "-p IPAddressDeny; wait $client; echo status=$?; hostname"]
    )  # fmt: skip
    lines = result.stdout.splitlines()
    assert lines[-2] == "status=0", result.stderr
    assert lines[0] == lines[-1]  # the credential is the host name file's content
    shown = "\n".join(lines[1:-2])
    assert "LoadCredential=" in shown  # systemctl 257 prints it as [unprintable]
    assert "SystemCallFilter=" in shown and "SystemCallFilter=\n" not in shown + "\n"
    deny = next(line for line in shown.splitlines() if line.startswith("IPAddressDeny="))
    assert sorted(deny.removeprefix("IPAddressDeny=").split()) == ["0.0.0.0/0", "::/0"]


def test_properties_are_listed_and_misspellings_get_a_suggestion(tb: Testbed) -> None:
    listed = tb.run(["runas-podman", "properties"]).stdout.split()
    assert "LoadCredential" in listed and "SystemCallFilter" in listed
    assert "LoadCredential" in tb.run(["runas", "--list-properties"]).stdout
    result = tb.run(["runas-podman", "exec", "-u", "test", "-p", "memorymax=1G", "--", "true"])
    assert result.returncode == 2
    assert result.stderr == (
        "runas-podman: unknown property 'memorymax' (did you mean MemoryMax?): "
        "list them with runas-podman properties\n"
    )
