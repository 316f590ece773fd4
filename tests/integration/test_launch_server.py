"""Root's launch server (runas-podman-launch.socket, cli/server.py) against the real
systemd: only root is served, the launch stops with its client, a server that dies
mid-launch takes its unit along and the client says so, and the ways around it."""

from __future__ import annotations

import time

import pytest

from tests.testbed.testbed import Testbed

SOCKET = "/run/runas-podman-launch.sock"
SERVICE = "runas-podman-launch.service"
PYTHON = "/opt/runas-podman/venv/bin/python"

# alice speaks the wire herself: a request for `exec -u root -- id` with her stdio.
ALICE_REQUEST = """\
import os, socket, sys
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    sock.connect(sys.argv[1])
except OSError as error:
    print("connect:", error.strerror); sys.exit(0)
args = [b"exec", b"-u", b"root", b"--", b"sh", b"-c", b"id > /run/alice-pwned"]
import runas_podman, runas_podman.entry as entry
head = [b"runas-podman", runas_podman.__version__.encode(), entry.INSTALL.encode(), b"22"]
payload = b"\\0".join([*head, b"%d" % len(args), *args, b"PATH=/usr/bin"])
socket.send_fds(sock, [entry.WIRE_MAGIC + len(payload).to_bytes(4, "big")], [0, 1, 2, 0])
sock.sendall(payload)
answer = sock.recv(1)
if answer == b"A":
    sock.sendall(b"G")
print("answer:", answer)
"""


def sh(tb: Testbed, script: str, **kwargs: object):  # type: ignore[no-untyped-def]
    return tb.run(["bash", "-c", script], **kwargs)  # type: ignore[arg-type]


def server_children(tb: Testbed) -> list[str]:
    main = tb.run(["systemctl", "show", "-P", "MainPID", SERVICE]).stdout.strip()
    if main in ("", "0"):
        return []
    return tb.run(["pgrep", "-P", main]).stdout.split()


