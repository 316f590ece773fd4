"""Service users: setup, doctor and the user's podman API, in the testbed."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest

from tests.testbed.testbed import Testbed


def sh(tb: Testbed, script: str, **kwargs: object):  # type: ignore[no-untyped-def]
    return tb.run(["bash", "-c", script], **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def fresh_user(tb: Testbed) -> Iterator[str]:
    """A system user that setup creates; removed with all it left behind."""
    yield "rpsvc"
    sh(
        tb,
        "uid=$(id -u rpsvc 2>/dev/null) || exit 0; loginctl disable-linger rpsvc; "
        "systemctl stop user@$uid.service; userdel -r rpsvc 2>/dev/null; "
        "sed -i '/^rpsvc:/d' /etc/subuid /etc/subgid; "
        "rm -f /var/lib/runas-podman/service-users/rpsvc; "
        "rmdir /var/lib/runas-podman/service-users 2>/dev/null; true",
    )


def test_setup_creates_and_is_idempotent(tb: Testbed, fresh_user: str) -> None:
    missing = tb.run(["runas-podman", "setup", "-u", fresh_user])
    assert missing.returncode == 2
    assert (
        missing.stderr == f"runas-podman: unknown user '{fresh_user}': add --create to create it\n"
    )
    first = tb.run(["runas-podman", "setup", "-u", fresh_user, "--create"])
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert lines[0].startswith(
        f"created user {fresh_user} (system user, home /var/lib/{fresh_user}"
    )
    assert lines[1].startswith("added sub-ids ")
    assert lines[1].endswith(f" for {fresh_user} to /etc/subuid and /etc/subgid")
    assert lines[2] == f"enabled linger for {fresh_user} (logind)"
    assert lines[-1] == "changed"
    second = tb.run(["runas-podman", "setup", "-u", fresh_user, "--create"])
    assert second.stdout.splitlines()[-1] == "nothing to change"
    assert all("(already)" in line or "(present)" in line or "exists" in line
               for line in second.stdout.splitlines()[:-1])  # fmt: skip
    shell = tb.run(["getent", "passwd", fresh_user]).stdout.strip().rsplit(":", 1)[1]
    assert shell == "/usr/sbin/nologin"
    rootless = tb.run(["runas-podman", "podman", "-u", fresh_user, "--", "info", "--format",
                       "{{.Host.Security.Rootless}}"])  # fmt: skip
    assert rootless.stdout.strip() == "true", rootless.stderr
    doctor = tb.run(["runas-podman", "doctor", "-u", fresh_user, "--json"])
    assert doctor.returncode == 0, doctor.stdout
    statuses = {c["check"]: c["status"] for c in json.loads(doctor.stdout)}
    assert statuses["podman API"] == "ok" and statuses["linger"] == "ok"


def test_doctor_all_ok_for_test(tb: Testbed) -> None:
    result = tb.run(["runas-podman", "doctor", "-u", "test"])
    assert result.returncode == 0, result.stdout
    checks = [line.split(":", 1)[0] for line in result.stdout.splitlines()]
    for name in ("ok   user", "ok   subuid", "ok   subgid", "ok   linger", "ok   systemd",
                 "ok   user@1000.service", "ok   runtime dir", "ok   user bus", "ok   podman",
                 "ok   pam", "ok   selinux", "ok   rootless network"):  # fmt: skip
        assert name in checks, result.stdout
    version = int(tb.check(["systemctl", "--version"]).stdout.split()[1])
    relay = "through the fd relay"
    served = (
        f"--open-file {'native' if version >= 253 else relay}, "
        f"--pass-fd {'native' if version >= 257 else relay}, "
        + ("run0 present" if version >= 256 else "no run0 (needs 256)")
    )
    assert served in result.stdout
    # the cgroup layout as it is here: v1/hybrid on trixie's testbed, v2 on sid's
    # (sid's testbed: v2 without controllers, so nothing is delegated: a warning, rightly)
    layout = tb.run(["stat", "-f", "-c", "%T", "/sys/fs/cgroup"]).stdout.strip()
    expected = "cgroups: v2" if layout == "cgroup2fs" else "warn cgroups: v1"
    assert expected in result.stdout, result.stdout


def test_doctor_names_the_fixes_for_a_user_without_a_manager(tb: Testbed) -> None:
    sh(tb, "systemctl stop user@1001.service user-runtime-dir@1001.service")  # as after boot
    result = tb.run(["runas-podman", "doctor", "-u", "alice"])
    assert result.returncode == 1
    assert "warn linger: disabled" in result.stdout
    assert "-> loginctl enable-linger alice" in result.stdout
    assert "fail user@1001.service: inactive" in result.stdout
    assert "fail runtime dir: /run/user/1001 is missing" in result.stdout


def test_doctor_of_an_unknown_user(tb: Testbed) -> None:
    result = tb.run(["runas-podman", "doctor", "-u", "nosuch"])
    assert (result.returncode, result.stdout) == (
        1, "fail user: no user 'nosuch' -> runas-podman setup --create -u nosuch\n",
    )  # fmt: skip


@pytest.fixture
def api_container(tb: Testbed) -> Iterator[str]:
    name = "rp-api"
    result = tb.run(["runas-podman", "podman", "-u", "test", "--", "run", "-d", "--name", name,
                     "--network=none", "localhost/busybox", "sh", "-c",
                     "echo hello-log; trap 'exit 0' TERM; while :; do sleep 1; done"])  # fmt: skip
    assert result.returncode == 0, result.stderr
    yield name
    tb.run(["runas-podman", "podman", "-u", "test", "--", "rm", "-f", "-t", "0", name])


def test_api_commands(tb: Testbed, api_container: str) -> None:
    sh(tb, "systemctl --user -M test@ stop podman.socket podman.service")  # started on demand
    table = tb.run(["runas-podman", "ps", "-u", "test"])
    assert table.returncode == 0, table.stderr
    assert table.stdout.startswith("CONTAINER ID  IMAGE")
    assert api_container in table.stdout and "running" in table.stdout
    listed = json.loads(tb.run(["runas-podman", "ps", "-u", "test", "--json"]).stdout)
    assert api_container in [name for c in listed for name in c["Names"]]
    images = tb.run(["runas-podman", "images", "-u", "test"]).stdout
    assert "localhost/busybox" in images
    assert tb.run(["runas-podman", "logs", "-u", "test", api_container]).stdout == "hello-log\n"
    inspected = json.loads(tb.run(["runas-podman", "inspect", "-u", "test", api_container]).stdout)
    assert inspected[0]["Name"] == api_container
    assert (
        tb.run(["runas-podman", "stop", "-u", "test", api_container]).stdout == f"{api_container}\n"
    )
    assert "exited" in tb.run(["runas-podman", "ps", "-u", "test", "-a"]).stdout
    assert tb.run(["runas-podman", "rm", "-u", "test", api_container]).returncode == 0
    assert api_container not in tb.run(["runas-podman", "ps", "-u", "test", "-a"]).stdout


def test_logs_follow_streams(tb: Testbed) -> None:
    name = "rp-follow"
    tb.run(["runas-podman", "podman", "-u", "test", "--", "run", "-d", "--name", name,
            "--network=none", "localhost/busybox", "sh", "-c",
            "i=0; while :; do echo line-$i; i=$((i+1)); sleep 0.2; done"])  # fmt: skip
    try:
        follow = subprocess.Popen(
            tb.command(["runas-podman", "logs", "-f", "-u", "test", name]),
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert follow.stdout is not None
        seen = [follow.stdout.readline() for _ in range(5)]  # arrives while the container runs
        follow.kill()
        follow.wait()
        assert seen[0] == b"line-0\n" and seen[4] == b"line-4\n"
    finally:
        tb.run(["runas-podman", "podman", "-u", "test", "--", "rm", "-f", "-t", "0", name])


def test_api_errors_are_one_line(tb: Testbed) -> None:
    missing = tb.run(["runas-podman", "logs", "-u", "test", "nosuch"])
    assert missing.returncode == 125
    assert (
        missing.stderr
        == "runas-podman: test has no container 'nosuch' (runas-podman ps -u test -a)\n"
    )
    # A dead API: podman.socket cannot start (masked) and nothing listens.
    sh(tb, "systemctl --user -M test@ stop podman.socket podman.service; "
           "systemctl --user -M test@ mask --runtime podman.socket")  # fmt: skip
    try:
        dead = tb.run(["runas-podman", "ps", "-u", "test"])
    finally:
        sh(tb, "systemctl --user -M test@ unmask --runtime podman.socket")
    assert dead.returncode == 125 and dead.stderr.count("\n") == 1, dead.stderr
    assert "runas-podman: podman.socket of test failed to start" in dead.stderr


def test_setup_dry_run_changes_nothing(tb: Testbed, fresh_user: str) -> None:
    before = sh(tb, "md5sum /etc/passwd /etc/subuid /etc/subgid").stdout
    result = tb.run(["runas-podman", "setup", "-u", fresh_user, "--create", "--dry-run"])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"would create user {fresh_user} (system user")
    assert [line.split()[:2] for line in lines[1:-1]] == [
        ["would", "add"], ["would", "enable"], ["would", "start"], ["would", "enable"],
    ]  # fmt: skip
    assert lines[-1] == "dry run: nothing changed"
    assert sh(tb, "md5sum /etc/passwd /etc/subuid /etc/subgid").stdout == before
    # an existing user: only what is missing is listed, the rest as it is
    existing = tb.run(["runas-podman", "setup", "-u", "test", "--dry-run"])
    assert existing.stdout.splitlines()[0] == "user: test exists (uid 1000)"
    assert existing.stdout.splitlines()[-1] == "dry run: nothing changed"


def test_setup_failing_midway_undoes_what_it_did(tb: Testbed, fresh_user: str) -> None:
    """user@.service masked: the user manager cannot start after three changes were made."""
    before = sh(tb, "md5sum /etc/passwd /etc/group /etc/subuid /etc/subgid").stdout
    tb.check(["systemctl", "mask", "--runtime", "user@.service"])
    try:
        result = tb.run(["runas-podman", "setup", "-u", fresh_user, "--create"])
    finally:
        tb.check(["systemctl", "unmask", "--runtime", "user@.service"])
        # systemd 252 takes test's /run/user/1000 away with the mask: give it back
        if tb.run(["test", "-S", "/run/user/1000/bus"]).returncode != 0:
            tb.check(["systemctl", "restart", "user-runtime-dir@1000.service",
                      "user@1000.service"])  # fmt: skip
    assert result.returncode == 125
    assert result.stderr.count("\n") == 1 and "masked" in result.stderr, result.stderr
    made = [line for line in result.stdout.splitlines() if not line.startswith("undone: ")]
    undone = [line.removeprefix("undone: ") for line in result.stdout.splitlines()
              if line.startswith("undone: ")]  # fmt: skip
    assert [line.split()[0] for line in made] == ["created", "added", "enabled"]
    assert undone == list(reversed(made))
    assert tb.run(["getent", "passwd", fresh_user]).returncode == 2
    assert sh(tb, f"ls /var/lib/systemd/linger/{fresh_user}").returncode != 0
    assert sh(tb, "md5sum /etc/passwd /etc/group /etc/subuid /etc/subgid").stdout == before


def test_remove_takes_a_service_user_down_and_leaves_nothing(tb: Testbed, fresh_user: str) -> None:
    """setup --create, an image and a running container, then remove: dry run first (nothing
    changes), then everything setup made and the user's podman state goes; a second run
    has nothing to do. Accounts setup did not create, and root, are refused."""
    name = fresh_user
    assert tb.run(["runas-podman", "setup", "-u", name, "--create"]).returncode == 0
    uid = tb.check(["id", "-u", name]).stdout.strip()
    # An image without a registry: save it as one user, load it as the other.
    copied = sh(tb, f"runas-podman podman -u test -- save localhost/busybox | "
                    f"runas-podman podman -u {name} -- load --quiet")  # fmt: skip
    assert copied.returncode == 0, copied.stderr
    started = tb.run(["runas-podman", "podman", "-u", name, "--", "run", "-d", "--network=none",
                      "--name", "keeper", "localhost/busybox", "sleep", "1000"])  # fmt: skip
    assert started.returncode == 0, started.stderr
    subuid_before = tb.check(["cat", "/etc/subuid"]).stdout
    dry = tb.run(["runas-podman", "remove", "-u", name, "--delete-user", "--dry-run"])
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    assert lines[0] == f"would remove 1 container(s) of {name}"
    assert lines[1].startswith(f"would reset the podman storage of {name} (1 image(s)")
    assert lines[2:] == [
        f"would disable linger for {name} (logind)",
        f"would stop user@{uid}.service",
        f"would delete user {name} and its home /var/lib/{name}",
        "dry run: nothing changed",
    ]
    assert tb.run(["id", name]).returncode == 0
    assert tb.check(["cat", "/etc/subuid"]).stdout == subuid_before
    removed = tb.run(["runas-podman", "remove", "-u", name, "--delete-user"])
    assert removed.returncode == 0, removed.stderr
    assert [line.removeprefix("would ") for line in lines[:-1]] != removed.stdout.splitlines()
    assert removed.stdout.splitlines()[-1] == "changed"
    assert tb.run(["id", name]).returncode == 1
    assert f"{name}:" not in tb.check(["cat", "/etc/subuid", "/etc/subgid"]).stdout
    assert tb.run(["test", "-e", f"/var/lib/systemd/linger/{name}"]).returncode == 1
    assert tb.run(["test", "-e", f"/var/lib/{name}"]).returncode == 1
    assert tb.run(["test", "-e", f"/var/lib/runas-podman/service-users/{name}"]).returncode == 1
    state = tb.run(["systemctl", "is-active", f"user@{uid}.service"]).stdout.strip()
    assert state in ("inactive", "failed"), state
    assert tb.run(["pgrep", "-u", uid]).returncode == 1  # no process of the user is left
    again = tb.run(["runas-podman", "remove", "-u", name, "--delete-user"])
    assert (again.returncode, again.stdout) == (
        0, f"user {name} does not exist: nothing to remove\nnothing to change\n",
    )  # fmt: skip
    refused = tb.run(["runas-podman", "remove", "-u", "test", "--dry-run"])
    assert refused.returncode == 2 and refused.stderr == (
        "runas-podman: test was not created by runas-podman setup: add --force to take it down "
        "anyway (its account stays unless --delete-user)\n"
    )
    root = tb.run(["runas-podman", "remove", "-u", "root", "--force", "--dry-run"])
    assert root.returncode == 2 and "refuses root" in root.stderr
