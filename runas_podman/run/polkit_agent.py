"""pkttyagent for the caller's terminal, while systemd asks polkit (as run0 does).

Not spawned for root, with -n, without a controlling terminal, or when pkttyagent is
not installed: then polkit decides without asking anyone.
"""

from __future__ import annotations

import os
import select
import subprocess
import time

from runas_podman.host.lookup import is_executable_file, resolve_executable

REGISTER_TIMEOUT = 10.0


def open_agent() -> subprocess.Popen[bytes] | None:
    if os.geteuid() == 0:
        return None
    agent = resolve_executable("pkttyagent", is_executable_file)
    if agent is None:
        return None
    try:
        tty = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return None  # no controlling terminal: nobody to ask
    notify_read, notify_write = os.pipe()
    try:
        process = subprocess.Popen(
            # As run0: the agent serves the caller's logind session.
            [agent, "--notify-fd", str(notify_write), "--fallback"],
            pass_fds=(notify_write,),
            # Each std stream that is not a terminal is the terminal for the agent.
            stdin=None if os.isatty(0) else tty,
            stdout=None if os.isatty(1) else tty,
            stderr=None if os.isatty(2) else tty,
        )
    finally:
        os.close(notify_write)
        os.close(tty)
    # The agent closes the notify fd once it is registered with polkit.
    deadline = time.monotonic() + REGISTER_TIMEOUT
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([notify_read], [], [], deadline - time.monotonic())
            if ready and not os.read(notify_read, 64):
                break
    finally:
        os.close(notify_read)
    return process


def close_agent(process: subprocess.Popen[bytes] | None) -> None:
    if process is None:
        return
    process.terminate()
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