def wait_for(predicate, timeout: float = 15.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def running_units(tb: Testbed, name: str) -> str:
    return tb.run(["systemctl", "list-units", "--all", "--plain", "--no-legend", name]).stdout


def test_the_socket_is_root_only_and_the_server_checks_every_peer(tb: Testbed) -> None:
    listing = tb.check(["stat", "-c", "%U %G %a", SOCKET]).stdout.split()
    assert listing == ["root", "root", "600"]
    refused = tb.run([PYTHON, "-c", ALICE_REQUEST, SOCKET], user="alice")
    assert refused.stdout.strip() == "connect: Permission denied", refused.stdout + refused.stderr
    # Even given a way in (a bind of the socket she may open), the server refuses her.
    sh(tb, f"rm -rf /run/alice-door && mkdir -m 755 /run/alice-door && touch /run/alice-door/s "
           f"&& mount --bind {SOCKET} /run/alice-door/s && chmod 666 {SOCKET}")  # fmt: skip
    try:
        answered = tb.run([PYTHON, "-c", ALICE_REQUEST, "/run/alice-door/s"], user="alice")
    finally:
        sh(tb, f"chmod 600 {SOCKET}; umount /run/alice-door/s; rm -rf /run/alice-door")
    assert answered.stdout.strip() == "answer: b'R'", answered.stdout + answered.stderr
    assert tb.run(["test", "-e", "/run/alice-pwned"]).returncode == 1
    assert tb.run(["stat", "-c", "%a", SOCKET]).stdout.strip() == "600"


def test_served_and_in_process_give_the_same_results(tb: Testbed) -> None:
    script = 'printf "%s|" "$FOO" "$(pwd)" "$(id -un)"; cat; echo err >&2; exit 7'
    line = f"cd /tmp && echo in | FOO=bar runas-podman exec -u test -d -E FOO -- sh -c '{script}'"
    served = sh(tb, line)
    in_process = sh(tb, line, env={"RUNAS_PODMAN_SERVER": "0"})
    assert (served.returncode, served.stdout, served.stderr) == (7, "bar|/tmp|test|in\n", "err\n")
    assert (in_process.returncode, in_process.stdout, in_process.stderr) == (
        served.returncode, served.stdout, served.stderr,
    )  # fmt: skip
    usage = tb.run(["runas-podman", "exec", "-u", "test", "--nice", "x", "--", "true"])
    usage_here = tb.run(["runas-podman", "--no-server", "exec", "-u", "test", "--nice", "x",
                         "--", "true"])  # fmt: skip
    assert usage.returncode == usage_here.returncode == 2
    assert usage.stderr == usage_here.stderr and usage.stderr.count("\n") == 1


@pytest.mark.parametrize("how", ["--no-server", "RUNAS_PODMAN_SERVER=0", "unshare -m"])
def test_the_ways_around_the_server_run_in_process(tb: Testbed, how: str) -> None:
    """In-process: no child of the server runs the launch (the client holds it itself)."""
    command = "runas-podman exec -u test -- sleep 30"
    if how == "--no-server":
        command = command.replace("runas-podman ", "runas-podman --no-server ")
    elif how == "unshare -m":
        command = f"unshare -m {command}"
    else:
        command = f"{how} {command}"
    sh(tb, f"({command} >/dev/null 2>&1 &) ; sleep 0.1")
    try:
        assert wait_for(lambda: "sleep" in tb.run(["pgrep", "-u", "test", "-a", "sleep"]).stdout)
        assert server_children(tb) == []
    finally:
        sh(tb, "pkill -f 'runas-podman.*sleep 30'; pkill -u test -x sleep; true")
        wait_for(lambda: not running_units(tb, "runas-podman-*").strip())


def test_client_sigkill_stops_the_unit(tb: Testbed) -> None:
    sh(tb, "(runas-podman exec -u test --unit rp-served-kill -- sleep 300 >/dev/null 2>&1 &)")
    assert wait_for(lambda: "active" in running_units(tb, "rp-served-kill.service"))
    assert len(server_children(tb)) == 1  # served
    sh(tb, "pkill -KILL -f 'runas-podman exec -u test --unit rp-served-kill'")
    assert wait_for(lambda: not running_units(tb, "rp-served-kill.service").strip())
    assert wait_for(lambda: server_children(tb) == [])


def test_a_server_killed_mid_launch_takes_the_unit_and_the_client_says_so(tb: Testbed) -> None:
    sh(tb, "rm -f /run/served-client.out; (runas-podman exec -u test --unit rp-served-dies "
           "-- sleep 300 >/dev/null 2>/run/served-client.out; echo \"status $?\" "
           ">>/run/served-client.out) >/dev/null 2>&1 &")  # fmt: skip
    assert wait_for(lambda: "active" in running_units(tb, "rp-served-dies.service"))
    children = server_children(tb)
    assert len(children) == 1
    tb.check(["kill", "-KILL", children[0]])
    assert wait_for(lambda: not running_units(tb, "rp-served-dies.service").strip())
    assert wait_for(lambda: "status" in tb.run(["cat", "/run/served-client.out"]).stdout)
    lines = tb.run(["cat", "/run/served-client.out"]).stdout.splitlines()
    assert lines == [
        "runas-podman: the launch server ended before the command did, and stopped it with "
        "it: run it again (--no-server runs it in this process)",
        "status 125",
    ]


def test_a_signal_to_the_client_reaches_the_launch(tb: Testbed) -> None:
    sh(tb, "rm -f /run/served-term.out; (runas-podman exec -u test --unit rp-served-term "
           "-- sleep 300; echo \"status $?\" >/run/served-term.out) >/dev/null 2>&1 &")  # fmt: skip
    assert wait_for(lambda: "active" in running_units(tb, "rp-served-term.service"))
    sh(tb, "pkill -TERM -x runas-podman")  # the client (its shell's line names it too)
    assert wait_for(lambda: "status" in tb.run(["cat", "/run/served-term.out"]).stdout)
    assert tb.run(["cat", "/run/served-term.out"]).stdout == "status 143\n"
    assert wait_for(lambda: not running_units(tb, "rp-served-term.service").strip())


def test_root_runas_is_served_too(tb: Testbed) -> None:
    served = tb.run(["runas", "-u", "test", "sh", "-c", "id -un; echo $SUDO_USER"])
    assert (served.returncode, served.stdout) == (0, "test\nroot\n"), served.stderr


def test_install_dry_run_lists_the_socket_unit(tb: Testbed) -> None:
    dry = tb.run(["runas-podman", "install", "--dry-run"])
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    assert "up to date /etc/systemd/system/runas-podman-launch.socket" in lines
    assert "up to date /etc/systemd/system/runas-podman-launch.service" in lines
    assert "would enable and start runas-podman-launch.socket" in lines


def test_a_reinstall_in_place_retires_the_running_server(tb: Testbed) -> None:
    """pip install --force-reinstall keeps the version and the directory; the running
    server must not go on serving the code it loaded before. Its files changed: the next
    client is refused (and runs in-process, with the same result), the server exits, and
    the socket starts a fresh one for the call after."""
    assert tb.run(["runas-podman", "exec", "-u", "test", "--", "true"]).returncode == 0
    before = tb.run(["systemctl", "show", "-P", "MainPID", SERVICE]).stdout.strip()
    assert before not in ("", "0")
    site = tb.check([PYTHON, "-c", "import runas_podman, os; "
                     "print(os.path.dirname(runas_podman.__file__))"]).stdout.strip()  # fmt: skip
    tb.check(["touch", f"{site}/core/plan.py"])  # what a reinstall does to every module
    refused = tb.run(["runas-podman", "exec", "-u", "test", "--", "echo", "here"])
    assert (refused.returncode, refused.stdout, refused.stderr) == (0, "here\n", "")
    assert wait_for(
        lambda: tb.run(["systemctl", "show", "-P", "MainPID", SERVICE]).stdout.strip() == "0"
    )
    log = tb.run(["journalctl", "-u", SERVICE, "-o", "cat", "-n", "20", "--no-pager"]).stdout
    assert "whose files changed since it started" in log
    served = tb.run(["runas-podman", "exec", "-u", "test", "--", "echo", "served"])
    assert (served.returncode, served.stdout) == (0, "served\n")
    after = tb.run(["systemctl", "show", "-P", "MainPID", SERVICE]).stdout.strip()
    assert after not in ("", "0", before)
