"""The launch server's wire, both ends: what the client hands over, what the server takes,
and every malformed request refused (its fds closed), on a socketpair."""

from __future__ import annotations

import os
import socket

import pytest

from runas_podman import __version__, entry
from runas_podman.cli import server
from runas_podman.cli.server import MAX_PAYLOAD, read_request


def send(sock: socket.socket, header: bytes, payload: bytes, fds: list[int]) -> None:
    socket.send_fds(sock, [header], fds)
    sock.sendall(payload)


def request_bytes(prog: bytes, umask: bytes, args: list[bytes], env: list[bytes]) -> bytes:
    install = os.fsencode(entry.INSTALL)
    return b"\0".join([prog, __version__.encode(), install, umask, b"%d" % len(args), *args,
                       *env])  # fmt: skip


def open_fds() -> list[int]:
    null = os.open(os.devnull, os.O_RDONLY)
    return [null, null, null, null]


def test_a_request_round_trips() -> None:
    ours, theirs = socket.socketpair()
    payload = request_bytes(b"runas-podman", b"27", [b"exec", b"-u", b"t", b"--", b"a\xff b"],
                            [b"A=1", b"B=x=y", b"=bad", b"noequals"])  # fmt: skip
    fds = open_fds()
    send(ours, entry.WIRE_MAGIC + len(payload).to_bytes(4, "big"), payload, fds)
    os.close(fds[0])
    request = read_request(theirs)
    assert request.prog == "runas-podman" and request.umask == 0o27
    assert (request.version, request.install) == (__version__, server.INSTALL) == (
        __version__, entry.INSTALL,
    )  # fmt: skip
    assert request.argv == ["exec", "-u", "t", "--", os.fsdecode(b"a\xff b")]
    assert request.environ == {"A": "1", "B": "x=y"}
    assert len(request.fds) == 4
    for fd in set(request.fds):
        os.close(fd)


@pytest.mark.parametrize(
    ("header", "payload", "fd_count"),
    [
        (b"XXXX", request_bytes(b"runas", b"22", [], []), 4),  # not our magic
        (entry.WIRE_MAGIC, request_bytes(b"sh", b"22", [], []), 4),  # a program we do not run
        (entry.WIRE_MAGIC, request_bytes(b"runas", b"9999", [], []), 4),  # no umask
        (entry.WIRE_MAGIC, request_bytes(b"runas", b"22", [], []).replace(b"\x000", b"\x009"), 4),
        (entry.WIRE_MAGIC, request_bytes(b"runas", b"22", [], []), 3),  # fds missing
        (entry.WIRE_MAGIC, b"runas", 4),  # fields missing
    ],
)
def test_malformed_requests_are_refused_and_their_fds_closed(
    header: bytes, payload: bytes, fd_count: int
) -> None:
    ours, theirs = socket.socketpair()
    fds = open_fds()[:fd_count]
    send(ours, header + len(payload).to_bytes(4, "big"), payload, fds)
    os.close(fds[0])
    before = set(os.listdir("/proc/self/fd"))
    with pytest.raises(ValueError):
        read_request(theirs)
    assert set(os.listdir("/proc/self/fd")) <= before  # what arrived was closed


def test_an_oversized_request_is_refused_before_it_is_read() -> None:
    ours, theirs = socket.socketpair()
    fds = open_fds()
    socket.send_fds(ours, [entry.WIRE_MAGIC + (MAX_PAYLOAD + 1).to_bytes(4, "big")], fds)
    os.close(fds[0])
    with pytest.raises(ValueError, match="a request of"):
        read_request(theirs)


