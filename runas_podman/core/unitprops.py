"""Parse `-p NAME=VALUE` the way `systemd-run -p` does: text in, D-Bus properties out.

Every setting systemd-run takes for a service (src/shared/bus-unit-util.c: its cgroup,
execute, kill, service and unit tables, systemd 258) is one row of SETTINGS: its name,
family, parser, what it sends, its value syntax and a one-line description.
KNOWN_PROPERTIES, HANDLERS, describe_properties() and docs/properties.md derive from the
rows. Some settings are renamed on the wire, as systemd-run renames them
(EnvironmentFile= is sent as EnvironmentFiles, RuntimeMaxSec= as RuntimeMaxUSec, ...).

The parsers are systemd's own, rewritten: extract_first_word() (quotes, C escapes),
safe_atou() and friends (C integer syntax: 0x.., 0o.., 0b.., a leading 0 is octal; ASCII
digits only), parse_size(), parse_time(), parse_permyriad(), parse_cpu_set(),
in_addr_prefix_from_string_auto(), ... A value systemd-run would refuse raises
PropertyValueError with the reason; so does one the manager is known to refuse (a word
not in its table, a relative path where it wants an absolute one, a bad unit name), so
nothing starts with a setting that cannot work. Pure, except NUMAMask=all (which, as in
systemd, counts the NUMA nodes in /sys).
"""

from __future__ import annotations

import base64
import binascii
import difflib
import errno
import ipaddress
import os
import re
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from runas_podman.core.errors import UsageError, shown
from runas_podman.core.unit import UnitProperty as UnitProperty
from runas_podman.core.unit import fdname_is_valid, unit_name_is_valid

UINT64_MAX = 2**64 - 1
UINT32_MAX = 2**32 - 1
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
USEC_PER_SEC = 1_000_000
WHITESPACE = " \t\n\r"  # systemd's WHITESPACE
_C_SPACE = " \t\n\v\f\r"  # what strtol() skips
_DIGITS = "0123456789"


class PropertyValueError(ValueError):
    """A value that does not parse; the caller adds which property it was."""


# --- words: systemd's extract_first_word() ----------------------------------------------

_SIMPLE_ESCAPES = {
    "a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11,
    "\\": 92, '"': 34, "'": 39, "s": 32,
}  # fmt: skip
_HEX = "0123456789abcdefABCDEF"
_OCTAL = "01234567"


def _unichar_is_valid(c: int) -> bool:
    return (
        c < 0x110000
        and (c & 0xFFFFF800) != 0xD800
        and not 0xFDD0 <= c <= 0xFDEF
        and (c & 0xFFFE) != 0xFFFE
    )


def _cunescape_one(text: str, at: int, accept_nul: bool) -> tuple[bytes, int] | None:
    """The escape after a backslash, text[at:]: (its bytes, its length), None if invalid."""
    c = text[at]
    if c in _SIMPLE_ESCAPES:
        return bytes([_SIMPLE_ESCAPES[c]]), 1
    if c in "xuU":
        width = {"x": 2, "u": 4, "U": 8}[c]
        digits = text[at + 1 : at + 1 + width]
        if len(digits) < width or any(d not in _HEX for d in digits):
            return None
        value = int(digits, 16)
        if value == 0 and not accept_nul:
            return None
        if c == "x":  # one byte, as given (not UTF-8 encoded)
            return bytes([value]), 3
        if not _unichar_is_valid(value):
            return None
        return chr(value).encode(), 1 + width
    if c in _OCTAL:
        digits = text[at : at + 3]
        if len(digits) < 3 or any(d not in _OCTAL for d in digits):
            return None
        value = int(digits, 8)
        if (value == 0 and not accept_nul) or value > 255:
            return None
        return bytes([value]), 3
    return None


def _utf8(data: bytes | bytearray, text: str) -> str:
    try:
        return bytes(data).decode()
    except UnicodeDecodeError:
        raise PropertyValueError(f"{shown(text)} is not valid UTF-8 once unescaped") from None


@dataclass(frozen=True)
class Split:
    """extract_first_word()'s flags."""

    unquote: bool = False  # EXTRACT_UNQUOTE: '…' and "…" group
    cunescape: bool = False  # EXTRACT_CUNESCAPE: \n, \x41, \u00e9 ...
    dont_coalesce: bool = False  # EXTRACT_DONT_COALESCE_SEPARATORS: empty words count
    retain_escape: bool = False  # EXTRACT_RETAIN_ESCAPE: backslashes kept as they are
    unescape_separators: bool = False  # EXTRACT_UNESCAPE_SEPARATORS: \: is a ':'


_PLAIN = Split()
_UNQUOTE = Split(unquote=True)
_UNQUOTE_CUNESCAPE = Split(unquote=True, cunescape=True)
_FIELDS = Split(dont_coalesce=True)  # NAME:VALUE splitting as systemd does it


def _extract(text: str, pos: int | None, seps: str, how: Split) -> tuple[str | None, int | None]:
    """extract_first_word() at text[pos:]: (word, where the rest starts).

    The word is None when there is none left; the position is None at the end (systemd's
    NULL), else just after the separator that ended the word (text[pos - 1] is it).
    """
    if pos is None:
        return None, None
    n = len(text)
    while pos < n and text[pos] in seps:
        if how.dont_coalesce:
            return "", pos + 1
        pos += 1
    if pos == n:
        return ("" if how.dont_coalesce else None), None
    out = bytearray()
    quote = ""
    while pos < n:
        c = text[pos]
        if c == "\\" and not how.retain_escape:
            pos += 1
            if pos == n:
                raise PropertyValueError(f"{shown(text)} ends in a lone backslash")
            if how.cunescape or how.unescape_separators:
                escaped = _cunescape_one(text, pos, False) if how.cunescape else None
                if escaped is not None:
                    out += escaped[0]
                    pos += escaped[1]
                    continue
                if not (how.unescape_separators and text[pos] in seps):
                    raise PropertyValueError(
                        f"{shown(text)} has an unknown escape {shown(text[pos - 1 : pos + 1])}"
                    )
            out += text[pos].encode(errors="surrogatepass")
            pos += 1
        elif quote:
            if c == quote:
                quote = ""
            else:
                out += c.encode(errors="surrogatepass")
            pos += 1
        elif c in "'\"" and how.unquote:
            quote = c
            pos += 1
        elif c in seps:
            if how.dont_coalesce:
                return _utf8(out, text), pos + 1
            while pos < n and text[pos] in seps:
                pos += 1
            return _utf8(out, text), (None if pos == n else pos)
        else:
            out += c.encode(errors="surrogatepass")
            pos += 1
    if quote:
        raise PropertyValueError(f"{shown(text)} has an unterminated {quote} quote")
    return _utf8(out, text), None


def extract_word(
    text: str | None, seps: str = WHITESPACE, how: Split = _PLAIN
) -> tuple[str | None, str | None]:
    """extract_first_word() on a string: (word or None, the rest or None at the end)."""
    if text is None:
        return None, None
    word, pos = _extract(text, 0, seps, how)
    return word, (None if pos is None else text[pos:])


def _words(text: str, how: Split = _UNQUOTE, seps: str = WHITESPACE) -> list[str]:
    words: list[str] = []
    pos: int | None = 0
    while True:
        word, pos = _extract(text, pos, seps, how)
        if word is None:
            return words
        words.append(word)


def _extract_many(
    text: str, pos: int | None, count: int, seps: str, how: Split
) -> tuple[list[str], int | None]:
    """extract_many_words(): up to `count` words (fewer at the end)."""
    found: list[str] = []
    for _ in range(count):
        word, pos = _extract(text, pos, seps, how)
        if word is None:
            break
        found.append(word)
    return found, pos


def split_words(text: str) -> list[str]:
    """Split like systemd's extract_first_word(EXTRACT_UNQUOTE|EXTRACT_CUNESCAPE).

    Words are separated by whitespace; single or double quotes group; backslash
    escapes (C style: \\n, \\t, \\xNN, \\uNNNN, \\NNN octal, ...) work inside and
    outside quotes.
    """
    return _words(text, _UNQUOTE_CUNESCAPE)


def cunescape(text: str, accept_nul: bool = False) -> bytes:
    """systemd's cunescape(): every C escape in `text` resolved, as bytes."""
    out = bytearray()
    pos = 0
    while pos < len(text):
        c = text[pos]
        if c != "\\":
            out += c.encode(errors="surrogatepass")
            pos += 1
            continue
        if pos + 1 == len(text):
            raise PropertyValueError(f"{shown(text)} ends in a lone backslash")
        escaped = _cunescape_one(text, pos + 1, accept_nul)
        if escaped is None:
            raise PropertyValueError(
                f"{shown(text)} has an invalid escape {shown(text[pos : pos + 2])}"
            )
        out += escaped[0]
        pos += 1 + escaped[1]
    return bytes(out)


# --- numbers: safe_atou(), safe_atoi(), ... (C syntax, ASCII digits only) ---------------

_BASE_DIGITS = {2: "01", 8: _OCTAL, 10: _DIGITS, 16: _HEX}


def _strtol(text: str, base: int) -> tuple[int | None, str]:
    """C strtol()/strtoul() in `base` (0: C prefixes): (signed value or None, rest)."""
    i = 0
    while i < len(text) and text[i] in _C_SPACE:
        i += 1
    sign = 1
    if text[i : i + 1] in ("+", "-"):
        sign = -1 if text[i] == "-" else 1
        i += 1
    if base in (0, 16) and text[i : i + 2] in ("0x", "0X") and text[i + 2 : i + 3] in set(_HEX):
        base, i = 16, i + 2
    elif base == 0:
        base = 8 if text[i : i + 1] == "0" else 10
    end = i
    while end < len(text) and text[end] in _BASE_DIGITS[base]:
        end += 1
    if end == i:
        return None, text
    return sign * int(text[i:end], base), text[end:]


def _safe_ato(text: str, low: int, high: int, base: int = 0, refuse_sign: bool = False) -> int:
    """safe_atou()/safe_atoi()/...: a whole C integer in low..high."""
    what = {8: "an octal number", 16: "a hex number"}.get(base, "an integer")
    s = text.lstrip(WHITESPACE)
    if refuse_sign and s[:1] in ("+", "-"):
        raise PropertyValueError(f"{shown(text)} is not {what} (no sign allowed)")
    if base == 0 and s[:2] in ("0b", "0B", "0o", "0O"):  # systemd's mangle_base()
        base, s = (2 if s[1] in "bB" else 8), s[2:]
    value, rest = _strtol(s, base)
    if value is None or rest:
        raise PropertyValueError(f"{shown(text)} is not {what} (ASCII digits only)")
    if not low <= value <= high:
        raise PropertyValueError(f"{value} is out of range {low}..{high}")
    return value


def _atou32(text: str) -> int:
    return _safe_ato(text, 0, UINT32_MAX)


def _atou64(text: str) -> int:
    return _safe_ato(text, 0, UINT64_MAX)


def _atoi32(text: str) -> int:
    return _safe_ato(text, -(2**31), INT32_MAX)


def _atou8(text: str) -> int:
    return _safe_ato(text, 0, 255)


# --- booleans, sizes, times, percentages ---------------------------------------------------

_TRUE = {"1", "yes", "y", "true", "t", "on"}
_FALSE = {"0", "no", "n", "false", "f", "off"}


def parse_boolean(text: str) -> bool:
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise PropertyValueError(
        f"{shown(text)} is not a boolean (use yes/no, true/false, on/off, 1/0)"
    )


def _maybe_boolean(text: str) -> bool | None:
    try:
        return parse_boolean(text)
    except PropertyValueError:
        return None


_SIZE_SUFFIXES = ("E", "P", "T", "G", "M", "K", "B", "")


def parse_size(text: str, base: int = 1024) -> int:
    """Bytes from '512M', '1.5G', '1G 512M' like systemd's parse_size() (units must
    decrease: '1G 512M', not '512M 1G'); base 1024, or 1000 for bandwidths."""
    bad = PropertyValueError(f"{shown(text)} is not a size (e.g. 512M, 1.5G, 2T)")
    factors = (base**6, base**5, base**4, base**3, base**2, base, 1, 1)
    total, start, p, n = 0, 0, 0, len(text)
    while True:
        while p < n and text[p] in WHITESPACE:
            p += 1
        if text[p : p + 1] == "-":
            raise bad
        value, rest = _strtol(text[p:], 10)
        if value is None or value < 0 or value > UINT64_MAX:
            raise bad
        e = n - len(rest)
        fraction = 0.0
        if text[e : e + 1] == ".":
            e += 1
            end = e
            while end < n and text[end] in _DIGITS:
                end += 1
            if end > e:
                if int(text[e:end]) > UINT64_MAX:
                    raise bad
                fraction = float(int(text[e:end]))
                for _ in range(end - e):
                    fraction /= 10  # as systemd does it, in doubles
                e = end
        while e < n and text[e] in WHITESPACE:
            e += 1
        for i in range(start, len(_SIZE_SUFFIXES)):
            if text.startswith(_SIZE_SUFFIXES[i], e):
                break
        else:
            raise bad
        factor = factors[i]
        if value + (fraction > 0) > UINT64_MAX // factor:
            raise bad
        part = value * factor + int(fraction * factor)
        if part > UINT64_MAX - total:
            raise bad
        total += part
        p = e + len(_SIZE_SUFFIXES[i])
        start = i + 1
        if p >= n:
            return total


_USEC_PER_MONTH = 2_629_800 * USEC_PER_SEC
_USEC_PER_YEAR = 31_557_600 * USEC_PER_SEC
# systemd's extract_multiplier() table, in its order (the first prefix that matches wins).
_USEC_UNITS: tuple[tuple[str, int], ...] = (
    ("seconds", USEC_PER_SEC), ("second", USEC_PER_SEC), ("sec", USEC_PER_SEC),
    ("s", USEC_PER_SEC), ("minutes", 60 * USEC_PER_SEC), ("minute", 60 * USEC_PER_SEC),
    ("min", 60 * USEC_PER_SEC), ("months", _USEC_PER_MONTH), ("month", _USEC_PER_MONTH),
    ("M", _USEC_PER_MONTH), ("msec", 1000), ("ms", 1000), ("m", 60 * USEC_PER_SEC),
    ("hours", 3600 * USEC_PER_SEC), ("hour", 3600 * USEC_PER_SEC), ("hr", 3600 * USEC_PER_SEC),
    ("h", 3600 * USEC_PER_SEC), ("days", 86400 * USEC_PER_SEC), ("day", 86400 * USEC_PER_SEC),
    ("d", 86400 * USEC_PER_SEC), ("weeks", 604800 * USEC_PER_SEC),
    ("week", 604800 * USEC_PER_SEC), ("w", 604800 * USEC_PER_SEC),
    ("years", _USEC_PER_YEAR), ("year", _USEC_PER_YEAR), ("y", _USEC_PER_YEAR),
    ("usec", 1), ("us", 1), ("\u03bcs", 1), ("\u00b5s", 1),
)  # fmt: skip
_NSEC_UNITS = (
    *((suffix, usec * 1000) for suffix, usec in _USEC_UNITS),
    ("nsec", 1), ("ns", 1), ("", 1),
)  # fmt: skip


