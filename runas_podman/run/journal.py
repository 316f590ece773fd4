"""-v/--verbose: the unit's journal on the caller's stdout while it runs, as systemd-run
262 shows it, and nothing of it cut off at the end.

A `journalctl --follow` child, started before the unit, shows it. Ending that child the
moment the unit has ended can cut off what it has not printed yet: measured on 257 (a
short unit's lines all lost), and on 262 even with its --synchronize-on-exit (systemd-run
262's own way; measured in a full CI run on sid: twice, nothing of a 0.6 s unit printed).
So the follower also matches this client's own entries (journald's _PID and _UID, which
nobody can forge): once the unit has ended and the journal is synced, the client logs a
mark made only then, relays the follower's output until the mark comes through (every
earlier line before it), and only then ends the follower.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time

from runas_podman.core.model import LaunchPlan, Manager
from runas_podman.host import lookup

STOP_SECONDS = 5.0


def unit_matches(plan: LaunchPlan) -> list[str]:
    """journalctl matches for the unit's messages and the manager's about it, as `--unit`
    (`--user-unit`) adds them, written out: a `+` term follows them, and `--user-unit`
    would match the caller's own uid."""
    if plan.manager is Manager.SYSTEM:
        return [f"_SYSTEMD_UNIT={plan.unit}", "+", f"UNIT={plan.unit}", "_PID=1",
                "+", f"OBJECT_SYSTEMD_UNIT={plan.unit}", "_UID=0"]  # fmt: skip
    uid = f"_UID={plan.user.uid}"
    return [f"_SYSTEMD_USER_UNIT={plan.unit}", uid, "+", f"USER_UNIT={plan.unit}", uid]


class JournalView:
    """The unit's journal from now on, written to `out`, until stop()."""

    def __init__(self, follower: asyncio.subprocess.Process, journalctl: str, out: int) -> None:
        self.follower: asyncio.subprocess.Process | None = follower
        self.journalctl = journalctl
        self.mark = ""  # made at stop(): nobody can have written it before
        self.out = out
        self.marked: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.relay = asyncio.ensure_future(self._relay_until_mark(follower))

    @classmethod
    async def start(cls, plan: LaunchPlan, output: str, out: int, err: int) -> JournalView:
        journalctl = lookup.executable("journalctl", "systemd")
        # From now, by the clock: `--lines=0` starts at the journal's end as journalctl
        # finds it, which can be later than the unit's first lines. Then this process's
        # own entries (the mark).
        argv = [journalctl, "-q", "--follow", "--no-pager", f"--since=@{time.time():.6f}",
                "--lines=all", f"--output={output}", *unit_matches(plan),
                "+", f"_PID={os.getpid()}", f"_UID={os.geteuid()}"]  # fmt: skip
        follower = await asyncio.create_subprocess_exec(
            *argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, limit=MAX_LINE
        )
        return cls(follower, journalctl, out)

    async def stop(self) -> None:
        """Once the unit has ended: what it logged, to the last line."""
        follower, self.follower = self.follower, None
        if follower is None:
            return
        await _run(self.journalctl, "--sync")  # (root only)
        self.mark = f"runas-podman: end of the journal of this run {os.urandom(8).hex()}"
        _log(self.mark)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.marked), MARK_SECONDS)
        await _terminate(follower)
        self.relay.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.relay

    async def _relay_until_mark(self, follower: asyncio.subprocess.Process) -> None:
        assert follower.stdout is not None
        try:
            while line := await follower.stdout.readline():
                if self.mark and self.mark.encode() in line:
                    break
                _write_all(self.out, line)
        except ValueError:  # a line longer than MAX_LINE: the rest is not shown
            pass
        finally:
            if not self.marked.done():
                self.marked.set_result(None)


MAX_LINE = 16 << 20
MARK_SECONDS = 5.0  # the mark not seen by then (a journal this caller cannot read): end


def _log(message: str) -> None:
    """One entry through journald's native socket (it adds _PID and _UID itself)."""
    import socket

    entry = f"MESSAGE={message}\nPRIORITY=7\n".encode()
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(entry, "/run/systemd/journal/socket")


async def _run(*argv: str) -> None:
    process = await asyncio.create_subprocess_exec(
        *argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        await asyncio.wait_for(process.wait(), STOP_SECONDS)
    except TimeoutError:  # a journald that does not answer: the mark's own wait decides
        await _terminate(process)


async def _terminate(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), STOP_SECONDS)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    with contextlib.suppress(BrokenPipeError):
        while view:
            view = view[os.write(fd, view) :]