@pytest.mark.parametrize(
    ("prog", "args", "environ", "served"),
    [
        ("runas-podman", ["exec", "-u", "t", "--", "true"], {}, True),
        ("runas-podman", ["podman", "-u", "t", "ps"], {}, True),
        ("runas-podman", ["--no-server", "exec", "-u", "t", "true"], {}, False),
        ("runas-podman", ["setup", "-u", "t"], {}, False),  # changes the host: in-process
        ("runas-podman", ["exec", "-u", "t", "--pass-fd", "3", "cat"], {}, False),
        ("runas-podman", ["exec", "-u", "t", "true"], {"RUNAS_PODMAN_SERVER": "0"}, False),
        ("runas", ["-u", "t", "id"], {}, True),
        ("runas", ["--no-server", "id"], {}, False),
        ("runas", ["--help"], {}, False),
        ("runas", ["id", "--no-server"], {}, False),  # the command's own: runs here, the same
        ("runas", ["-u", "alice", "--no-server", "id"], {}, False),
        ("runas-podman", ["exec", "-u", "t", "--backend", "native", "--", "id"], {}, False),
        ("runas-podman", ["exec", "-u", "t", "--backend=native", "id"], {}, False),
        ("runas-podman", ["exec", "-u", "t", "--", "echo", "--backend=native"], {}, True),
    ],
)
def test_the_fast_path_decision(
    monkeypatch: pytest.MonkeyPatch, prog: str, args: list[str], environ: dict[str, str],
    served: bool,
) -> None:  # fmt: skip
    monkeypatch.setattr(os, "getuid", lambda: 0)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(os, "readlink", lambda path: "mnt:[4026531841]")
    monkeypatch.setattr(os, "stat", lambda path: os.lstat("/"))  # / as PID 1's root
    monkeypatch.setattr(os, "isatty", lambda fd: False)
    monkeypatch.delenv("RUNAS_PODMAN_SERVER", raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert entry._wants_server(prog, args) is served


def test_not_root_or_another_mount_namespace_runs_here(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNAS_PODMAN_SERVER", raising=False)
    monkeypatch.setattr(os, "getuid", lambda: 1000)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert not entry._wants_server("runas", ["id"])
    monkeypatch.setattr(os, "getuid", lambda: 0)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(os, "readlink", lambda path: f"mnt:[{len(path)}]")  # they differ
    assert not entry._wants_server("runas", ["id"])


def test_a_closed_stdio_fd_or_a_background_terminal_runs_here(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("RUNAS_PODMAN_SERVER", raising=False)
    monkeypatch.setattr(os, "getuid", lambda: 0)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(os, "readlink", lambda path: "mnt:[1]")
    real_fstat = os.fstat

    def closed_stdout(fd: int) -> os.stat_result:
        if fd == 1:
            raise OSError(9, "Bad file descriptor")
        return real_fstat(fd)

    monkeypatch.setattr(os, "fstat", closed_stdout)
    assert not entry._wants_server("runas", ["id"])
    monkeypatch.setattr(os, "fstat", real_fstat)
    monkeypatch.setattr(os, "isatty", lambda fd: fd == 0)
    monkeypatch.setattr(os, "tcgetpgrp", lambda fd: 4242)  # the terminal's foreground job
    monkeypatch.setattr(os, "getpgrp", lambda: 777)  # is not ours: we are in the background
    assert not entry._wants_server("runas", ["id"])


def serve_in_a_child(monkeypatch: pytest.MonkeyPatch, failure: BaseException) -> tuple[bytes, str]:
    """serve() in a forked child whose command line fails with FAILURE; what the client
    gets back, and what reached its stderr."""
    ours, theirs = socket.socketpair()
    err_read, err_write = os.pipe()

    def failing_run(request: object, pid: int) -> int:
        raise failure

    monkeypatch.setattr(server, "run", failing_run)
    child = os.fork()
    if child == 0:  # pragma: no cover - the child
        try:
            ours.close()
            server.serve(theirs)
        finally:
            os._exit(99)  # never back into pytest
    theirs.close()
    null = os.open(os.devnull, os.O_RDWR)
    cwd = os.open("/", os.O_PATH | os.O_DIRECTORY)
    payload = request_bytes(b"runas-podman", b"22", [b"exec", b"-u", b"t", b"true"], [])
    send(ours, entry.WIRE_MAGIC + len(payload).to_bytes(4, "big"), payload,
         [null, null, err_write, cwd])  # fmt: skip
    os.close(cwd)
    os.close(err_write)
    answer = ours.recv(1)
    if answer == b"A":
        ours.sendall(b"G")
    reply = answer + ours.recv(16)
    os.waitpid(child, 0)
    stderr = os.read(err_read, 65536).decode()
    os.close(err_read)
    os.close(null)
    return reply, stderr


def test_a_crash_in_the_served_command_line_is_a_failure_with_its_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if os.geteuid() != 0:
        pytest.skip("the server serves root only")  # CI runs as root
    reply, stderr = serve_in_a_child(monkeypatch, RuntimeError("a bug"))
    assert reply == b"AX" + (125).to_bytes(4, "big")
    assert "Traceback" in stderr and "RuntimeError: a bug" in stderr
    reply, _stderr = serve_in_a_child(monkeypatch, SystemExit(3))
    assert reply == b"AX" + (3).to_bytes(4, "big")


def test_the_install_stamp_sees_the_package_modules() -> None:
    from runas_podman.cli.server import STARTED_WITH, install_stamp

    names = {os.path.basename(path) for path, _inode, _mtime in install_stamp()}
    assert {"server.py", "plan.py", "entry.py"} <= names
    assert install_stamp() == STARTED_WITH
