"""The client side of a pty session: raw mode, window size, tint and title, restore.

The pty is allocated here; its peer goes to systemd as the unit's TTYPath and stdio
(as run0 does), and this end shovels bytes between the caller's terminal and it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import signal
import struct
import termios
import threading
import tty
from typing import Any

from runas_podman.core.model import ALL_THROUGH

ESC = b"\x1b"
SGR_RESETS_BACKGROUND = {b"", b"0", b"00", b"49"}
MAX_SEQUENCE = 192  # as run0: longer control sequences pass through untouched


class Tinter:
    """Keeps a background colour on everything written, as run0's pty forwarder does.

    The colour is set at the start and again after every CR/LF, after a full or soft
    terminal reset, and appended to any SGR sequence that resets the background. State
    carries across chunks, so output may arrive split anywhere.
    """

    def __init__(self, sgr: str) -> None:
        self.set_bg = ESC + b"[" + sgr.encode() + b"m"
        self.sgr = sgr.encode()
        self.pending = b""  # an unfinished escape sequence from the previous chunk

    def start(self) -> bytes:
        return self.set_bg + ESC + b"[K"

    def feed(self, data: bytes) -> bytes:
        data, self.pending = self.pending + data, b""
        out = bytearray()
        i = 0
        while i < len(data):
            byte = data[i : i + 1]
            if byte == ESC:
                end = self._sequence_end(data, i)
                if end is None:  # incomplete: keep for the next chunk (bounded)
                    if len(data) - i < MAX_SEQUENCE:
                        self.pending = data[i:]
                        break
                    end = len(data)
                out += self._rewrite(data[i:end])
                i = end
                continue
            out += byte
            if byte in (b"\n", b"\r"):
                out += self.set_bg
            i += 1
        return bytes(out)

    @staticmethod
    def _sequence_end(data: bytes, start: int) -> int | None:
        """Index after the escape sequence starting at `start`, or None if incomplete."""
        if start + 1 >= len(data):
            return None
        kind = data[start + 1 : start + 2]
        if kind == b"[":  # CSI: parameters, then a final byte 0x40-0x7e
            for j in range(start + 2, min(len(data), start + MAX_SEQUENCE)):
                if 0x40 <= data[j] <= 0x7E:
                    return j + 1
            return None if len(data) < start + MAX_SEQUENCE else start + MAX_SEQUENCE
        return start + 2  # ESC c, ESC 7, ...: two bytes (OSC and others pass through as is)

    def _rewrite(self, sequence: bytes) -> bytes:
        if sequence == ESC + b"c" or sequence == ESC + b"[!p":  # full / soft reset
            return sequence + self.set_bg
        if sequence.startswith(ESC + b"[") and sequence.endswith(b"m"):
            params = sequence[2:-1]
            if any(p in SGR_RESETS_BACKGROUND for p in params.split(b";")):
                return ESC + b"[" + params + b";" + self.sgr + b"m"
        return sequence


class ContextFilter:
    """Drops OSC 3008 sequences (`ESC ]3008;...ST`): systemd >= 258 writes this context
    (session, user, ...) to a session's terminal for terminals to show. On a stdout that
    is not a terminal it is noise in the command's output, so it is cut there."""

    START = ESC + b"]3008;"

    def __init__(self) -> None:
        self.pending = b""
        self.inside = False

    def feed(self, data: bytes) -> bytes:
        data, self.pending = self.pending + data, b""
        out = bytearray()
        while data:
            if self.inside:
                end = min(
                    (i + len(t) for t in (ESC + b"\\", b"\a") if (i := data.find(t)) >= 0),
                    default=-1,
                )
                if end < 0:
                    self.pending = data[-1:] if data.endswith(ESC) else b""
                    return bytes(out)
                data, self.inside = data[end:], False
                continue
            start = data.find(self.START)
            if start < 0:
                keep = self._partial_start(data)
                out += data[: len(data) - keep]
                self.pending = data[len(data) - keep :]
                return bytes(out)
            out += data[:start]
            data, self.inside = data[start + len(self.START) :], True
        return bytes(out)

    def _partial_start(self, data: bytes) -> int:
        """How many trailing bytes could begin START (kept for the next chunk)."""
        for size in range(min(len(self.START) - 1, len(data)), 0, -1):
            if self.START.startswith(data[-size:]):
                return size
        return 0