def _parse_time(text: str, default_unit: int, units: Sequence[tuple[str, int]]) -> int:
    """systemd's parse_time(): '90', '1.5s', '5min 20s', 'infinity' (UINT64_MAX)."""
    bad = PropertyValueError(f"{shown(text)} is not a time span (e.g. 90, 500ms, 5min 20s)")
    n = len(text)
    p = len(text) - len(text.lstrip(WHITESPACE))
    if text.startswith("infinity", p):
        if any(c not in WHITESPACE for c in text[p + 8 :]):
            raise bad
        return UINT64_MAX
    total, something = 0, False
    while True:
        while p < n and text[p] in WHITESPACE:
            p += 1
        if p == n:
            if not something:
                raise bad
            return total
        if text[p] == "-":
            raise bad
        value, rest = _strtol(text[p:], 10)
        if value is not None and not 0 <= value <= INT64_MAX:
            raise bad
        e = n - len(rest) if value is not None else p
        if text[e : e + 1] == ".":
            p = e + 1
            while p < n and text[p] in _DIGITS:
                p += 1
        elif value is None:
            raise bad
        else:
            p = e
        at = p
        while at < n and text[at] in WHITESPACE:
            at += 1
        multiplier, s = default_unit, at
        for suffix, factor in units:
            if text.startswith(suffix, at):
                multiplier, s = factor, at + len(suffix)
                break
        if s == p and s < n:
            raise bad  # '12.34.56', '1KB'
        p = s
        whole = value or 0
        if whole >= UINT64_MAX // multiplier or whole * multiplier >= UINT64_MAX - total:
            raise bad
        total += whole * multiplier
        something = True
        if text[e : e + 1] == ".":
            m, b = multiplier // 10, e + 1
            while b < n and text[b] in _DIGITS:
                if int(text[b]) * m >= UINT64_MAX - total:
                    raise bad
                total += int(text[b]) * m
                b, m = b + 1, m // 10
            if b == e + 1:
                raise bad  # '3.sec', '3. 1'


def parse_timespan_usec(text: str) -> int:
    """Microseconds from '90', '1.5s', '5min 20s', 'infinity', like systemd's parse_sec()."""
    return _parse_time(text, USEC_PER_SEC, _USEC_UNITS)


def parse_timespan_nsec(text: str) -> int:
    """Nanoseconds, like systemd's parse_nsec() (a bare number is nanoseconds)."""
    return _parse_time(text, 1, _NSEC_UNITS)


def _whole(number: str, text: str) -> int:
    value = _safe_ato(number, -(2**31), INT32_MAX)
    if value < 0:
        raise PropertyValueError(f"{shown(text)} is negative")
    return value


def _with_decimals(text: str, symbol: str, places: int) -> int:
    """parse_parts_value_with_*_place(): 'N.NN%' in units of 1/10**places of `symbol`."""
    number = text.removesuffix(symbol)
    whole, dot, decimals = number.partition(".")
    if dot and (not 1 <= len(decimals) <= places or any(d not in _DIGITS for d in decimals)):
        raise PropertyValueError(f"{shown(text)} takes at most {places} decimal(s)")
    value = _whole(whole, text)
    fraction = int(decimals.ljust(places, "0")) if dot else 0
    unit = 10 if places == 1 else 100
    if value > (INT32_MAX - fraction) // unit:
        raise PropertyValueError(f"{shown(text)} is too large")
    return value * unit + fraction


def parse_permyriad(text: str, bounded: bool = True) -> int:
    """systemd's parse_permyriad(): '50%', '12.34%', '5‰', '5.5‰', '5‱' -> 1/10000ths."""
    if text.endswith("\u2031"):  # ‱
        value = _whole(text[:-1], text)
    elif text.endswith("\u2030"):  # ‰
        value = _with_decimals(text, "\u2030", 1)
    elif text.endswith("%"):
        value = _with_decimals(text, "%", 2)
    else:
        raise PropertyValueError(f"{shown(text)} is not a percentage (e.g. 50%, 12.5%)")
    if bounded and value > 10000:
        raise PropertyValueError(f"{shown(text)} is above 100%")
    return value


def _scale(permyriad: int) -> int:
    """UINT32_SCALE_FROM_PERMYRIAD(): 100% is UINT32_MAX, rounded to the closest."""
    return (min(max(permyriad, 0), 10000) * UINT32_MAX + 5000) // 10000


def _percentage_or_none(text: str) -> int | None:
    try:
        return parse_permyriad(text)
    except PropertyValueError:
        return None


# --- names and paths the manager checks -------------------------------------------------

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def path_is_normalized(path: str) -> bool:
    """path_is_normalized(): no '.', '..' or empty components, no trailing slash."""
    if not path or len(path) >= 4096 or "//" in path or (path.endswith("/") and path != "/"):
        return False
    return all(part not in (".", "..") for part in path.split("/"))


def path_simplify(path: str) -> str:
    """path_simplify(): '//' and '.' components and a trailing '/' dropped."""
    absolute = path.startswith("/")
    parts = [part for part in path.split("/") if part not in ("", ".")]
    simplified = ("/" if absolute else "") + "/".join(parts)
    return simplified or ("." if path else "")


def credential_name_is_valid(name: str) -> bool:
    """credential_name_valid(): a file name that is also a valid fd name."""
    return (
        name not in ("", ".", "..")
        and len(name) <= 255
        and all(" " <= c <= "~" and c not in ":/" for c in name)
    )


def _absolute(path: str, what: str = "path") -> str:
    if not path.startswith("/"):
        raise PropertyValueError(f"{what} {shown(path)} is not absolute")
    return path


def _normalized_absolute(path: str, what: str = "path") -> str:
    if not path.startswith("/") or not path_is_normalized(path):
        raise PropertyValueError(f"{what} {shown(path)} is not an absolute, normalized path")
    return path


# --- property handlers --------------------------------------------------------------------

Handler = Callable[[str, str], list[UnitProperty]]


def _one(name: str, signature: str, value: object) -> list[UnitProperty]:
    return [UnitProperty(name, signature, value)]


def _string(name: str, value: str) -> list[UnitProperty]:
    return _one(name, "s", value)


def _boolean(name: str, value: str) -> list[UnitProperty]:
    return _one(name, "b", parse_boolean(value))


def _strv(name: str, value: str) -> list[UnitProperty]:
    return _one(name, "as", _words(value, _UNQUOTE))


def _choice(*choices: str, boolean: bool = False) -> Handler:
    """A word from the manager's table (`boolean`: yes/no spellings too, case-insensitive)."""

    def handler(name: str, value: str) -> list[UnitProperty]:
        if value not in choices and not (boolean and _maybe_boolean(value) is not None):
            known = ", ".join((*choices, "yes", "no") if boolean else choices)
            raise PropertyValueError(f"{shown(value)} is not one of: {known}")
        return _one(name, "s", value)

    return handler


def _unit_names(name: str, value: str) -> list[UnitProperty]:
    units = _words(value, _UNQUOTE)
    for unit in units:
        if not unit_name_is_valid(unit):
            raise PropertyValueError(f"{shown(unit)} is not a unit name (e.g. network.target)")
    return _one(name, "as", units)


def _slice(name: str, value: str) -> list[UnitProperty]:
    if not unit_name_is_valid(value) or not value.endswith(".slice") or "@" in value:
        raise PropertyValueError(f"{shown(value)} is not a slice name (e.g. system.slice)")
    return _one(name, "s", value)


def _path_list(prefixes: str) -> Handler:
    """Absolute paths, each optionally after the one-character prefixes allowed."""

    def handler(name: str, value: str) -> list[UnitProperty]:
        paths = _words(value, _UNQUOTE)
        for path in paths:
            bare = path
            for prefix in prefixes:
                bare = bare.removeprefix(prefix)
            _absolute(bare)
        return _one(name, "as", paths)

    return handler


def _relative_dirs(name: str, value: str) -> list[UnitProperty]:
    dirs = _words(value, _UNQUOTE)
    for directory in dirs:
        if directory.startswith("/") or not path_is_normalized(directory):
            raise PropertyValueError(f"{shown(directory)} must be a relative, normalized path")
    return _one(name, "as", dirs)


_DOC_SCHEMES = ("http://", "https://", "file:/", "info:", "man:")


def _documentation(name: str, value: str) -> list[UnitProperty]:
    urls = _words(value, _UNQUOTE)
    for url in urls:
        scheme = next((s for s in _DOC_SCHEMES if url.startswith(s)), None)
        if scheme is None or url == scheme or not url.isascii():
            raise PropertyValueError(f"{shown(url)} is not an http(s)://, file:, info: or man: URL")
    return _one(name, "as", urls)


def _usec(name: str, value: str) -> list[UnitProperty]:
    """…Sec= settings: a time span, sent as …USec in microseconds."""
    return _one(name.removesuffix("Sec") + "USec", "t", parse_timespan_usec(value))


def _usec_or_infinity(name: str, value: str) -> list[UnitProperty]:
    return _usec(name, value or "infinity")


def _timeout(name: str, value: str) -> list[UnitProperty]:
    """TimeoutSec= sets both TimeoutStartSec= and TimeoutStopSec=."""
    usec = parse_timespan_usec(value)
    return [UnitProperty("TimeoutStartUSec", "t", usec), UnitProperty("TimeoutStopUSec", "t", usec)]


def _nsec(name: str, value: str) -> list[UnitProperty]:
    return _one(name, "t", parse_timespan_nsec(value))


def _u32(name: str, value: str) -> list[UnitProperty]:
    return _one(name, "u", _atou32(value))


def _ranged_int(low: int, high: int) -> Handler:
    def handler(name: str, value: str) -> list[UnitProperty]:
        return _one(name, "i", _safe_ato(value, low, high))

    return handler


def _mode(name: str, value: str) -> list[UnitProperty]:
    """parse_mode(): octal, at most 07777."""
    return _one(name, "u", _safe_ato(value, 0, 0o7777, base=8, refuse_sign=True))


def _lookup(table: dict[str, int], numbers_up_to: int | None = None) -> Handler:
    """A name from systemd's string table (or a number up to `numbers_up_to`), as 'i'."""

    def handler(name: str, value: str) -> list[UnitProperty]:
        if value in table:
            return _one(name, "i", table[value])
        if numbers_up_to is not None:
            try:
                return _one(name, "i", _safe_ato(value, 0, numbers_up_to))
            except PropertyValueError:
                pass
            names = f"{', '.join(table)} or 0..{numbers_up_to}"
        else:
            names = ", ".join(table)
        raise PropertyValueError(f"{shown(value)} is not one of: {names}")

    return handler


_SIGNAL_NAMES = (
    "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2",
    "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG",
    "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "PWR", "SYS",
)  # fmt: skip
SIGNALS = {
    name: int(getattr(signal, "SIG" + name))
    for name in _SIGNAL_NAMES
    if hasattr(signal, "SIG" + name)
}


def signal_from_string(text: str) -> int:
    """systemd's signal_from_string(): 15, TERM, SIGTERM, RTMIN+3, SIGRTMAX-1 (case matters)."""
    bad = PropertyValueError(f"{shown(text)} is not a signal name or number (e.g. SIGTERM, 15)")
    try:
        number = _atoi32(text)
    except PropertyValueError:
        pass
    else:
        if not 0 < number < signal.NSIG:
            raise PropertyValueError(f"{number} is out of range 1..{signal.NSIG - 1}")
        return number
    name = text.removeprefix("SIG")
    if name in SIGNALS:
        return SIGNALS[name]
    rtmin, rtmax = int(signal.SIGRTMIN), int(signal.SIGRTMAX)
    if name in ("RTMIN", "RTMAX"):
        return rtmin if name == "RTMIN" else rtmax
    if name.startswith("RTMIN+"):
        offset = _atoi32(name[5:])  # "+N", read with its sign as systemd does
        if not 0 <= offset <= rtmax - rtmin:
            raise PropertyValueError(f"{shown(text)} is out of range RTMIN..RTMAX")
        return rtmin + offset
    if name.startswith("RTMAX-"):
        offset = _atoi32(name[5:])
        if not rtmin - rtmax <= offset <= 0:
            raise PropertyValueError(f"{shown(text)} is out of range RTMIN..RTMAX")
        return rtmax + offset
    raise bad


def _signal(name: str, value: str) -> list[UnitProperty]:
    return _one(name, "i", signal_from_string(value))


# Capability numbers from linux/capability.h (0..40).
CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN",
    "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON",
    "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)  # fmt: skip


def _capability(word: str) -> int:
    """capability_from_name(): CAP_NET_ADMIN (any case) or a number below 63."""
    try:
        return _safe_ato(word, 0, 62)
    except PropertyValueError:
        pass
    if word.upper() in CAPABILITIES:
        return CAPABILITIES.index(word.upper())
    # systemd-run drops an unknown name without a word: refused here, it is a typo.
    raise PropertyValueError(f"{shown(word)} is not a capability name (e.g. CAP_NET_ADMIN)")


def _capabilities(name: str, value: str) -> list[UnitProperty]:
    """`CAP_A CAP_B`, or `~CAP_A` for all but those (`~` alone: all), as a bit mask."""
    invert = value.startswith("~")
    mask = 0
    for word in _words(value.removeprefix("~"), _UNQUOTE):
        mask |= 1 << _capability(word)
    return _one(name, "t", (~mask & UINT64_MAX) if invert else mask)


