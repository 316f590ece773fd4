"""Errors the tool reports as one line on stderr, each with a documented exit status.

The statuses follow podman's convention (EXIT STATUS in runas-podman(1)): 125 for a failure of the
launcher itself, 126 for a command that cannot be executed, 127 for one that is
not found, 2 for bad usage. The command's own status is passed through otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable

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


# Bidirectional controls reorder what a terminal shows (a command that reads as another).
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                          "\u2066\u2067\u2068\u2069")  # fmt: skip
LINE_SEPARATORS = frozenset("\u2028\u2029")


def is_control(char: str) -> bool:
    """C0 (newline included), DEL, C1: the characters that make or move lines and
    sequences on a terminal, and break a line-based file such as a unit file."""
    code = ord(char)
    return code < 0x20 or 0x7F <= code <= 0x9F


# Letters that show as nothing (Hangul fillers): 'a\u3164b' must not read as 'ab'.
INVISIBLE_LETTERS = frozenset("\u115f\u1160\u3164\uffa0")
# Unicode categories never shown raw: format characters (bidi controls, zero-width
# spaces and joiners, soft hyphen, BOM), line and paragraph separators, private use,
# unassigned, surrogates; spaces other than ' ' (a no-break space reads as a space).
ESCAPED_CATEGORIES = frozenset({"Cf", "Zl", "Zp", "Co", "Cn", "Cs", "Zs"})


def needs_escape(char: str) -> bool:
    """What text shown to people never carries raw: controls, and every character that
    shows as something else or as nothing (so two different texts never look alike),
    and bytes that were not UTF-8 (surrogate escapes from argv)."""
    code = ord(char)
    if code < 0x80:
        return code < 0x20 or code == 0x7F
    if is_control(char) or char in BIDI_CONTROLS or char in LINE_SEPARATORS:
        return True
    if char in INVISIBLE_LETTERS or 0xD800 <= code <= 0xDFFF:
        return True
    import unicodedata  # only for text beyond ASCII

    return unicodedata.category(char) in ESCAPED_CATEGORIES


def _escape(char: str) -> str:
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x80:
        return {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\x1b": "\\e"}.get(char, f"\\x{code:02x}")
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def one_line(text: str) -> str:
    """THE escaper of text for people (messages, logs, prompts): every character of
    needs_escape() as a visible escape, so a line stays one printable line that shows
    what it holds, whatever the input was."""
    if not any(needs_escape(char) for char in text):
        return text
    return "".join(_escape(char) if needs_escape(char) else char for char in text)


def shell_quote(word: str) -> str:
    """One shell word as a person may read and paste it: shlex.quote, or bash's $'...'
    with escapes when the word holds anything one_line escapes."""
    import shlex

    if not any(needs_escape(char) for char in word):
        return shlex.quote(word)
    body = "".join(
        _escape(char) if needs_escape(char) else ("\\" + char if char in "\\'" else char)
        for char in word
    )
    return f"$'{body}'"


def truncated(text: str, limit: int) -> str:
    """TEXT cut to LIMIT characters, the cut marked (a log line never hides that more
    followed)."""
    return text if len(text) <= limit else text[: limit - len(CUT)] + CUT


CUT = "…[truncated]"


def shell_join(words: Iterable[str]) -> str:
    """A command line for people (descriptions, polkit messages, --dry-run): each word
    through shell_quote, so no control or bidi character is ever shown raw."""
    return " ".join(shell_quote(word) for word in words)


def is_utf8(text: str) -> bool:
    """D-Bus strings are UTF-8: False for argv/environ bytes Python kept as surrogates."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
