"""A client elsewhere (the root broker's caller): what a session run for it needs, the
same record for the systemd session (run.session) and the native one (run.native)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import NamedTuple


class Remote(NamedTuple):
    """Its stdio fds and pty (named from those fds), a watch the runner starts in its
    loop (the future it returns ends the session: the client went away), and what to
    tell it once the command runs."""

    stdio_fds: tuple[int, int, int]
    tty_path: str | None
    watch_client: Callable[[], asyncio.Future[int]]
    on_started: Callable[[], None]