_SECURE_BITS = {
    "noroot": 0, "noroot-locked": 1, "no-setuid-fixup": 2, "no-setuid-fixup-locked": 3,
    "keep-caps": 4, "keep-caps-locked": 5, "no-cap-ambient-raise": 6,
    "no-cap-ambient-raise-locked": 7, "exec-restrict-file": 8, "exec-restrict-file-locked": 9,
    "exec-deny-interactive": 10, "exec-deny-interactive-locked": 11,
}  # fmt: skip


def _secure_bits(name: str, value: str) -> list[UnitProperty]:
    bits = 0
    for word in _words(value, _UNQUOTE):
        if word not in _SECURE_BITS:  # systemd-run drops it silently: refused, it is a typo
            raise PropertyValueError(f"{shown(word)} is not one of: {', '.join(_SECURE_BITS)}")
        bits |= 1 << _SECURE_BITS[word]
    return _one(name, "i", bits)


_NAMESPACES = {
    "cgroup": 0x02000000, "ipc": 0x08000000, "net": 0x40000000, "mnt": 0x00020000,
    "pid": 0x20000000, "user": 0x10000000, "uts": 0x04000000, "time": 0x00000080,
}  # fmt: skip
_ALL_NAMESPACES = sum(_NAMESPACES.values())


def _namespaces(name: str, value: str) -> list[UnitProperty]:
    """RestrictNamespaces= (the namespaces kept: yes is none) and DelegateNamespaces=."""
    every = _ALL_NAMESPACES & ~(_NAMESPACES["user"] if name == "DelegateNamespaces" else 0)
    restrict = name == "RestrictNamespaces"
    boolean = _maybe_boolean(value)
    if boolean is not None:
        flags = (0 if restrict else every) if boolean else (every if restrict else 0)
        return _one(name, "t", flags)
    invert = value.startswith("~")
    flags = 0
    for word in _words(value.removeprefix("~"), _PLAIN):
        if word not in _NAMESPACES:
            raise PropertyValueError(f"{shown(word)} is not one of: {', '.join(_NAMESPACES)}")
        flags |= _NAMESPACES[word]
    return _one(name, "t", (~flags & every) if invert else flags)


def _filter_list(name: str, value: str) -> list[UnitProperty]:
    """SystemCallFilter= and friends: words, `~` first for a deny list."""
    allow = not value.startswith("~")
    return _one(name, "(bas)", [allow, _words(value.removeprefix("~"), _UNQUOTE)])


def _environment(name: str, value: str) -> list[UnitProperty]:
    words = split_words(value)
    for word in words:
        key, sep, _ = word.partition("=")
        if not sep or not ENV_NAME.fullmatch(key):
            raise PropertyValueError(f"{shown(word)} is not an environment assignment NAME=VALUE")
    names = [word.partition("=")[0] for word in words]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        # systemd rejects the whole call for this (strv_env_is_valid).
        raise PropertyValueError(f"variable {duplicates[0]} is set twice in one assignment")
    return _one(name, "as", words)


def _env_names(assignments_too: bool) -> Handler:
    def handler(name: str, value: str) -> list[UnitProperty]:
        words = split_words(value)
        for word in words:
            key = word.partition("=")[0] if assignments_too else word
            if not ENV_NAME.fullmatch(key):
                raise PropertyValueError(f"{shown(word)} is not an environment variable name")
        return _one(name, "as", words)

    return handler


def _environment_file(name: str, value: str) -> list[UnitProperty]:
    """EnvironmentFile=[-]PATH, sent as EnvironmentFiles a(sb) (true: ignore if missing)."""
    if value == "":
        return _one("EnvironmentFiles", "a(sb)", [])
    path = value.removeprefix("-")
    _absolute(path)
    return _one("EnvironmentFiles", "a(sb)", [[path, value.startswith("-")]])


def _credential_id(word: str) -> str:
    if not credential_name_is_valid(word):
        raise PropertyValueError(
            f"credential name {shown(word)} is not valid (a file name, no ':')"
        )
    return word


def _load_credential(name: str, value: str) -> list[UnitProperty]:
    """LoadCredential=ID[:PATH|:CREDENTIAL] (PATH defaults to ID: inherit it)."""
    if value == "":
        return _one(name, "a(ss)", [])
    word, source = extract_word(value, ":", _FIELDS)
    if not source:
        source = value
    _credential_id(word or "")
    if source.startswith("/"):
        _normalized_absolute(source, "credential source")
    elif not credential_name_is_valid(source):
        raise PropertyValueError(f"credential source {shown(source)} is neither a path nor a name")
    return _one(name, "a(ss)", [[word, source]])


def _base64(text: str) -> bytes:
    data = "".join(c for c in text if c not in WHITESPACE)
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise PropertyValueError(f"{shown(text)} is not base64") from None


def _set_credential(name: str, value: str) -> list[UnitProperty]:
    """SetCredential=ID:VALUE (C escapes, \\x00 allowed), …Encrypted=ID:BASE64."""
    if value == "":
        return _one(name, "a(say)", [])
    word, data = extract_word(value, ":", _FIELDS)
    if data is None:
        raise PropertyValueError(f"{shown(value)} is not ID:VALUE")
    _credential_id(word or "")
    blob = _base64(data) if name.endswith("Encrypted") else cunescape(data, accept_nul=True)
    return _one(name, "a(say)", [[word, blob]])


def _import_credential(name: str, value: str) -> list[UnitProperty]:
    """ImportCredential=GLOB, or GLOB:RENAME (sent as ImportCredentialEx a(ss))."""
    if value == "":
        return _one("ImportCredential", "as", [])
    word, rename = extract_word(value, ":", _FIELDS)
    if rename is None:
        return _one("ImportCredential", "as", [value])
    return _one("ImportCredentialEx", "a(ss)", [[word, rename]])


def _journal_fields(name: str, value: str) -> list[UnitProperty]:
    field, sep, _ = value.partition("=")
    ok = sep and field and len(field) <= 64 and not field.startswith("_") and not field[0].isdigit()
    if not ok or any(c not in "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_" for c in field):
        raise PropertyValueError(
            f"{shown(value)} is not FIELD=VALUE with an upper-case journal field"
        )
    return _one(name, "aay", [value.encode()])


def _log_filter(name: str, value: str) -> list[UnitProperty]:
    if value == "":
        return _one(name, "a(bs)", [])
    return _one(name, "a(bs)", [[not value.startswith("~"), value.removeprefix("~")]])


_STD_PREFIXES = (
    ("fd:", "FileDescriptorName"), ("file:", "File"), ("append:", "FileToAppend"),
    ("truncate:", "FileToTruncate"),
)  # fmt: skip


def _standard_stream(name: str, value: str) -> list[UnitProperty]:
    """StandardOutput=journal, or fd:NAME, file:PATH, append:PATH, truncate:PATH, each
    sent as its own property (StandardOutputFile=...)."""
    for prefix, suffix in _STD_PREFIXES:
        if value.startswith(prefix):
            rest = value[len(prefix) :]
            if prefix == "fd:":
                if not fdname_is_valid(rest):
                    raise PropertyValueError(f"{shown(rest)} is not an fd name")
            else:
                _normalized_absolute(rest)
            return _one(name + suffix, "s", rest)
    return _one(name, "s", value)


def _input_text(name: str, value: str) -> list[UnitProperty]:
    return _one(name, "ay", cunescape(value) + b"\n")


def _input_data(name: str, value: str) -> list[UnitProperty]:
    return _one(name, "ay", _base64(value))


def _string_with_ignore(name: str, value: str) -> list[UnitProperty]:
    return _one(name, "(bs)", [value.startswith("-"), value.removeprefix("-")])


def _working_directory(name: str, value: str) -> list[UnitProperty]:
    path = value.removeprefix("-")
    if path != "~" and not path.startswith("/"):
        raise PropertyValueError(
            f"{shown(value)} must be an absolute path or ~ (optionally '-' first)"
        )
    return _one(name, "s", value)


def _absolute_string(name: str, value: str) -> list[UnitProperty]:
    if value:
        _absolute(value)
    return _one(name, "s", value)


# Resource limits: systemd's rlimit_parse(), SOFT[:HARD], 'infinity' for no limit.


def _limit(parse_one: Callable[[str], int]) -> Handler:
    """Limit*=N or SOFT:HARD or infinity -> Limit* (hard) and Limit*Soft."""

    def one(text: str) -> int:
        return UINT64_MAX if text == "infinity" else parse_one(text)

    def handler(name: str, value: str) -> list[UnitProperty]:
        soft_text, pos = _extract(value, 0, ":", _FIELDS)
        hard_text, pos = _extract(value, pos, ":", _FIELDS)
        if pos is not None and pos < len(value):  # one trailing ':' is let through
            raise PropertyValueError(f"{shown(value)} is not SOFT[:HARD]")
        soft = one(soft_text or "")
        hard = soft if hard_text is None else one(hard_text)
        if soft > hard:
            raise PropertyValueError(f"soft limit above hard limit in {shown(value)}")
        return [UnitProperty(name, "t", hard), UnitProperty(name + "Soft", "t", soft)]

    return handler


def _below_infinity(number: int, text: str) -> int:
    if number >= UINT64_MAX:
        raise PropertyValueError(f"{shown(text)} is too large (use infinity)")
    return number


def _limit_count(text: str) -> int:
    return _below_infinity(_atou64(text), text)


def _limit_size(text: str) -> int:
    return _below_infinity(parse_size(text), text)


