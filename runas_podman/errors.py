"""Errors the tool reports as one line on stderr, each with a documented exit status.

The statuses follow podman's convention (EXIT STATUS in runas-podman(1)): 125 for a failure of the
launcher itself, 126 for a command that cannot be executed, 127 for one that is
not found, 2 for bad usage. The command's own status is passed through otherwise.
"""

from __future__ import annotations

EXIT_USAGE = 2
EXIT_LAUNCHER = 125
EXIT_CANNOT_EXECUTE = 126
EXIT_NOT_FOUND = 127


class RunasError(Exception):
    """A failure the user can act on: `message` names what is wrong and what to do."""

    def __init__(self, message: str, status: int = EXIT_LAUNCHER) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class UsageError(RunasError):
    """Bad input detected before anything was started."""

    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_USAGE)


class BusCallError(Exception):
    """An error reply from a D-Bus call: its error name and message."""

    def __init__(self, name: str, text: str) -> None:
        super().__init__(f"{name}: {text}")
        self.name = name
        self.text = text


def shown(text: str) -> str:
    """`text` quoted for a one-line message (see one_line)."""
    return "'" + one_line(text).replace("'", "\\'") + "'"


def one_line(text: str) -> str:
    """Control characters and bytes that are not UTF-8 (surrogate escapes from argv) as
    escapes, so that a message stays one printable line whatever the input held."""
    out = []
    for char in text:
        code = ord(char)
        if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
            out.append(f"\\x{code - 0xDC00:02x}")
        elif code < 0x20 or code == 0x7F or 0xD800 <= code <= 0xDFFF:
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)


def is_utf8(text: str) -> bool:
    """D-Bus strings are UTF-8: False for argv/environ bytes Python kept as surrogates."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
