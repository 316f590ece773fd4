"""-v/--verbose: the unit's journal on the caller's stdout while it runs, as systemd-run
262 shows it, and nothing of it cut off at the end.

journalctl 262 has --synchronize-on-exit: a `journalctl --follow` child, started before
the unit and sent SIGTERM after it, prints everything up to that moment (systemd-run's
own way). An older journalctl (252, 257) has no such option, and a follower ended then
may not have printed the last lines yet (measured on 257: a short unit's lines all
lost). There the follower also matches this client's own entries (journald's _PID and
_UID, which nobody can forge): once the unit has ended and the journal is synced, the
client logs a mark made only then, relays the follower's output until the mark comes
through (every earlier line before it), and ends the follower.
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

    def __init__(self, follower: asyncio.subprocess.Process, marking: bool, out: int) -> None:
        self.follower: asyncio.subprocess.Process | None = follower
        self.marking = marking  # False: journalctl synchronizes on exit itself
        self.mark = ""  # made at stop(): nobody can have written it before
        self.out = out
        self.relay: asyncio.Task[None] | None = None
        self.marked: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @classmethod
    async def start(cls, plan: LaunchPlan, output: str, out: int, err: int) -> JournalView:
        journalctl = lookup.executable("journalctl", "systemd")
        synchronized = await _has_synchronize_on_exit(journalctl)
        # From now, by the clock: `--lines=0` starts at the journal's end as journalctl
        # finds it, which can be later than the unit's first lines.
        argv = [journalctl, "-q", "--follow", "--no-pager", f"--since=@{time.time():.6f}",
                "--lines=all", f"--output={output}", *unit_matches(plan)]  # fmt: skip
        if synchronized:
            argv.insert(4, "--synchronize-on-exit=yes")
        else:  # and this process's own entries (the mark): _PID, _UID are journald's
            argv += ["+", f"_PID={os.getpid()}", f"_UID={os.geteuid()}"]
        follower = await asyncio.create_subprocess_exec(
            *argv, stdin=subprocess.DEVNULL, stderr=err,
            stdout=out if synchronized else subprocess.PIPE, limit=MAX_LINE,
        )  # fmt: skip
        view = cls(follower, not synchronized, out)
        if view.marking:
            view.relay = asyncio.ensure_future(view._relay_until_mark(follower))
        return view

    async def stop(self) -> None:
        """Once the unit has ended: what it logged, to the last line."""
        follower, self.follower = self.follower, None
        if follower is None:
            return
        if self.marking:
            await _run(lookup.executable("journalctl", "systemd"), "--sync")  # (root only)
            self.mark = f"runas-podman: end of the journal of this run {os.urandom(8).hex()}"
            _log(self.mark)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.marked), MARK_SECONDS)
        await _terminate(follower)
        if self.relay is not None:
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
MARK_SECONDS = 3.0  # the mark not seen by then (a journal this caller cannot read): end


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


async def _has_synchronize_on_exit(journalctl: str) -> bool:
    """Options are parsed in order: an unknown one fails before --version answers."""
    probe = await asyncio.create_subprocess_exec(
        journalctl, "--synchronize-on-exit=yes", "--version", stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return await probe.wait() == 0


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    with contextlib.suppress(BrokenPipeError):
        while view:
            view = view[os.write(fd, view) :]