def _limit_seconds(text: str) -> int:
    usec = parse_timespan_usec(text)
    return UINT64_MAX if usec == UINT64_MAX else -(-usec // USEC_PER_SEC)  # rounded up


def _limit_usec(text: str) -> int:
    return _parse_time(text, 1, _USEC_UNITS)  # a bare number is microseconds here


def _limit_nice(text: str) -> int:
    """+N / -N: a nice level (20 - N); a bare number: the raw limit, 0..40."""
    if text.startswith("+"):
        level = _safe_ato(text[1:], 0, 19)
        return 20 - level
    if text.startswith("-"):
        return 20 + _safe_ato(text[1:], 0, 20)
    return _safe_ato(text, 0, 40)


# cgroup settings


def _weight(name: str, value: str) -> list[UnitProperty]:
    """cg_weight_parse(): 1..10000, empty for the default; CPU weights also take 'idle'."""
    if value == "":
        return _one(name, "t", UINT64_MAX)
    if value == "idle" and name in ("CPUWeight", "StartupCPUWeight"):
        return _one(name, "t", 0)
    return _one(name, "t", _safe_ato(value, 1, 10000))


_LIMIT_MIN_WHEN_EMPTY = ("DefaultMemoryLow", "DefaultMemoryMin", "MemoryLow", "MemoryMin")


def _memory(name: str, value: str) -> list[UnitProperty]:
    """Sizes, 'infinity', or a percentage of physical memory sent as …Scale."""
    if value == "infinity" or (value == "" and name not in _LIMIT_MIN_WHEN_EMPTY):
        return _one(name, "t", UINT64_MAX)
    if value == "":
        return _one(name, "t", 0)
    permyriad = _percentage_or_none(value)
    if permyriad is not None:
        return _one(name + "Scale", "u", _scale(permyriad))
    if name == "TasksMax":
        return _one(name, "t", _safe_ato(value, 1, UINT64_MAX))
    return _one(name, "t", parse_size(value))


def _cpu_quota(name: str, value: str) -> list[UnitProperty]:
    if value == "":
        return _one("CPUQuotaPerSecUSec", "t", UINT64_MAX)
    permyriad = parse_permyriad(value, bounded=False)
    if permyriad == 0:
        raise PropertyValueError(f"{shown(value)} is too small (above 0% please)")
    return _one("CPUQuotaPerSecUSec", "t", permyriad * USEC_PER_SEC // 10000)


def _permyriad_scaled(name: str, value: str) -> list[UnitProperty]:
    return _one(name, "u", _scale(parse_permyriad(value)))


def _device_allow(name: str, value: str) -> list[UnitProperty]:
    """DeviceAllow=/dev/NODE|block-…|char-… [rwm]."""
    if value == "":
        return _one(name, "a(ss)", [])
    path, _, rwm = value.partition(" ")
    if not (path.startswith(("/dev/", "block-", "char-"))) or any(c in WHITESPACE for c in path):
        raise PropertyValueError(f"{shown(path)} is not /dev/…, block-… or char-…")
    if any(c not in "rwm" for c in rwm):
        raise PropertyValueError(f"{shown(rwm)} is not a combination of r, w and m")
    return _one(name, "a(ss)", [[path, rwm]])


def _path_and(parse_second: Callable[[str], int], wire: str | None = None) -> Handler:
    """IOReadBandwidthMax=PATH VALUE and friends: a(st), one pair (empty: none)."""

    def handler(name: str, value: str) -> list[UnitProperty]:
        field = wire or name
        if value == "":
            return _one(field, "a(st)", [])
        path, space, second = value.partition(" ")
        if not space or not path:
            raise PropertyValueError(f"{shown(value)} is not 'PATH VALUE'")
        return _one(field, "a(st)", [[path, parse_second(second)]])

    return handler


def _bandwidth(text: str) -> int:
    return UINT64_MAX if text == "infinity" else parse_size(text, 1000)


def _device_weight(text: str) -> int:
    return _safe_ato(text, 1, 10000)


def _delegate(name: str, value: str) -> list[UnitProperty]:
    boolean = _maybe_boolean(value)
    if boolean is None:
        return _one("DelegateControllers", "as", _words(value, _UNQUOTE))
    return _one("Delegate", "b", boolean)


_CPU_SET_MAX = 8192


def _parse_range(word: str) -> tuple[int, int]:
    """parse_range(): 'N' or 'N-M' (safe_atou() numbers)."""
    lower_text, pos = _extract(word, 0, "-", _FIELDS)
    lower = _atou32(lower_text or "")
    if pos is None:
        return lower, lower
    if pos == len(word):
        raise PropertyValueError(f"{shown(word)} ends in '-'")
    return lower, _atou32(word[pos:])


def cpu_set(text: str) -> bytes:
    """parse_cpu_set() then cpu_set_to_dbus(): '0-3 8,9' -> the bit mask, in 8-byte words."""
    cpus: set[int] = set()
    for word in _words(text, _UNQUOTE, WHITESPACE + ","):
        lower, upper = _parse_range(word)
        if lower > upper:
            raise PropertyValueError(f"{shown(word)} is an empty range ({lower} > {upper})")
        if upper >= _CPU_SET_MAX:
            raise PropertyValueError(f"{upper} is out of range 0..{_CPU_SET_MAX - 1}")
        cpus.update(range(lower, upper + 1))
    if not cpus:
        return b""
    mask = bytearray((max(cpus) + 64) // 64 * 8)  # CPU_ALLOC_SIZE(highest + 1)
    for cpu in cpus:
        mask[cpu // 8] |= 1 << (cpu % 8)
    return bytes(mask)


def _cpu_set(name: str, value: str) -> list[UnitProperty]:
    return _one(name, "ay", cpu_set(value))


def _cpu_affinity(name: str, value: str) -> list[UnitProperty]:
    if value == "numa":
        return _one("CPUAffinityFromNUMA", "b", True)
    return _cpu_set(name, value)


def _numa_nodes() -> int:
    """numa_max_node(): the highest /sys/devices/system/node/nodeN (1023 if unknown)."""
    try:
        entries = os.listdir("/sys/devices/system/node")
    except OSError:
        return 1023
    numbers = [e[4:] for e in entries if e.startswith("node") and e[4:].isascii()]
    return max((int(n) for n in numbers if n.isdigit()), default=0)


def _numa_mask(name: str, value: str) -> list[UnitProperty]:
    if value == "all":
        return _one(name, "ay", cpu_set(f"0-{_numa_nodes()}"))
    return _cpu_set(name, value)


AF_INET, AF_INET6 = 2, 10
_ADDRESS_SHORTCUTS = {
    "any": [[AF_INET, bytes(4), 0], [AF_INET6, bytes(16), 0]],
    "link-local": [
        [AF_INET, bytes([169, 254, 0, 0]), 16],
        [AF_INET6, bytes([0xFE, 0x80]) + bytes(14), 64],
    ],
    "multicast": [[AF_INET, bytes([224, 0, 0, 0]), 4], [AF_INET6, bytes([0xFF]) + bytes(15), 8]],
}
_LOCALHOST = [[AF_INET, bytes([127, 0, 0, 0]), 8], [AF_INET6, bytes(15) + b"\x01", 128]]


def _is_localhost(text: str) -> bool:
    lowered = text.lower()
    names = ("localhost", "localhost.", "localhost.localdomain", "localhost.localdomain.")
    return lowered in names or lowered.endswith(tuple("." + n for n in names))


def ip_prefix(text: str) -> list[object]:
    """in_addr_prefix_from_string_auto(): [family, address bytes, prefix length]."""
    address, slash, length = text.partition("/")
    parsed: ipaddress.IPv4Address | ipaddress.IPv6Address
    try:
        if address and all(c in "0123456789." for c in address):
            parsed = ipaddress.IPv4Address(address)
        elif address and all(c in _HEX + ":." for c in address):
            parsed = ipaddress.IPv6Address(address)
        else:
            raise ValueError(address)
    except ValueError:
        raise PropertyValueError(f"{shown(text)} is not an IP address or ADDRESS/PREFIX") from None
    bits = parsed.max_prefixlen
    prefix = _safe_ato(length, 0, bits) if slash else bits
    family = AF_INET if parsed.version == 4 else AF_INET6
    return [family, parsed.packed, prefix]


def _ip_address_access(name: str, value: str) -> list[UnitProperty]:
    if value == "":
        return _one(name, "a(iayu)", [])
    if value in _ADDRESS_SHORTCUTS:
        return _one(name, "a(iayu)", _ADDRESS_SHORTCUTS[value])
    if _is_localhost(value):
        return _one(name, "a(iayu)", _LOCALHOST)
    return _one(name, "a(iayu)", [ip_prefix(word) for word in _words(value, _PLAIN)])


def _bpf_path(name: str, value: str) -> list[UnitProperty]:
    if value == "":
        return _one(name, "as", [])
    return _one(name, "as", [_normalized_absolute(value)])


def _bpf_program(name: str, value: str) -> list[UnitProperty]:
    """BPFProgram=TYPE:PATH."""
    if value == "":
        return _one(name, "a(ss)", [])
    kind, rest = extract_word(value, ":", _PLAIN)
    return _one(name, "a(ss)", [[kind or "", rest or ""]])


def _socket_bind(name: str, value: str) -> list[UnitProperty]:
    """parse_socket_bind_item(): [ipv4|ipv6:][tcp|udp:](any|PORT|PORT-PORT)."""
    if value == "":
        return _one(name, "a(iiqq)", [])
    bad = PropertyValueError(f"{shown(value)} is not [ipv4|ipv6:][tcp|udp:]PORT[-PORT]|any")
    family, protocol, count, first = 0, 0, 0, 0
    stage = 0  # 0: family next, 1: protocol, 2: ports, 3: done
    pos: int | None = 0
    while stage < 3:
        token, pos = _extract(value, pos, ":", _FIELDS)
        if token is None:
            break
        if token == "":
            raise bad
        if stage == 0 and token in ("ipv4", "ipv6"):
            family, stage = (AF_INET if token == "ipv4" else AF_INET6), 1
        elif stage <= 1 and token in ("tcp", "udp"):
            protocol, stage = (6 if token == "tcp" else 17), 2
        elif token == "any":
            stage = 3
        else:
            try:
                low, high = _parse_range(token)
            except PropertyValueError:
                raise bad from None
            if high > 65535 or low > high:
                raise bad
            count, first, stage = high - low + 1, low, 3
    if pos is not None:
        raise bad
    return _one(name, "a(iiqq)", [[family, protocol, count, first]])


_NFT_SOURCES = {"cgroup": 3, "user": 4, "group": 5}
_NFPROTO = {"arp": 3, "bridge": 7, "inet": 1, "ipv4": 2, "ipv6": 10, "netdev": 5, "decnet": 12}


def _nft_identifier(word: str) -> str:
    ok = 0 < len(word) <= 31 and word[0].isascii() and word[0].isalpha()
    if not ok or any(not (c.isascii() and (c.isalnum() or c in "/\\_.")) for c in word):
        raise PropertyValueError(f"{shown(word)} is not an nft identifier")
    return word


def _nft_set(name: str, value: str) -> list[UnitProperty]:
    """NFTSet=SOURCE:FAMILY:TABLE:SET ..."""
    entries: list[object] = []
    for item in _words(value, Split(unquote=True, retain_escape=True)):
        fields, pos = _extract_many(item, 0, 4, ":", Split(cunescape=True))
        if len(fields) != 4 or pos is not None or item == "":
            raise PropertyValueError(f"{shown(item)} is not SOURCE:FAMILY:TABLE:SET")
        source, family, table, nft_set = fields
        if source not in _NFT_SOURCES or family not in _NFPROTO:
            raise PropertyValueError(
                f"{shown(item)}: source is cgroup|user|group, family inet|ipv4|ipv6|…"
            )
        entries.append(
            [
                _NFT_SOURCES[source],
                _NFPROTO[family],
                _nft_identifier(table),
                _nft_identifier(nft_set),
            ]
        )
    return _one(name, "a(iiss)", entries)


# mount namespace settings

MS_REC = 0x4000


def _bind_paths(name: str, value: str) -> list[UnitProperty]:
    """BindPaths=[-]SRC[:DST[:rbind|norbind]] ... -> a(ssbt) (flags: MS_REC or 0)."""
    how = Split(unquote=True, dont_coalesce=True)
    seps = ":" + WHITESPACE
    entries: list[object] = []
    pos: int | None = 0
    while True:
        source, pos = _extract(value, pos, seps, how)
        if source is None:
            break
        ignore = source.startswith("-")
        source = source.removeprefix("-")
        destination, flags = source, MS_REC
        if pos is not None and value[pos - 1] == ":":
            destination_word, pos = _extract(value, pos, seps, how)
            if destination_word is None:
                raise PropertyValueError(f"{shown(value)}: missing path after ':'")
            destination = destination_word
            if pos is not None and value[pos - 1] == ":":
                options, pos = _extract(value, pos, WHITESPACE, _UNQUOTE)
                if options in (None, "", "rbind"):
                    flags = MS_REC
                elif options == "norbind":
                    flags = 0
                else:
                    raise PropertyValueError(f"{shown(options or '')} is not rbind or norbind")
        _absolute(source, "source")
        _absolute(destination, "destination")
        entries.append([source, destination, ignore, flags])
    return _one(name, "a(ssbt)", entries)


def _temporary_file_system(name: str, value: str) -> list[UnitProperty]:
    """TemporaryFileSystem=PATH[:OPTIONS] ..."""
    entries: list[object] = []
    for word in _words(value, _UNQUOTE):
        path, options = extract_word(word, ":", _FIELDS)
        entries.append([_absolute(path or ""), options or ""])
    return _one(name, "a(ss)", entries)


def _root_hash(name: str, value: str) -> list[UnitProperty]:
    if value.startswith("/"):
        return _one(name + "Path", "s", value)
    try:
        data = bytes.fromhex(value) if all(c in _HEX for c in value) else b""
    except ValueError:
        data = b""
    if len(data) < 16:
        raise PropertyValueError(f"{shown(value)} is not a path or a hex hash of 16 bytes or more")
    return _one(name, "ay", data)


def _root_hash_signature(name: str, value: str) -> list[UnitProperty]:
    if value.startswith("/"):
        return _one(name + "Path", "s", value)
    if not value.startswith("base64:"):
        raise PropertyValueError(f"{shown(value)} is neither a path nor base64:…")
    return _one(name, "ay", _base64(value.removeprefix("base64:")))


_IMAGE_FIELDS = Split(cunescape=True, unescape_separators=True)
_IMAGE_TUPLES = Split(unquote=True, retain_escape=True)


def _partition_options(item: str, pos: int | None) -> list[object]:
    """[PARTITION:]OPTIONS pairs after an image's paths ('root' when no partition)."""
    options: list[object] = []
    while True:
        pair, pos = _extract_many(item, pos, 2, ":", _IMAGE_FIELDS)
        if not pair:
            return options
        if len(pair) == 1:
            options.append(["root", pair[0]])
            return options
        options.append(pair)


def _root_image_options(name: str, value: str) -> list[UnitProperty]:
    entries: list[object] = []
    for item in _words(value, _IMAGE_TUPLES):
        pair, pos = _extract_many(item, 0, 2, ":", _IMAGE_FIELDS)
        if not pair:
            continue
        if pos is not None:
            raise PropertyValueError(f"{shown(item)} is not [PARTITION:]OPTIONS")
        first, second = ([*pair, ""])[:2]
        entries.append([first, second] if second else ["root", first])
    return _one(name, "a(ss)", entries)


def _mount_images(name: str, value: str) -> list[UnitProperty]:
    """MountImages=[-]IMAGE:DIR[:[PARTITION:]OPTIONS...] ..."""
    entries: list[object] = []
    for item in _words(value, _IMAGE_TUPLES):
        paths, pos = _extract_many(item, 0, 2, ":", _IMAGE_FIELDS)
        if not paths:
            continue
        if len(paths) < 2 or not paths[1]:
            raise PropertyValueError(f"{shown(item)}: missing directory after ':'")
        source = paths[0]
        entries.append(
            [
                source.removeprefix("-"),
                paths[1],
                source.startswith("-"),
                _partition_options(item, pos),
            ]
        )
    return _one(name, "a(ssba(ss))", entries)


def _extension_images(name: str, value: str) -> list[UnitProperty]:
    """ExtensionImages=[-]IMAGE[:[PARTITION:]OPTIONS...] ..."""
    entries: list[object] = []
    for item in _words(value, _IMAGE_TUPLES):
        source, pos = _extract(item, 0, ":", _IMAGE_FIELDS)
        if source is None:
            continue
        entries.append(
            [source.removeprefix("-"), source.startswith("-"), _partition_options(item, pos)]
        )
    return _one(name, "a(sba(ss))", entries)


EXEC_DIRECTORY_READ_ONLY = 1


def _directories(name: str, value: str) -> list[UnitProperty]:
    """StateDirectory=NAME[:SYMLINK[:ro]] ...: plain names as 'as', the rest as
    …DirectorySymlink a(sst) (flags: 1 for read-only). Empty: nothing is sent."""
    sources: list[str] = []
    links: list[object] = []
    links_ro: list[object] = []
    sources_ro: list[object] = []
    for item in _words(value, _UNQUOTE):
        fields, _ = _extract_many(item, 0, 3, ":", Split(unquote=True, dont_coalesce=True))
        source, destination, flags = ([*fields, "", ""])[:3]
        source = path_simplify(source)
        if source.startswith("/") or not path_is_normalized(source):
            raise PropertyValueError(f"{shown(source)} must be a relative, normalized path")
        if flags not in ("", "ro"):
            raise PropertyValueError(f"{shown(flags)} is not 'ro'")
        if not flags and not destination:
            sources.append(source)
        elif not flags:
            links.append([source, path_simplify(destination), 0])
        elif destination:
            links_ro.append([source, path_simplify(destination), EXEC_DIRECTORY_READ_ONLY])
        else:
            sources_ro.append([source, "", EXEC_DIRECTORY_READ_ONLY])
    properties = [UnitProperty(name, "as", sources)] if sources else []
    if links or links_ro or sources_ro:
        symlinks = [*links, *links_ro, *sources_ro]
        properties.append(UnitProperty(name + "Symlink", "a(sst)", symlinks))
    return properties


def _directory_quota(name: str, value: str) -> list[UnitProperty]:
    """…DirectoryQuota=off | SIZE | PERCENT -> (tus) (absolute, scale, enforce)."""
    if value in ("", "off"):
        return _one(name, "(tus)", [UINT64_MAX, UINT32_MAX, "no"])
    permyriad = _percentage_or_none(value)
    if permyriad is not None:
        return _one(name, "(tus)", [UINT64_MAX, _scale(permyriad), "yes"])
    return _one(name, "(tus)", [parse_size(value), UINT32_MAX, "yes"])


def _boolean_or_ex(*words: str) -> Handler:
    """PrivateTmp=yes/no (b), or a word of its table sent as PrivateTmpEx (s)."""

    def handler(name: str, value: str) -> list[UnitProperty]:
        boolean = _maybe_boolean(value)
        if boolean is not None:
            return _one(name, "b", boolean)
        if value not in words:
            raise PropertyValueError(f"{shown(value)} is not yes, no, {', '.join(words)}")
        return _one(name + "Ex", "s", value)

    return handler


def _protect_hostname(name: str, value: str) -> list[UnitProperty]:
    """ProtectHostname=yes|no (b), private, or yes|private:HOSTNAME (ProtectHostnameEx)."""
    boolean = _maybe_boolean(value)
    if boolean is not None:
        return _one(name, "b", boolean)
    mode, colon, hostname = value.partition(":")
    if colon and not hostname:
        raise PropertyValueError(f"{shown(value)} has no hostname after ':'")
    if mode not in ("yes", "no", "private"):
        raise PropertyValueError(f"{shown(value)} is not yes, no, private or MODE:HOSTNAME")
    return _one("ProtectHostnameEx", "(ss)", [mode, hostname])


# exec commands, OpenFile=


# ExecXYZ= prefixes as bus-unit-util reads them, and the flag each sets (in systemd's order).
_EXEC_FLAGS = ("ignore-failure", "privileged", "no-setuid", "ambient", "no-env-expand", "via-shell")
_EXEC_PREFIXES = {"-": "ignore-failure", ":": "no-env-expand", "+": "privileged", "|": "via-shell"}


def _exec_command(name: str, value: str) -> list[UnitProperty]:
    """ExecStop= and friends: prefixes, then a command line (systemd's quoting).

    As systemd-run does, a setting whose prefixes need more than ignore-failure is sent
    as its `…Ex` twin with the flags as strings ("-:/bin/sh …" -> ExecStopEx). '|' runs
    the line with /bin/sh (systemd 258).
    """
    flags: set[str] = set()
    explicit_path = False
    rest = value
    while rest:
        char = rest[0]
        if char in _EXEC_PREFIXES and _EXEC_PREFIXES[char] not in flags:
            if char == "+" and flags & {"no-setuid", "ambient"}:
                break  # '+' and '!' exclude each other
            flags.add(_EXEC_PREFIXES[char])
        elif char == "@" and not explicit_path:
            explicit_path = True
        elif char == "!":  # '!': no-setuid, '!!': ambient (before systemd 258)
            if flags & {"privileged", "ambient"}:
                break
            if "no-setuid" in flags:
                flags.discard("no-setuid")
                flags.add("ambient")
            else:
                flags.add("no-setuid")
        else:
            break
        rest = rest[1:]
    words = split_words(rest)
    if "via-shell" in flags:
        if not words:
            raise PropertyValueError(f"{shown(value)} gives no command for the shell")
        path, argv = "/bin/sh", ["-sh" if explicit_path else "sh", *words]
    else:
        if not words or not words[0].startswith("/"):
            raise PropertyValueError(f"{shown(value)} needs an absolute executable path")
        path, argv = (words[0], words[1:]) if explicit_path else (words[0], words)
        if not argv:
            raise PropertyValueError(f"{shown(value)} gives no argv[0] after the @path")
    if flags - {"ignore-failure"}:
        ordered = [flag for flag in _EXEC_FLAGS if flag in flags]
        return _one(f"{name}Ex", "a(sasas)", [[path, argv, ordered]])
    return _one(name, "a(sasb)", [[path, argv, "ignore-failure" in flags]])


OPEN_FILE_FLAGS = {"read-only": 1, "append": 2, "truncate": 4, "graceful": 8}


def _open_file(name: str, value: str) -> list[UnitProperty]:
    """OpenFile=PATH[:NAME[:FLAGS]], ':' and '\\' escaped as systemd writes them."""
    fields = value.split(":")
    if len(fields) > 3 or not fields[0]:
        raise PropertyValueError(f"{shown(value)} is not PATH[:NAME[:FLAGS]]")
    path = fields[0].replace("\\x3a", ":").replace("\\\\", "\\")
    if not path.startswith("/"):
        raise PropertyValueError(f"{shown(value)}: the path must be absolute")
    fd_name = fields[1] if len(fields) > 1 and fields[1] else path.rsplit("/", 1)[-1]
    bits = 0
    for flag in filter(None, fields[2].split(",")) if len(fields) > 2 else ():
        if flag not in OPEN_FILE_FLAGS:
            raise PropertyValueError(f"unknown OpenFile= flag {shown(flag)}")
        bits |= OPEN_FILE_FLAGS[flag]
    return _one(name, "a(sst)", [[path, fd_name.replace("\\x3a", ":"), bits]])


EXIT_STATUS_NAMES = {
    "SUCCESS": 0, "FAILURE": 1, "INVALIDARGUMENT": 2, "NOTIMPLEMENTED": 3, "NOPERMISSION": 4,
    "NOTINSTALLED": 5, "NOTCONFIGURED": 6, "NOTRUNNING": 7, "USAGE": 64, "DATAERR": 65,
    "NOINPUT": 66, "NOUSER": 67, "NOHOST": 68, "UNAVAILABLE": 69, "SOFTWARE": 70, "OSERR": 71,
    "OSFILE": 72, "CANTCREAT": 73, "IOERR": 74, "TEMPFAIL": 75, "PROTOCOL": 76, "NOPERM": 77,
    "CONFIG": 78, "CHDIR": 200, "NICE": 201, "FDS": 202, "EXEC": 203, "MEMORY": 204,
    "LIMITS": 205, "OOM_ADJUST": 206, "SIGNAL_MASK": 207, "STDIN": 208, "STDOUT": 209,
    "CHROOT": 210, "IOPRIO": 211, "TIMERSLACK": 212, "SECUREBITS": 213, "SETSCHEDULER": 214,
    "CPUAFFINITY": 215, "GROUP": 216, "USER": 217, "CAPABILITIES": 218, "CGROUP": 219,
    "SETSID": 220, "CONFIRM": 221, "STDERR": 222, "PAM": 224, "NETWORK": 225,
    "NAMESPACE": 226, "NO_NEW_PRIVILEGES": 227, "SECCOMP": 228, "SELINUX_CONTEXT": 229,
    "PERSONALITY": 230, "APPARMOR": 231, "ADDRESS_FAMILIES": 232, "RUNTIME_DIRECTORY": 233,
    "CHOWN": 235, "SMACK_PROCESS_LABEL": 236, "KEYRING": 237, "STATE_DIRECTORY": 238,
    "CACHE_DIRECTORY": 239, "LOGS_DIRECTORY": 240, "CONFIGURATION_DIRECTORY": 241,
    "NUMA_POLICY": 242, "EXCEPTION": 255,
}  # fmt: skip


def _exit_status(name: str, value: str) -> list[UnitProperty]:
    """Exit statuses (0..255 or names like TEMPFAIL) and signals, as (aiai)."""
    statuses: list[int] = []
    signals: list[int] = []
    for word in _words(value, _UNQUOTE):
        if word in EXIT_STATUS_NAMES:
            statuses.append(EXIT_STATUS_NAMES[word])
            continue
        try:
            statuses.append(_atou8(word))
        except PropertyValueError:
            try:
                signals.append(signal_from_string(word))
            except PropertyValueError:
                raise PropertyValueError(
                    f"{shown(word)} is neither an exit status nor a signal"
                ) from None
    return _one(name, "(aiai)", [statuses, signals])


def _action_exit_status(name: str, value: str) -> list[UnitProperty]:
    return _one(name, "i", -1 if value == "" else _atou8(value))


_COREDUMP_FILTERS = (
    "private-anonymous", "shared-anonymous", "private-file-backed", "shared-file-backed",
    "elf-headers", "private-huge", "shared-huge", "private-dax", "shared-dax",
)  # fmt: skip


def _coredump_filter(name: str, value: str) -> list[UnitProperty]:
    mask = 0
    for word in _words(value, _PLAIN):
        if word == "default":
            mask |= 0x33
        elif word == "all":
            mask = UINT64_MAX
        elif word in _COREDUMP_FILTERS:
            mask |= 1 << _COREDUMP_FILTERS.index(word)
        else:
            mask |= _safe_ato(word, 0, UINT64_MAX, base=16)
    return _one(name, "t", mask)


_MOUNT_FLAGS = {"": 0, "shared": 1 << 20, "slave": 1 << 19, "private": 1 << 18}


def _mount_flags(name: str, value: str) -> list[UnitProperty]:
    if value not in _MOUNT_FLAGS:
        raise PropertyValueError(f"{shown(value)} is not shared, slave or private")
    return _one(name, "t", _MOUNT_FLAGS[value])


SECCOMP_ERROR_NUMBER_KILL = INT32_MAX - 1


def _errno_or_action(name: str, value: str) -> list[UnitProperty]:
    """SystemCallErrorNumber=EPERM, a number 0..4095, or kill."""
    if value == "kill":
        return _one(name, "i", SECCOMP_ERROR_NUMBER_KILL)
    number = getattr(errno, value, None) if value.startswith("E") and value.isupper() else None
    if isinstance(number, int):
        return _one(name, "i", number)
    try:
        return _one(name, "i", _safe_ato(value, 0, 4095))
    except PropertyValueError:
        raise PropertyValueError(
            f"{shown(value)} is not an errno name (EPERM), 0..4095 or kill"
        ) from None


_CONDITIONS = (
    "Architecture", "Firmware", "Virtualization", "Host", "KernelCommandLine", "KernelVersion",
    "Version", "Credential", "Security", "Capability", "ACPower", "NeedsUpdate", "FirstBoot",
    "PathExists", "PathExistsGlob", "PathIsDirectory", "PathIsSymbolicLink",
    "PathIsMountPoint", "PathIsReadWrite", "PathIsEncrypted", "DirectoryNotEmpty",
    "FileNotEmpty", "FileIsExecutable", "User", "Group", "ControlGroupController", "CPUs",
    "Memory", "Environment", "CPUFeature", "OSRelease", "MemoryPressure", "CPUPressure",
    "IOPressure", "KernelModuleLoaded",
)  # fmt: skip


def _condition(name: str, value: str) -> list[UnitProperty]:
    """Condition…=[|][!]VALUE -> Conditions a(sbbs), Assert… -> Asserts (empty: reset)."""
    wire = "Conditions" if name.startswith("Condition") else "Asserts"
    if value == "":
        return _one(wire, "a(sbbs)", [])
    trigger = value.startswith("|")
    rest = value.removeprefix("|")
    negate = rest.startswith("!")
    return _one(wire, "a(sbbs)", [[name, trigger, negate, rest.removeprefix("!")]])


# --- the settings, one row each --------------------------------------------------------------

Family = Literal["unit", "service", "exec", "kill", "cgroup"]
FAMILIES: tuple[Family, ...] = ("unit", "service", "exec", "kill", "cgroup")


@dataclass(frozen=True)
class Kind:
    """How a family of settings parses, what it sends ("{}": the setting's name, "{stem}":
    without "Sec"; an entry naming no property is sent under the setting's own name) and
    its value syntax."""

    parse: Handler
    sends: tuple[str, ...]
    syntax: str


@dataclass(frozen=True)
class Setting:
    """One `-p NAME=VALUE` systemd-run takes for a service."""

    name: str
    family: Family
    kind: Kind
    summary: str

    @property
    def parse(self) -> Handler:
        return self.kind.parse

    @property
    def syntax(self) -> str:
        return self.kind.syntax

    @property
    def sends(self) -> tuple[tuple[str, str], ...]:
        """(property, signature) pairs the setting may send."""
        pairs: list[tuple[str, str]] = []
        for entry in self.kind.sends:
            text = entry.format(self.name, stem=self.name.removesuffix("Sec"))
            wire, _, signature = text.rpartition(" ")
            pairs.append((wire or self.name, signature))
        return tuple(pairs)

    @property
    def signature_text(self) -> str:
        """'a(ss)', or 'EnvironmentFiles a(sb)' where the wire name differs."""
        return " or ".join(
            signature if wire == self.name else f"{wire} {signature}"
            for wire, signature in self.sends
        )


def choice(*words: str, boolean: bool = False) -> Kind:
    shown = "|".join((*words, "yes", "no") if boolean else words)
    return Kind(_choice(*words, boolean=boolean), ("s",), shown)


def lookup(table: dict[str, int], numbers_up_to: int | None = None) -> Kind:
    shown = "|".join(table) + (f" or 0..{numbers_up_to}" if numbers_up_to is not None else "")
    return Kind(_lookup(table, numbers_up_to), ("i",), shown)


def _kind(parse: Handler, sends: str, syntax: str) -> Kind:
    """A Kind; `sends` lists what it sends, separated by ', '."""
    return Kind(parse, tuple(sends.split(", ")), syntax)


BOOL = _kind(_boolean, "b", "yes|no (also 1/0, true/false, on/off)")
STRING = _kind(_string, "s", "text")
ABSOLUTE = _kind(_absolute_string, "s", "/path")
WORDS = _kind(_strv, "as", "words (quotes group; empty resets)")
UNITS = _kind(_unit_names, "as", "unit names")
PATHS = _kind(_path_list("-+"), "as", "[-][+]/path ...")
PLAIN_PATHS = _kind(_path_list(""), "as", "/path ...")
SEC = _kind(_usec, "{stem}USec t", "time span: 90, 500ms, 5min 20s, infinity")
SEC_OR_INFINITY = _kind(_usec_or_infinity, "{stem}USec t", "time span (empty: infinity)")
NSEC = _kind(_nsec, "t", "time span (a bare number is ns)")
TIMEOUT = _kind(_timeout, "TimeoutStartUSec t, TimeoutStopUSec t", "time span")
U32 = _kind(_u32, "u", "0..4294967295")
INT = _kind(_ranged_int(-(2**31), INT32_MAX), "i", "integer")
NICE = _kind(_ranged_int(-20, 19), "i", "-20..19")
OOM_SCORE = _kind(_ranged_int(-1000, 1000), "i", "-1000..1000")
IO_PRIORITY = _kind(_ranged_int(0, 7), "i", "0..7")
MODE = _kind(_mode, "u", "octal mode, e.g. 0755")
SIGNAL = _kind(_signal, "i", "SIGTERM, TERM, 15, RTMIN+3")
EXEC = _kind(_exec_command, "a(sasb), {}Ex a(sasas)", "[-@:+!|]/path arg ...")
EXIT_STATUS = _kind(_exit_status, "(aiai)", "exit statuses (0..255, TEMPFAIL) and signals")
ACTION_STATUS = _kind(_action_exit_status, "i", "0..255 (empty: the unit's)")
OPEN_FILE = _kind(_open_file, "a(sst)", "/path[:NAME[:read-only,append,truncate,graceful]]")
MEMORY = _kind(_memory, "t, {}Scale u", "bytes (1G, 512M), N% of RAM, infinity")
TASKS = _kind(_memory, "t, {}Scale u", "a number, N% of the system's, infinity")
CPU_WEIGHT = _kind(_weight, "t", "1..10000, idle (empty: default)")
WEIGHT = _kind(_weight, "t", "1..10000 (empty: default)")
CPU_QUOTA = _kind(_cpu_quota, "CPUQuotaPerSecUSec t", "N% of one CPU (may exceed 100%)")
PRESSURE = _kind(_permyriad_scaled, "u", "N% (two decimals at most)")
CPU_SET = _kind(_cpu_set, "ay", "0-3 8,9 (numbers and ranges)")
CPU_AFFINITY = _kind(_cpu_affinity, "ay, CPUAffinityFromNUMA b", "0-3 8,9 or numa")
NUMA_MASK = _kind(_numa_mask, "ay", "node numbers and ranges, or all")
DELEGATE = _kind(_delegate, "b, DelegateControllers as", "yes|no or controller names")
DEVICE_ALLOW = _kind(_device_allow, "a(ss)", "/dev/NODE|block-…|char-… [rwm]")
DEVICE_WEIGHT = _kind(_path_and(_device_weight), "a(st)", "/dev/… 1..10000")
LATENCY = _kind(
    _path_and(parse_timespan_usec, "IODeviceLatencyTargetUSec"),
    "IODeviceLatencyTargetUSec a(st)",
    "/dev/… TIME",
)
BANDWIDTH = _kind(_path_and(_bandwidth), "a(st)", "/dev/… BYTES (K is 1000) or infinity")
IOPS = _kind(_path_and(_bandwidth), "a(st)", "/dev/… IOPS (K is 1000) or infinity")
ADDRESSES = _kind(
    _ip_address_access, "a(iayu)", "any, localhost, link-local, multicast or ADDR[/LEN] ..."
)
BPF_PATH = _kind(_bpf_path, "as", "/sys/fs/bpf/… (a pinned program)")
BPF_PROGRAM = _kind(_bpf_program, "a(ss)", "TYPE:/sys/fs/bpf/…")
SOCKET_BIND = _kind(_socket_bind, "a(iiqq)", "[ipv4|ipv6:][tcp|udp:]PORT[-PORT] or any")
NFT_SET = _kind(_nft_set, "a(iiss)", "cgroup|user|group:FAMILY:TABLE:SET ...")
FILTER = _kind(_filter_list, "(bas)", "[~]word ... (~: a deny list)")
NAMESPACES = _kind(_namespaces, "t", "yes|no or [~]cgroup ipc net mnt pid user uts time")
DELEGATED_NAMESPACES = _kind(_namespaces, "t", "yes|no or [~]cgroup ipc net mnt pid uts time")
SLICE = _kind(_slice, "s", "NAME.slice")
WORKING_DIRECTORY = _kind(_working_directory, "s", "[-]/path or [-]~")
ENVIRONMENT = _kind(_environment, "as", "NAME=VALUE ... (quotes, C escapes)")
UNSET_ENVIRONMENT = _kind(_env_names(True), "as", "NAME or NAME=VALUE ...")
PASS_ENVIRONMENT = _kind(_env_names(False), "as", "NAME ...")
ENVIRONMENT_FILE = _kind(
    _environment_file, "EnvironmentFiles a(sb)", "[-]/path (-: may be missing)"
)
SET_CREDENTIAL = _kind(_set_credential, "a(say)", "ID:VALUE (C escapes, \\x00 too)")
SET_CREDENTIAL_ENCRYPTED = _kind(_set_credential, "a(say)", "ID:BASE64")
LOAD_CREDENTIAL = _kind(_load_credential, "a(ss)", "ID[:/path or :CREDENTIAL]")
IMPORT_CREDENTIAL = _kind(_import_credential, "as, ImportCredentialEx a(ss)", "GLOB[:RENAME]")
LOG_EXTRA_FIELDS = _kind(_journal_fields, "aay", "FIELD=VALUE")
LOG_FILTER = _kind(_log_filter, "a(bs)", "[~]REGEX (~: drop the matches)")
STD_INPUT = _kind(
    _standard_stream,
    "s, {}FileDescriptorName s, {}File s",
    "null, tty, data, socket, fd:NAME, file:/path",
)
STD_OUTPUT = _kind(
    _standard_stream,
    "s, {}FileDescriptorName s, {}File s, {}FileToAppend s, {}FileToTruncate s",
    "inherit, null, journal, kmsg, tty, fd:NAME, file:/path, append:/path, truncate:/path",
)
INPUT_TEXT = _kind(_input_text, "ay", "text (C escapes; a newline is added)")
INPUT_DATA = _kind(_input_data, "ay", "BASE64")
WITH_IGNORE = _kind(_string_with_ignore, "(bs)", "[-]NAME (-: ignore if unavailable)")
CAPABILITIES_KIND = _kind(_capabilities, "t", "[~]CAP_… ... (~: all but these)")
SECURE_BITS = _kind(_secure_bits, "i", "keep-caps, noroot, no-setuid-fixup, ...")
COREDUMP_FILTER = _kind(_coredump_filter, "t", "default, all, private-anonymous, ... or hex")
ERRNO = _kind(_errno_or_action, "i", "EPERM, 0..4095 or kill")
MOUNT_FLAGS = _kind(_mount_flags, "t", "shared|slave|private")
BIND_PATHS = _kind(_bind_paths, "a(ssbt)", "[-]SRC[:DST[:rbind|norbind]] ...")
TMPFS = _kind(_temporary_file_system, "a(ss)", "/path[:OPTIONS] ...")
ROOT_HASH = _kind(_root_hash, "ay, {}Path s", "HEX or /path")
ROOT_HASH_SIGNATURE = _kind(_root_hash_signature, "ay, {}Path s", "base64:DATA or /path")
IMAGE_OPTIONS = _kind(_root_image_options, "a(ss)", "[PARTITION:]OPTIONS ...")
MOUNT_IMAGES = _kind(_mount_images, "a(ssba(ss))", "[-]IMAGE:DIR[:[PART:]OPTIONS] ...")
EXTENSION_IMAGES = _kind(_extension_images, "a(sba(ss))", "[-]IMAGE[:[PART:]OPTIONS] ...")
DIRECTORY = _kind(_directories, "as, {}Symlink a(sst)", "NAME[:SYMLINK[:ro]] ...")
CONFIGURATION_DIRECTORY = _kind(_relative_dirs, "as", "NAME ... (under /etc)")
QUOTA = _kind(_directory_quota, "(tus)", "off, SIZE or N%")
PROTECT_HOSTNAME = _kind(
    _protect_hostname, "b, ProtectHostnameEx (ss)", "yes|no|private[:HOSTNAME]"
)
PRIVATE_TMP = _kind(_boolean_or_ex("connected", "disconnected"), "b, {}Ex s", "yes|no|disconnected")
PROTECT_CGROUPS = _kind(_boolean_or_ex("private", "strict"), "b, {}Ex s", "yes|no|private|strict")
PRIVATE_USERS = _kind(
    _boolean_or_ex("self", "identity", "full"), "b, {}Ex s", "yes|no|self|identity|full"
)
DOCUMENTATION = _kind(_documentation, "as", "URL ... (http(s)://, file:, info:, man:)")
CONDITION = _kind(_condition, "Conditions a(sbbs)", "[|][!]VALUE (empty: reset)")
ASSERT = _kind(_condition, "Asserts a(sbbs)", "[|][!]VALUE (empty: reset)")
LOG_LEVELS = {
    "emerg": 0, "alert": 1, "crit": 2, "err": 3, "warning": 4, "notice": 5, "info": 6, "debug": 7,
}  # fmt: skip
FACILITIES = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
    "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, **{f"local{i}": 16 + i for i in range(8)},
}  # fmt: skip
LOG_LEVEL = lookup(LOG_LEVELS, 7)
FACILITY = lookup(FACILITIES, 127)
SCHED_POLICY = lookup({"other": 0, "batch": 3, "idle": 5, "fifo": 1, "rr": 2}, INT32_MAX)
IO_CLASS = lookup({"none": 0, "realtime": 1, "best-effort": 2, "idle": 3}, 3)
NUMA_POLICY = lookup({"default": 0, "preferred": 1, "bind": 2, "interleave": 3, "local": 4})
EMERGENCY_ACTION = choice(
    "none", "exit", "exit-force", "reboot", "reboot-force", "reboot-immediate", "poweroff",
    "poweroff-force", "poweroff-immediate", "soft-reboot", "soft-reboot-force", "kexec",
    "kexec-force", "halt", "halt-force", "halt-immediate",
)  # fmt: skip
SERVICE_TYPE = choice(
    "simple", "exec", "forking", "oneshot", "dbus", "notify", "notify-reload", "idle"
)
RESTART = choice(
    "no", "on-success", "on-failure", "on-abnormal", "on-watchdog", "on-abort", "always"
)
FAILURE_MODE = choice("terminate", "abort", "kill")


def _limit_kind(parse_one: Callable[[str], int], shown: str) -> Kind:
    return _kind(_limit(parse_one), "t, {}Soft t", f"{shown}, or SOFT:HARD; infinity")


SIZE_LIMIT = _limit_kind(_limit_size, "bytes (1G, 512M)")
COUNT_LIMIT = _limit_kind(_limit_count, "a number")
CPU_LIMIT = _limit_kind(_limit_seconds, "time span (rounded up to seconds)")
NICE_LIMIT = _limit_kind(_limit_nice, "+N or -N (a nice level) or 0..40")
RTTIME_LIMIT = _limit_kind(_limit_usec, "time span (a bare number is us)")


def S(name: str, family: Family, kind: Kind, summary: str) -> Setting:
    """A row of the table."""
    return Setting(name, family, kind, summary)


# fmt: off
_CGROUP: tuple[Setting, ...] = (
    S("DevicePolicy", "cgroup", choice("auto", "closed", "strict"), "device nodes it may open"),
    S("Slice", "cgroup", SLICE, "the slice the unit runs in"),
    S("ManagedOOMSwap", "cgroup", choice("auto", "kill"), "systemd-oomd acts on swap use"),
    S("ManagedOOMMemoryPressure", "cgroup", choice("auto", "kill"),
      "systemd-oomd acts on memory pressure"),
    S("ManagedOOMPreference", "cgroup", choice("none", "avoid", "omit"),
      "how systemd-oomd picks victims here"),
    S("MemoryPressureWatch", "cgroup", choice("off", "on", "skip", "auto", boolean=True),
      "$MEMORY_PRESSURE_WATCH for the service"),
    S("DelegateSubgroup", "cgroup", STRING, "subgroup for the main process (with Delegate=)"),
    S("ManagedOOMMemoryPressureLimit", "cgroup", PRESSURE, "pressure at which systemd-oomd acts"),
    S("MemoryAccounting", "cgroup", BOOL, "account memory use"),
    S("MemoryZSwapWriteback", "cgroup", BOOL, "let zswap write back to swap"),
    S("IOAccounting", "cgroup", BOOL, "account block I/O"),
    S("TasksAccounting", "cgroup", BOOL, "account the number of tasks"),
    S("IPAccounting", "cgroup", BOOL, "account IP traffic"),
    S("CoredumpReceive", "cgroup", BOOL, "receive core dumps of its containers"),
    S("CPUAccounting", "cgroup", BOOL, "account CPU time (systemd 258 ignores it: always on)"),
    S("CPUWeight", "cgroup", CPU_WEIGHT, "relative CPU share"),
    S("StartupCPUWeight", "cgroup", CPU_WEIGHT, "CPUWeight= during boot"),
    S("IOWeight", "cgroup", WEIGHT, "relative block I/O share"),
    S("StartupIOWeight", "cgroup", WEIGHT, "IOWeight= during boot"),
    S("AllowedCPUs", "cgroup", CPU_SET, "CPUs it may run on (cpuset)"),
    S("StartupAllowedCPUs", "cgroup", CPU_SET, "AllowedCPUs= during boot"),
    S("AllowedMemoryNodes", "cgroup", CPU_SET, "NUMA nodes it may use (cpuset)"),
    S("StartupAllowedMemoryNodes", "cgroup", CPU_SET, "AllowedMemoryNodes= during boot"),
    S("DisableControllers", "cgroup", WORDS, "controllers turned off below the unit"),
    S("Delegate", "cgroup", DELEGATE, "hand the cgroup subtree to the service"),
    S("MemoryMin", "cgroup", MEMORY, "memory protected from reclaim"),
    S("DefaultMemoryLow", "cgroup", MEMORY, "MemoryLow= default of the children"),
    S("DefaultMemoryMin", "cgroup", MEMORY, "MemoryMin= default of the children"),
    S("MemoryLow", "cgroup", MEMORY, "memory reclaimed only when nothing else is left"),
    S("MemoryHigh", "cgroup", MEMORY, "memory use at which it is throttled"),
    S("MemoryMax", "cgroup", MEMORY, "hard memory limit"),
    S("MemorySwapMax", "cgroup", MEMORY, "hard swap limit"),
    S("MemoryZSwapMax", "cgroup", MEMORY, "hard zswap limit"),
    S("TasksMax", "cgroup", TASKS, "most tasks (processes and threads)"),
    S("CPUQuota", "cgroup", CPU_QUOTA, "CPU time limit"),
    S("CPUQuotaPeriodSec", "cgroup", SEC_OR_INFINITY, "period CPUQuota= is measured over"),
    S("DeviceAllow", "cgroup", DEVICE_ALLOW, "a device node it may use"),
    S("IODeviceWeight", "cgroup", DEVICE_WEIGHT, "IOWeight= of one device"),
    S("IODeviceLatencyTargetSec", "cgroup", LATENCY, "I/O latency target of one device"),
    S("IOReadBandwidthMax", "cgroup", BANDWIDTH, "read bandwidth limit of one device"),
    S("IOWriteBandwidthMax", "cgroup", BANDWIDTH, "write bandwidth limit of one device"),
    S("IOReadIOPSMax", "cgroup", IOPS, "read operations per second limit"),
    S("IOWriteIOPSMax", "cgroup", IOPS, "write operations per second limit"),
    S("IPAddressAllow", "cgroup", ADDRESSES, "IP prefixes it may talk to (wins over Deny)"),
    S("IPAddressDeny", "cgroup", ADDRESSES, "IP prefixes it may not talk to"),
    S("IPIngressFilterPath", "cgroup", BPF_PATH, "BPF program filtering incoming packets"),
    S("IPEgressFilterPath", "cgroup", BPF_PATH, "BPF program filtering outgoing packets"),
    S("BPFProgram", "cgroup", BPF_PROGRAM, "pinned BPF program attached to the cgroup"),
    S("SocketBindAllow", "cgroup", SOCKET_BIND, "ports it may bind"),
    S("SocketBindDeny", "cgroup", SOCKET_BIND, "ports it may not bind"),
    S("MemoryPressureThresholdSec", "cgroup", SEC, "stall time that counts as pressure"),
    S("NFTSet", "cgroup", NFT_SET, "nftables sets its cgroup, user or group joins"),
    S("ManagedOOMMemoryPressureDurationSec", "cgroup", SEC_OR_INFINITY,
      "how long pressure lasts before systemd-oomd acts"),
)

_EXEC: tuple[Setting, ...] = (
    S("User", "exec", STRING, "user the processes run as"),
    S("Group", "exec", STRING, "group the processes run as"),
    S("UtmpIdentifier", "exec", STRING, "utmp/wtmp identifier (with TTYPath=)"),
    S("UtmpMode", "exec", choice("init", "login", "user"), "kind of utmp record"),
    S("PAMName", "exec", STRING, "PAM service to open a session with"),
    S("TTYPath", "exec", STRING, "terminal for StandardInput=tty"),
    S("WorkingDirectory", "exec", WORKING_DIRECTORY, "working directory"),
    S("RootDirectory", "exec", ABSOLUTE, "chroot directory"),
    S("SyslogIdentifier", "exec", STRING, "identifier of its log lines"),
    S("ProtectSystem", "exec", choice("full", "strict", boolean=True),
      "/usr and /boot read-only (full: /etc too; strict: all)"),
    S("ProtectHome", "exec", choice("read-only", "tmpfs", boolean=True),
      "hide or protect /home, /root and /run/user"),
    S("SELinuxContext", "exec", STRING, "SELinux context of the processes ([-]CONTEXT)"),
    S("RootImage", "exec", ABSOLUTE, "disk image to use as the root"),
    S("RootVerity", "exec", STRING, "dm-verity data of RootImage="),
    S("RuntimeDirectoryPreserve", "exec", choice("restart", boolean=True),
      "keep RuntimeDirectory= when it stops"),
    S("Personality", "exec", STRING, "execution domain (x86, x86-64, arm64, ...)"),
    S("KeyringMode", "exec", choice("inherit", "private", "shared"), "kernel session keyring"),
    S("ProtectProc", "exec", choice("noaccess", "invisible", "ptraceable", "default"),
      "what /proc shows of other processes"),
    S("ProcSubset", "exec", choice("all", "pid"), "what /proc shows besides processes"),
    S("NetworkNamespacePath", "exec", ABSOLUTE, "network namespace to join"),
    S("UserNamespacePath", "exec", ABSOLUTE, "user namespace to join"),
    S("IPCNamespacePath", "exec", ABSOLUTE, "IPC namespace to join"),
    S("LogNamespace", "exec", STRING, "journal namespace of its logs"),
    S("RootImagePolicy", "exec", STRING, "image policy of RootImage="),
    S("MountImagePolicy", "exec", STRING, "image policy of MountImages="),
    S("ExtensionImagePolicy", "exec", STRING, "image policy of ExtensionImages="),
    S("PrivatePIDs", "exec", choice(boolean=True), "own PID namespace"),
    S("PrivateBPF", "exec", STRING, "own bpffs"),
    S("BPFDelegateCommands", "exec", STRING, "BPF commands delegated (with PrivateBPF=)"),
    S("BPFDelegateMaps", "exec", STRING, "BPF map types delegated"),
    S("BPFDelegatePrograms", "exec", STRING, "BPF program types delegated"),
    S("BPFDelegateAttachments", "exec", STRING, "BPF attach types delegated"),
    S("IgnoreSIGPIPE", "exec", BOOL, "start with SIGPIPE ignored"),
    S("TTYVHangup", "exec", BOOL, "hang up the TTY's other users first"),
    S("TTYReset", "exec", BOOL, "reset the TTY before and after"),
    S("TTYVTDisallocate", "exec", BOOL, "clear the VT after"),
    S("PrivateDevices", "exec", BOOL, "own minimal /dev"),
    S("PrivateNetwork", "exec", BOOL, "own network namespace with only lo"),
    S("PrivateMounts", "exec", BOOL, "own mount namespace"),
    S("PrivateIPC", "exec", BOOL, "own IPC namespace"),
    S("NoNewPrivileges", "exec", BOOL, "no privileges gained through execve()"),
    S("SyslogLevelPrefix", "exec", BOOL, "read <N> level prefixes of output lines"),
    S("MemoryDenyWriteExecute", "exec", BOOL, "no memory both writable and executable"),
    S("RestrictRealtime", "exec", BOOL, "no realtime scheduling"),
    S("DynamicUser", "exec", BOOL, "run as a transient user"),
    S("RemoveIPC", "exec", BOOL, "remove the user's IPC objects when it stops"),
    S("ProtectKernelTunables", "exec", BOOL, "/proc/sys and /sys read-only"),
    S("ProtectKernelModules", "exec", BOOL, "no module loading"),
    S("ProtectKernelLogs", "exec", BOOL, "no kernel log access"),
    S("ProtectClock", "exec", BOOL, "no clock changes"),
    S("MountAPIVFS", "exec", BOOL, "mount /proc, /sys and /dev in RootDirectory="),
    S("BindLogSockets", "exec", BOOL, "bind the journal's sockets into RootDirectory="),
    S("CPUSchedulingResetOnFork", "exec", BOOL, "children drop realtime scheduling"),
    S("LockPersonality", "exec", BOOL, "no personality() changes"),
    S("MemoryKSM", "exec", BOOL, "merge identical pages (KSM)"),
    S("RestrictSUIDSGID", "exec", BOOL, "no setuid/setgid files made"),
    S("RootEphemeral", "exec", BOOL, "run on a snapshot of its root"),
    S("SetLoginEnvironment", "exec", BOOL, "$HOME, $LOGNAME and $SHELL as a login sets them"),
    S("ReadWriteDirectories", "exec", PATHS, "old name of ReadWritePaths="),
    S("ReadOnlyDirectories", "exec", PATHS, "old name of ReadOnlyPaths="),
    S("InaccessibleDirectories", "exec", PATHS, "old name of InaccessiblePaths="),
    S("ReadWritePaths", "exec", PATHS, "paths writable despite ProtectSystem= etc."),
    S("ReadOnlyPaths", "exec", PATHS, "paths made read-only"),
    S("InaccessiblePaths", "exec", PATHS, "paths made inaccessible"),
    S("ExecPaths", "exec", PATHS, "paths where execution is allowed"),
    S("NoExecPaths", "exec", PATHS, "paths where execution is refused"),
    S("ExecSearchPath", "exec", PLAIN_PATHS, "$PATH of the Exec*= commands"),
    S("ExtensionDirectories", "exec", _kind(_path_list("-"), "as", "[-]/path ..."),
      "system extension directories overlaid"),
    S("ConfigurationDirectory", "exec", CONFIGURATION_DIRECTORY, "directories made in /etc"),
    S("SupplementaryGroups", "exec", WORDS, "extra groups"),
    S("SystemCallArchitectures", "exec", WORDS, "system call ABIs allowed (native, x86-64)"),
    S("SyslogLevel", "exec", LOG_LEVEL, "default level of output lines"),
    S("LogLevelMax", "exec", LOG_LEVEL, "drop log lines above this level"),
    S("SyslogFacility", "exec", FACILITY, "syslog facility of output lines"),
    S("SecureBits", "exec", SECURE_BITS, "process securebits"),
    S("CPUSchedulingPolicy", "exec", SCHED_POLICY, "CPU scheduling policy"),
    S("CPUSchedulingPriority", "exec", INT, "static priority for fifo and rr"),
    S("OOMScoreAdjust", "exec", OOM_SCORE, "OOM killer preference"),
    S("CoredumpFilter", "exec", COREDUMP_FILTER, "memory kinds in core dumps"),
    S("Nice", "exec", NICE, "nice level"),
    S("SystemCallErrorNumber", "exec", ERRNO, "error of filtered system calls"),
    S("IOSchedulingClass", "exec", IO_CLASS, "I/O scheduling class"),
    S("IOSchedulingPriority", "exec", IO_PRIORITY, "I/O priority within the class"),
    S("RuntimeDirectoryMode", "exec", MODE, "mode of RuntimeDirectory="),
    S("StateDirectoryMode", "exec", MODE, "mode of StateDirectory="),
    S("CacheDirectoryMode", "exec", MODE, "mode of CacheDirectory="),
    S("LogsDirectoryMode", "exec", MODE, "mode of LogsDirectory="),
    S("ConfigurationDirectoryMode", "exec", MODE, "mode of ConfigurationDirectory="),
    S("UMask", "exec", MODE, "file mode creation mask"),
    S("TimerSlackNSec", "exec", NSEC, "timer slack"),
    S("LogRateLimitIntervalSec", "exec", SEC, "log rate limit interval"),
    S("LogRateLimitBurst", "exec", U32, "log lines allowed per interval"),
    S("TTYRows", "exec", U32, "rows of the TTY"),
    S("TTYColumns", "exec", U32, "columns of the TTY"),
    S("MountFlags", "exec", MOUNT_FLAGS, "mount propagation of its namespace"),
    S("Environment", "exec", ENVIRONMENT, "environment variables"),
    S("UnsetEnvironment", "exec", UNSET_ENVIRONMENT, "variables (or assignments) removed"),
    S("PassEnvironment", "exec", PASS_ENVIRONMENT, "variables passed on from the manager"),
    S("EnvironmentFile", "exec", ENVIRONMENT_FILE, "file of variables"),
    S("SetCredential", "exec", SET_CREDENTIAL, "a credential given inline"),
    S("SetCredentialEncrypted", "exec", SET_CREDENTIAL_ENCRYPTED, "an encrypted credential"),
    S("LoadCredential", "exec", LOAD_CREDENTIAL, "a credential read from a file, or inherited"),
    S("LoadCredentialEncrypted", "exec", LOAD_CREDENTIAL, "an encrypted credential from a file"),
    S("ImportCredential", "exec", IMPORT_CREDENTIAL, "credentials imported from the system"),
    S("LogExtraFields", "exec", LOG_EXTRA_FIELDS, "journal field added to its log lines"),
    S("LogFilterPatterns", "exec", LOG_FILTER, "log lines kept or dropped by pattern"),
    S("StandardInput", "exec", STD_INPUT, "standard input"),
    S("StandardOutput", "exec", STD_OUTPUT, "standard output"),
    S("StandardError", "exec", STD_OUTPUT, "standard error"),
    S("StandardInputText", "exec", INPUT_TEXT, "data for StandardInput=data"),
    S("StandardInputData", "exec", INPUT_DATA, "data for StandardInput=data"),
    S("AppArmorProfile", "exec", WITH_IGNORE, "AppArmor profile"),
    S("SmackProcessLabel", "exec", WITH_IGNORE, "SMACK label"),
    S("CapabilityBoundingSet", "exec", CAPABILITIES_KIND, "capabilities it may ever have"),
    S("AmbientCapabilities", "exec", CAPABILITIES_KIND, "capabilities kept for a non-root user"),
    S("CPUAffinity", "exec", CPU_AFFINITY, "CPUs the processes may run on"),
    S("NUMAPolicy", "exec", NUMA_POLICY, "NUMA memory policy"),
    S("NUMAMask", "exec", NUMA_MASK, "NUMA nodes of NUMAPolicy="),
    S("RestrictAddressFamilies", "exec", FILTER, "socket families allowed (AF_UNIX, ...)"),
    S("RestrictFileSystems", "exec", FILTER, "file systems it may use (BPF LSM)"),
    S("SystemCallFilter", "exec", FILTER, "system calls allowed (@system-service, ~@mount)"),
    S("SystemCallLog", "exec", FILTER, "system calls logged"),
    S("RestrictNetworkInterfaces", "exec", FILTER, "network interfaces it may use"),
    S("RestrictNamespaces", "exec", NAMESPACES, "namespaces it may create (yes: none)"),
    S("DelegateNamespaces", "exec", DELEGATED_NAMESPACES,
      "namespaces delegated to its user namespace"),
    S("BindPaths", "exec", BIND_PATHS, "bind mounts, writable"),
    S("BindReadOnlyPaths", "exec", BIND_PATHS, "bind mounts, read-only"),
    S("TemporaryFileSystem", "exec", TMPFS, "tmpfs mounts"),
    S("RootHash", "exec", ROOT_HASH, "dm-verity root hash of RootImage="),
    S("RootHashSignature", "exec", ROOT_HASH_SIGNATURE, "signature of RootHash="),
    S("RootImageOptions", "exec", IMAGE_OPTIONS, "mount options of RootImage="),
    S("MountImages", "exec", MOUNT_IMAGES, "disk images mounted"),
    S("ExtensionImages", "exec", EXTENSION_IMAGES, "system extension images overlaid"),
    S("StateDirectory", "exec", DIRECTORY, "directories made in /var/lib"),
    S("RuntimeDirectory", "exec", DIRECTORY, "directories made in /run"),
    S("CacheDirectory", "exec", DIRECTORY, "directories made in /var/cache"),
    S("LogsDirectory", "exec", DIRECTORY, "directories made in /var/log"),
    S("ProtectHostname", "exec", PROTECT_HOSTNAME, "own UTS namespace (hostname)"),
    S("PrivateTmp", "exec", PRIVATE_TMP, "own /tmp and /var/tmp"),
    S("ProtectControlGroups", "exec", PROTECT_CGROUPS, "cgroup tree read-only (or private)"),
    S("PrivateUsers", "exec", PRIVATE_USERS, "own user namespace"),
    S("StateDirectoryQuota", "exec", QUOTA, "quota of StateDirectory="),
    S("CacheDirectoryQuota", "exec", QUOTA, "quota of CacheDirectory="),
    S("LogsDirectoryQuota", "exec", QUOTA, "quota of LogsDirectory="),
    S("StateDirectoryAccounting", "exec", BOOL, "account StateDirectory= use"),
    S("CacheDirectoryAccounting", "exec", BOOL, "account CacheDirectory= use"),
    S("LogsDirectoryAccounting", "exec", BOOL, "account LogsDirectory= use"),
    S("LimitCPU", "exec", CPU_LIMIT, "CPU time limit (RLIMIT_CPU)"),
    S("LimitFSIZE", "exec", SIZE_LIMIT, "file size limit"),
    S("LimitDATA", "exec", SIZE_LIMIT, "data segment limit"),
    S("LimitSTACK", "exec", SIZE_LIMIT, "stack size limit"),
    S("LimitCORE", "exec", SIZE_LIMIT, "core file size limit"),
    S("LimitRSS", "exec", SIZE_LIMIT, "resident set limit"),
    S("LimitNOFILE", "exec", COUNT_LIMIT, "open files limit"),
    S("LimitAS", "exec", SIZE_LIMIT, "address space limit"),
    S("LimitNPROC", "exec", COUNT_LIMIT, "process count limit"),
    S("LimitMEMLOCK", "exec", SIZE_LIMIT, "locked memory limit"),
    S("LimitLOCKS", "exec", COUNT_LIMIT, "file locks limit"),
    S("LimitSIGPENDING", "exec", COUNT_LIMIT, "queued signals limit"),
    S("LimitMSGQUEUE", "exec", SIZE_LIMIT, "POSIX message queue bytes limit"),
    S("LimitNICE", "exec", NICE_LIMIT, "nice level limit"),
    S("LimitRTPRIO", "exec", COUNT_LIMIT, "realtime priority limit"),
    S("LimitRTTIME", "exec", RTTIME_LIMIT, "realtime CPU time limit"),
)

_KILL: tuple[Setting, ...] = (
    S("KillMode", "kill", choice("control-group", "mixed", "process", "none"),
      "which processes are killed on stop"),
    S("SendSIGHUP", "kill", BOOL, "also send SIGHUP on stop"),
    S("SendSIGKILL", "kill", BOOL, "SIGKILL what is left after the timeout"),
    S("KillSignal", "kill", SIGNAL, "signal that stops the service"),
    S("RestartKillSignal", "kill", SIGNAL, "signal that stops it for a restart"),
    S("FinalKillSignal", "kill", SIGNAL, "signal for what survives the SIGKILL timeout"),
    S("WatchdogSignal", "kill", SIGNAL, "signal on a watchdog timeout"),
)

_SERVICE: tuple[Setting, ...] = (
    S("PIDFile", "service", STRING, "PID file of a forking service"),
    S("Type", "service", SERVICE_TYPE, "when the service counts as started"),
    S("ExitType", "service", choice("main", "cgroup"), "when the service counts as ended"),
    S("Restart", "service", RESTART, "when to restart it"),
    S("RestartMode", "service", choice("normal", "direct", "debug"),
      "how a restart goes through the states"),
    S("BusName", "service", STRING, "D-Bus name of a Type=dbus service"),
    S("NotifyAccess", "service", choice("none", "main", "exec", "all"),
      "who may send sd_notify() messages"),
    S("USBFunctionDescriptors", "service", STRING, "USB FunctionFS descriptors file"),
    S("USBFunctionStrings", "service", STRING, "USB FunctionFS strings file"),
    S("OOMPolicy", "service", choice("continue", "stop", "kill"), "what an OOM kill in it does"),
    S("TimeoutStartFailureMode", "service", FAILURE_MODE, "what a start timeout does"),
    S("TimeoutStopFailureMode", "service", FAILURE_MODE, "what a stop timeout does"),
    S("FileDescriptorStorePreserve", "service", choice("restart", boolean=True),
      "keep the fd store when it stops"),
    S("PermissionsStartOnly", "service", BOOL, "old: privileges only for ExecStart="),
    S("RootDirectoryStartOnly", "service", BOOL, "RootDirectory= only for ExecStart="),
    S("RemainAfterExit", "service", BOOL, "stay active after the processes exit"),
    S("GuessMainPID", "service", BOOL, "guess the main PID of a forking service"),
    S("RestartSec", "service", SEC, "delay before a restart"),
    S("RestartMaxDelaySec", "service", SEC, "longest restart delay (with RestartSteps=)"),
    S("TimeoutStartSec", "service", SEC, "start timeout"),
    S("TimeoutStopSec", "service", SEC, "stop timeout"),
    S("TimeoutAbortSec", "service", SEC, "timeout after a watchdog abort"),
    S("RuntimeMaxSec", "service", SEC, "longest run time"),
    S("RuntimeRandomizedExtraSec", "service", SEC, "random extra run time"),
    S("WatchdogSec", "service", SEC, "watchdog timeout"),
    S("TimeoutSec", "service", TIMEOUT, "start and stop timeout"),
    S("FileDescriptorStoreMax", "service", U32, "fds it may store"),
    S("RestartSteps", "service", U32, "steps from RestartSec= to RestartMaxDelaySec="),
    S("ExecCondition", "service", EXEC, "command that decides whether to start"),
    S("ExecStartPre", "service", EXEC, "command before the main one"),
    S("ExecStartPost", "service", EXEC, "command after the main one started"),
    S("ExecReload", "service", EXEC, "command that reloads the service"),
    S("ExecReloadPost", "service", EXEC, "command after a reload"),
    S("ExecStop", "service", EXEC, "command that stops the service"),
    S("ExecStopPost", "service", EXEC, "command after the service stopped"),
    S("RestartPreventExitStatus", "service", EXIT_STATUS, "exits that never restart"),
    S("RestartForceExitStatus", "service", EXIT_STATUS, "exits that always restart"),
    S("SuccessExitStatus", "service", EXIT_STATUS, "exits that count as success"),
    S("OpenFile", "service", OPEN_FILE, "file the manager opens and passes as an fd"),
    S("ReloadSignal", "service", SIGNAL, "signal of a Type=notify-reload reload"),
)

_DEPENDENCIES = (
    ("Requires", "units started with it; it fails if they do"),
    ("Requisite", "units that must already be active"),
    ("Wants", "units started with it"),
    ("BindsTo", "as Requires=, and it stops when they stop"),
    ("PartOf", "units whose stop and restart it follows"),
    ("Upholds", "units restarted whenever they stop"),
    ("Conflicts", "units stopped when it starts"),
    ("Before", "units that start after it"),
    ("After", "units that start before it"),
    ("OnSuccess", "units started when it succeeds"),
    ("OnFailure", "units started when it fails"),
    ("PropagatesReloadTo", "units reloaded with it"),
    ("ReloadPropagatedFrom", "units whose reload reloads it"),
    ("PropagatesStopTo", "units stopped with it"),
    ("StopPropagatedFrom", "units whose stop stops it"),
    ("JoinsNamespaceOf", "units whose namespaces it joins"),
)

_UNIT: tuple[Setting, ...] = (
    S("Description", "unit", STRING, "description of the unit"),
    S("SourcePath", "unit", STRING, "file the unit was made from"),
    S("OnFailureJobMode", "unit", STRING, "job mode of the OnFailure= units"),
    S("JobTimeoutAction", "unit", EMERGENCY_ACTION, "what a job timeout does"),
    S("JobTimeoutRebootArgument", "unit", STRING, "reboot argument of JobTimeoutAction="),
    S("StartLimitAction", "unit", EMERGENCY_ACTION, "what hitting the start limit does"),
    S("FailureAction", "unit", EMERGENCY_ACTION, "what a failure does"),
    S("SuccessAction", "unit", EMERGENCY_ACTION, "what a success does"),
    S("RebootArgument", "unit", STRING, "reboot argument of the actions"),
    S("CollectMode", "unit", choice("inactive", "inactive-or-failed"), "when it is unloaded"),
    S("StopWhenUnneeded", "unit", BOOL, "stop when no unit wants it"),
    S("RefuseManualStart", "unit", BOOL, "refuse starts by hand"),
    S("RefuseManualStop", "unit", BOOL, "refuse stops by hand"),
    S("AllowIsolate", "unit", BOOL, "may be isolated to"),
    S("IgnoreOnIsolate", "unit", BOOL, "survive isolate"),
    S("SurviveFinalKillSignal", "unit", BOOL, "survive the final kill at shutdown"),
    S("DefaultDependencies", "unit", BOOL, "add the default dependencies"),
    S("JobTimeoutSec", "unit", SEC, "timeout of a job for the unit"),
    S("JobRunningTimeoutSec", "unit", SEC, "timeout of a running job"),
    S("StartLimitIntervalSec", "unit", SEC, "start rate limit interval"),
    S("StartLimitBurst", "unit", U32, "starts allowed per interval"),
    S("SuccessActionExitStatus", "unit", ACTION_STATUS, "exit status of SuccessAction=exit"),
    S("FailureActionExitStatus", "unit", ACTION_STATUS, "exit status of FailureAction=exit"),
    S("Documentation", "unit", DOCUMENTATION, "documentation URLs"),
    S("RequiresMountsFor", "unit", PLAIN_PATHS, "needs the mounts of these paths"),
    S("WantsMountsFor", "unit", PLAIN_PATHS, "wants the mounts of these paths"),
    S("Markers", "unit", WORDS, "needs-reload, needs-restart"),
    *(S(name, "unit", UNITS, summary) for name, summary in _DEPENDENCIES),
    *(S("Condition" + check, "unit", CONDITION, f"start only if the {check} check holds")
      for check in _CONDITIONS),
    *(S("Assert" + check, "unit", ASSERT, f"fail the start unless the {check} check holds")
      for check in _CONDITIONS),
)
# fmt: on

SETTINGS: tuple[Setting, ...] = (*_UNIT, *_SERVICE, *_EXEC, *_KILL, *_CGROUP)
HANDLERS: dict[str, Handler] = {setting.name: setting.parse for setting in SETTINGS}
KNOWN_PROPERTIES = tuple(sorted(HANDLERS))
_BY_FOLDED = {name.casefold(): name for name in KNOWN_PROPERTIES}

# Names systemd-run takes that are refused here, and why.
REFUSED = {
    **dict.fromkeys(("ExecStart", "ExecStartEx"), "the command line is ExecStart="),
    **dict.fromkeys(
        ("ExecConditionEx", "ExecStartPreEx", "ExecStartPostEx", "ExecReloadEx",
         "ExecReloadPostEx", "ExecStopEx", "ExecStopPostEx", "PrivateTmpEx",
         "ProtectControlGroupsEx", "PrivateUsersEx", "ProtectHostnameEx", "ImportCredentialEx"),
        "a compatibility name: use the name without 'Ex' (systemd picks the Ex form itself)",
    ),
    **{
        name: f"cgroup v1 only, ignored by systemd 258: use {use}"
        for name, use in (
            ("MemoryLimit", "MemoryMax="), ("CPUShares", "CPUWeight="),
            ("StartupCPUShares", "StartupCPUWeight="), ("BlockIOAccounting", "IOAccounting="),
            ("BlockIOWeight", "IOWeight="), ("StartupBlockIOWeight", "StartupIOWeight="),
            ("BlockIODeviceWeight", "IODeviceWeight="),
            ("BlockIOReadBandwidth", "IOReadBandwidthMax="),
            ("BlockIOWriteBandwidth", "IOWriteBandwidthMax="),
        )
    },
}  # fmt: skip


def suggestions(name: str) -> list[str]:
    """Known names close to `name`: its case-insensitive twin, else up to 3 near ones."""
    if name.casefold() in _BY_FOLDED:
        return [_BY_FOLDED[name.casefold()]]
    close = difflib.get_close_matches(name.casefold(), list(_BY_FOLDED), n=3)
    return [_BY_FOLDED[folded] for folded in close]


def _alternatives(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def unknown_property_message(name: str) -> str:
    near = suggestions(name)
    hint = f" (did you mean {_alternatives(near)}?)" if near else ""
    return f"unknown property {shown(name)}{hint}: list them with runas-podman properties"


def parse_assignment(text: str) -> list[UnitProperty]:
    """`NAME=VALUE` -> the D-Bus properties it sets. Raises UsageError naming the problem."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise UsageError(
            f"property {shown(text)} is not of the form NAME=VALUE (e.g. -p MemoryMax=1G)"
        )
    handler = HANDLERS.get(name)
    if handler is None:
        if name in REFUSED:
            raise UsageError(f"property {name} is not taken here: {REFUSED[name]}")
        raise UsageError(unknown_property_message(name))
    try:
        if "\0" in value:
            raise PropertyValueError("a NUL character cannot be passed")
        try:
            value.encode()
        except UnicodeEncodeError:
            raise PropertyValueError(f"{shown(value)} is not valid UTF-8") from None
        return handler(name, value)
    except PropertyValueError as error:
        raise UsageError(f"bad value for property {name}: {error}") from None


def describe_properties() -> list[tuple[str, str, str]]:
    """(name, D-Bus signature(s), one-line description) of every setting, by name."""
    return [(s.name, s.signature_text, s.summary) for s in sorted(SETTINGS, key=lambda s: s.name)]


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def properties_markdown() -> str:
    """docs/properties.md: every setting, by family then name."""
    lines = [
        "# Unit properties (`-p NAME=VALUE`)",
        "",
        "Every setting `systemd-run -p` takes for a service (systemd 258's",
        "`src/shared/bus-unit-util.c`), as `runas-podman properties` and",
        "`runas --list-properties` list them. Each is parsed as systemd-run parses it and",
        "sent as the D-Bus property it sends: where the signature column names a property,",
        "that is the name on the wire (`EnvironmentFile=` goes as `EnvironmentFiles`).",
        "A value systemd would refuse is refused before anything starts, with the reason;",
        "an unknown name gets the closest known ones. Generated from",
        "`runas_podman/core/unitprops.py` (`properties_markdown()`); a unit test keeps it in sync.",
        "",
        "Not taken: `ExecStart=` (the command line is the command), the `…Ex` compatibility",
        "names (systemd-run picks the `Ex` form itself), and the cgroup v1 settings",
        "systemd 258 ignores (`MemoryLimit=`, `CPUShares=`, `BlockIO…=`).",
        "",
        "Families: `unit` (any unit), `service`, `exec` (how processes run), `kill`",
        "(how they are stopped), `cgroup` (resources).",
        "",
        "| Name | Family | D-Bus signature | Value syntax |",
        "|---|---|---|---|",
    ]
    for family in FAMILIES:
        for s in sorted((s for s in SETTINGS if s.family == family), key=lambda s: s.name):
            sends = " or ".join(
                f"`{signature}`" if wire == s.name else f"`{wire}` `{signature}`"
                for wire, signature in s.sends
            )
            lines.append(f"| `{s.name}` | {family} | {sends} | {_cell(s.syntax)} |")
    return "\n".join(lines) + "\n"