class PtyForwarder:
    """Shovels bytes between the caller's terminal and a fresh pty whose peer the command
    gets in place of the stdio fds `through` names: input from the caller's stdin (if
    through), output to its stdout, else its stderr, else the terminal on its stdin (echo).
    `stdio`: the caller's three fds (this process's own by default)."""

    def __init__(
        self,
        tint: str | None,
        title: str | None,
        through: tuple[bool, bool, bool] = ALL_THROUGH,
        stdio: tuple[int, int, int] = (0, 1, 2),
    ) -> None:
        self.stdio = stdio
        self.stdin = stdio[0]
        self.master, self.peer = os.openpty()
        self.path = os.ttyname(self.peer)
        os.set_blocking(self.master, False)
        self.through = through
        self.input = through[0]
        self.out = stdio[1] if through[1] else stdio[2] if through[2] else stdio[0]
        self.tinter = Tinter(tint) if tint else None
        self.context = None if os.isatty(self.out) else ContextFilter()
        self.title = title
        self.saved: list[Any] | None = None
        self.to_master = bytearray()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.started = False

    def unit_stdio(self) -> tuple[int, int, int]:
        """The command's stdin, stdout, stderr: the pty's peer, or the caller's own fd."""
        return (
            self.peer if self.through[0] else self.stdio[0],
            self.peer if self.through[1] else self.stdio[1],
            self.peer if self.through[2] else self.stdio[2],
        )

    def close_peer(self) -> None:
        if self.peer >= 0:
            os.close(self.peer)
            self.peer = -1

    def start(self) -> None:
        """Raw mode, size, tint/title; then forward until stop()."""
        self.loop = asyncio.get_running_loop()
        if self.input and os.isatty(self.stdin):
            self.saved = termios.tcgetattr(self.stdin)
            tty.setraw(self.stdin, termios.TCSANOW)
        self.sync_size()
        self.loop.add_signal_handler(signal.SIGWINCH, self.sync_size)
        head = b""
        if self.title:
            head += ESC + b"[22;2t" + ESC + b"]2;" + self.title.encode() + ESC + b"\\"
        if self.tinter:
            head += self.tinter.start()
        if head:
            self._write_out(head)
        if self.input:
            try:
                self.loop.add_reader(self.stdin, self._on_input)
            except PermissionError:  # a regular file or /dev/null: epoll cannot watch it
                self._read_input_in_thread()
        self.loop.add_reader(self.master, self._on_output)
        self.started = True

    def _read_input_in_thread(self) -> None:
        """Feed a stdin that cannot be polled (always readable: a file, /dev/null)."""
        loop = self.loop
        assert loop is not None

        def reader() -> None:
            while True:
                try:
                    data = os.read(self.stdin, 65536)
                except OSError:
                    data = b""
                if not data:
                    return
                with contextlib.suppress(RuntimeError):  # the loop closed: we are done
                    loop.call_soon_threadsafe(self._queue_input, data)

        threading.Thread(target=reader, name="stdin", daemon=True).start()

    def _queue_input(self, data: bytes) -> None:
        if self.master >= 0:
            self.to_master += data
            self._flush_to_master()

    def sync_size(self) -> None:
        with contextlib.suppress(OSError):
            size = fcntl.ioctl(self.out, termios.TIOCGWINSZ, struct.pack("HHHH", 0, 0, 0, 0))
            fcntl.ioctl(self.master, termios.TIOCSWINSZ, size)

    def _on_input(self) -> None:
        try:
            data = os.read(self.stdin, 65536)
        except OSError:
            data = b""
        if not data:
            assert self.loop is not None
            self.loop.remove_reader(self.stdin)
            return
        self._queue_input(data)

    def _flush_to_master(self) -> None:
        assert self.loop is not None
        try:
            written = os.write(self.master, self.to_master)
            del self.to_master[:written]
        except BlockingIOError:
            pass
        except OSError:
            self.to_master.clear()
        if self.to_master:
            self.loop.add_writer(self.master, self._flush_to_master)
        else:
            self.loop.remove_writer(self.master)

    def _on_output(self) -> None:
        self.drain()

    def drain(self) -> None:
        """Copy whatever the pty has for us to the caller's terminal."""
        while True:
            try:
                data = os.read(self.master, 65536)
            except BlockingIOError:
                return
            except OSError as error:
                if error.errno == errno.EIO and self.loop is not None:  # the peer is gone
                    self.loop.remove_reader(self.master)
                return
            if not data:
                return
            if self.context is not None:
                data = self.context.feed(data)
            self._write_out(self.tinter.feed(data) if self.tinter else data)

    def _write_out(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                written = os.write(self.out, view)
            except BlockingIOError:
                continue
            view = view[written:]

    def stop(self) -> None:
        """Drain, reset colours and title, restore the terminal: on every exit path."""
        if self.master < 0:
            return  # stopped already
        if self.loop is not None and not self.loop.is_closed():
            if self.input:
                self.loop.remove_reader(self.stdin)
            for remove in (self.loop.remove_reader, self.loop.remove_writer):
                remove(self.master)
            self.loop.remove_signal_handler(signal.SIGWINCH)
        if self.started:
            self.drain()
            tail = ESC + b"[0m" + ESC + b"[J" if self.tinter else b""
            if self.title:
                tail += ESC + b"[23;2t"
            self._write_out(tail)
        if self.saved is not None:
            termios.tcsetattr(self.stdin, termios.TCSADRAIN, self.saved)
            self.saved = None
        self.close_peer()
        os.close(self.master)
        self.master = -1
