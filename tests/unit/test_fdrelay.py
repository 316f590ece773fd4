"""The fd relay, run for real: a socket on stdin, fds in one message, then exec."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import runas_podman.run.fdrelay

RELAY = runas_podman.run.fdrelay.__file__
SHOW = "import os; print(sorted(int(f) for f in os.listdir('/proc/self/fd'))[:6], os.environ.get('LISTEN_FDS'), os.environ.get('LISTEN_FDNAMES'), os.environ.get('LISTEN_PID') == str(os.getpid())); print(open(0).read().strip()); print(os.read(3, 100).decode(), os.read(4, 100).decode())"  # noqa: E501


def test_relay_puts_stdin_and_secrets_in_place_and_execs() -> None:
    ours, theirs = socket.socketpair()
    relay = subprocess.Popen(
        [sys.executable, "-I", "-S", RELAY, "--", sys.executable, "-c", SHOW],
        stdin=theirs, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    theirs.close()
    with tempfile.TemporaryDirectory() as scratch:
        stdin_file = Path(scratch, "in")
        stdin_file.write_text("the real stdin\n")
        first, second = Path(scratch, "a"), Path(scratch, "b")
        first.write_text("alpha")
        second.write_text("beta")
        fds = [os.open(path, os.O_RDONLY) for path in (stdin_file, first, second)]
        socket.send_fds(ours, [json.dumps({"names": ["a", "b"]}).encode()], fds)
        for fd in fds:
            os.close(fd)
        ours.close()
        out, _ = relay.communicate(timeout=30)
    assert relay.returncode == 0
    lines = out.splitlines()
    assert lines[0] == "[0, 1, 2, 3, 4, 5] 2 a:b True"  # 5: the listing's own fd
    assert lines[1:] == ["the real stdin", "alpha beta"]


def test_relay_without_fds_fails_like_systemd() -> None:
    ours, theirs = socket.socketpair()
    relay = subprocess.Popen(
        [sys.executable, "-I", "-S", RELAY, "--", "/bin/true"], stdin=theirs,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    theirs.close()
    ours.close()  # the launcher went away before sending
    _, err = relay.communicate(timeout=30)
    assert relay.returncode == 202
    assert err.startswith("fdrelay: no fds from the launcher")
