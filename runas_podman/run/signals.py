"""The signals that end a client, and a future set by the first of them (asyncio only).

Re-entrant: any number of launches may wait in one event loop; each gets its own future,
a signal sets all of them, and the loop's handlers go when the last launch is done.
"""

from __future__ import annotations

import asyncio
import signal
import weakref

# Ctrl-C, kill, a closed terminal: each stops the unit, and the client exits 128+N.
TERMINATING_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

# The futures waiting in each loop (a loop's handlers are installed while it has any).
_WAITING: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, list[asyncio.Future[int]]] = (
    weakref.WeakKeyDictionary()
)


def set_once(future: asyncio.Future[int], value: int) -> None:
    """The first value wins: later signals (or a late status) change nothing."""
    if not future.done():
        future.set_result(value)


def _deliver(loop: asyncio.AbstractEventLoop, status: int) -> None:
    for future in list(_WAITING.get(loop, ())):
        set_once(future, status)


def on_terminating_signals(loop: asyncio.AbstractEventLoop) -> asyncio.Future[int]:
    """A future that a terminating signal sets to 128+N; release(loop, future) ends it."""
    interrupted: asyncio.Future[int] = loop.create_future()
    waiting = _WAITING.setdefault(loop, [])
    if not waiting:
        for signum in TERMINATING_SIGNALS:
            loop.add_signal_handler(signum, _deliver, loop, 128 + int(signum))
    waiting.append(interrupted)
    return interrupted


def release(loop: asyncio.AbstractEventLoop, interrupted: asyncio.Future[int]) -> None:
    """This launch no longer listens; the last one to go removes the loop's handlers."""
    waiting = _WAITING.get(loop, [])
    if interrupted in waiting:
        waiting.remove(interrupted)
    if not waiting and not loop.is_closed():
        for signum in TERMINATING_SIGNALS:
            loop.remove_signal_handler(signum)
