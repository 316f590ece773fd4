"""Secret files reach the command, or the container, as file descriptors, never as copies."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.testbed.testbed import Testbed

# Root's command lines run both ways: through the launch server and in-process.
pytestmark = pytest.mark.usefixtures("launch_path")

CONTAINER = ["run", "--rm", "--network=none", "localhost/busybox"]


def sh(tb: Testbed, script: str, **kwargs: object):  # type: ignore[no-untyped-def]
    return tb.run(["bash", "-c", script], **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def secrets(tb: Testbed) -> Iterator[Testbed]:
    """/etc/secretfile (root, 0700) and /home/test/secret (test, 0700), as in podman's docs."""
    sh(
        tb,
        "echo 'hello from secret' > /etc/secretfile; chmod 0700 /etc/secretfile; "
        "echo 'hello from home' > /home/test/secret; chown test:test /home/test/secret; "
        "chmod 0700 /home/test/secret; "
        "echo 'second file' > /etc/secondfile; chmod 0700 /etc/secondfile",
    )
    yield tb
    sh(tb, "rm -f /etc/secretfile /etc/secondfile /home/test/secret")


def test_root_only_file_through_the_system_manager(secrets: Testbed) -> None:
    # PID 1 opens the file as root: test itself could not read it.
    assert secrets.run(["cat", "/etc/secretfile"], user="test").returncode != 0
    script = 'cat <&3; echo "$LISTEN_FDNAMES"'
    result = secrets.run(["runas-podman", "podman", "-u", "test", "--open-file", "/etc/secretfile",
                          "--", *CONTAINER, "sh", "-c", script])  # fmt: skip
    assert (result.returncode, result.stdout) == (0, "hello from secret\nsecretfile\n"), (
        result.stderr
    )


def test_users_file_through_the_user_manager_into_an_unprivileged_container(
    secrets: Testbed,
) -> None:
    result = secrets.run(
        ["runas-podman", "podman", "-u", "test", "--via", "user", "--open-file",
         "/home/test/secret:s", "--", "run", "--rm", "--network=none", "--user", "65534:65534",
         "localhost/busybox", "sh", "-c", "id -u; cat <&3"]
    )  # fmt: skip
    assert (result.returncode, result.stdout) == (0, "65534\nhello from home\n"), result.stderr


def test_secret_from_a_caller_held_pipe(secrets: Testbed) -> None:
    result = sh(
        secrets,
        "runas-podman podman -u test --pass-fd 3:db -- run --rm --network=none localhost/busybox "
        "sh -c 'cat <&3; echo $LISTEN_FDNAMES' 3< <(echo 'from a pipe')",
    )
    assert (result.returncode, result.stdout) == (0, "from a pipe\ndb\n"), result.stderr


def test_two_files_arrive_in_order_with_their_names(secrets: Testbed) -> None:
    result = secrets.run(
        ["runas-podman", "podman", "-u", "test", "--open-file", "/etc/secretfile:one",
         "--open-file", "/etc/secondfile:two", "--", *CONTAINER, "sh", "-c",
         'cat <&3; cat <&4; echo "$LISTEN_FDS $LISTEN_FDNAMES"']
    )  # fmt: skip
    assert result.stdout == "hello from secret\nsecond file\n2 one:two\n", result.stderr


def test_pass_fds_come_before_open_files(secrets: Testbed) -> None:
    result = sh(
        secrets,
        "runas-podman exec -u test --open-file /etc/secretfile:file --pass-fd 3:pipe -- "
        "sh -c 'cat <&3; cat <&4; echo $LISTEN_FDNAMES' 3< <(echo piped)",
    )
    assert result.stdout == "piped\nhello from secret\npipe:file\n", result.stderr


def test_missing_file_fails_cleanly_and_graceful_skips_it(secrets: Testbed) -> None:
    missing = secrets.run(["runas-podman", "exec", "-u", "test", "--open-file", "/etc/nope",
                           "--", "true"])  # fmt: skip
    assert missing.returncode == 125 and missing.stderr.count("\n") == 1, missing.stderr
    assert "could not open an --open-file path (/etc/nope)" in missing.stderr
    script = 'echo "[$LISTEN_FDS]"'
    graceful = secrets.run(["runas-podman", "exec", "-u", "test", "--open-file",
                            "/etc/nope:n:graceful", "--", "sh", "-c", script])  # fmt: skip
    assert (graceful.returncode, graceful.stdout) == (0, "[]\n")


def test_secret_never_shows_in_environment_command_line_or_unit(secrets: Testbed) -> None:
    result = sh(
        secrets,
        "runas-podman exec -u test --unit rp-secret --open-file /etc/secretfile "
        "--pass-fd 3:pipe -- sleep 300 3< <(echo pipe-secret-value) & client=$!; "
        "for i in $(seq 200); do p=$(systemctl show -P MainPID rp-secret.service); "
        '[ "$(cat /proc/$p/comm 2>/dev/null)" = sleep ] && break; sleep 0.05; done; '
        "pid=$(systemctl show -P MainPID rp-secret.service); "
        "{ systemctl show rp-secret.service; systemctl cat rp-secret.service; "
        "tr '\\0' '\\n' < /proc/$pid/environ; tr '\\0' ' ' < /proc/$pid/cmdline; } > /run/shown; "
        "kill -TERM $client; wait $client; "
        "grep -c -e 'hello from secret' -e pipe-secret-value /run/shown; "
        "grep -c 'LISTEN_FDNAMES=pipe:secretfile' /run/shown; rm -f /run/shown",
    )
    assert result.stdout.split() == ["0", "1"], result.stderr


def test_closed_fd_is_refused_before_anything_starts(tb: Testbed) -> None:
    result = tb.run(["runas-podman", "exec", "-u", "test", "--pass-fd", "9", "--", "true"])
    assert result.returncode == 125
    assert result.stderr.startswith("runas-podman: --pass-fd 9: fd 9 is not open")


def test_too_many_fds_are_refused(tb: Testbed) -> None:
    def run_with(count: int):  # type: ignore[no-untyped-def]
        opens = " ".join(f"{fd}</etc/hostname" for fd in range(3, 3 + count))
        flags = " ".join(f"--pass-fd {fd}" for fd in range(3, 3 + count))
        return sh(tb, f"runas-podman exec -u test {flags} -- sh -c 'echo $LISTEN_FDS' {opens}")

    most = run_with(12)  # 3 stdio + 1 lifeline + 12: exactly one message's worth
    assert (most.returncode, most.stdout) == (0, "12\n"), most.stderr
    result = run_with(13)
    assert result.returncode == 125 and result.stderr.count("\n") == 1, result.stderr
    assert "too many file descriptors: 17" in result.stderr and "pass at most 12" in result.stderr
