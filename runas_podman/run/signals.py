"""The signals that end a client, and a future set by the first of them (asyncio only)."""

from __future__ import annotations

import asyncio
import signal

# Ctrl-C, kill, a closed terminal: each stops the unit, and the client exits 128+N.
TERMINATING_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def set_once(future: asyncio.Future[int], value: int) -> None:
    """The first value wins: later signals (or a late status) change nothing."""
    if not future.done():
        future.set_result(value)


def on_terminating_signals(loop: asyncio.AbstractEventLoop) -> asyncio.Future[int]:
    """A future that a terminating signal sets to 128+N; remove_signal_handlers() undoes it."""
    interrupted: asyncio.Future[int] = loop.create_future()
    for signum in TERMINATING_SIGNALS:
        loop.add_signal_handler(signum, set_once, interrupted, 128 + int(signum))
    return interrupted


def remove_signal_handlers(loop: asyncio.AbstractEventLoop) -> None:
    for signum in TERMINATING_SIGNALS:
        loop.remove_signal_handler(signum)
