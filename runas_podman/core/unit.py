"""The words of a unit that both the plan (model.py) and the -p parser (unitprops.py)
speak: one property on the wire, the unit types. A leaf: it imports nothing of ours, so
the parser never needs the plan's types module, nor the plan the parser's table."""

from __future__ import annotations

from typing import NamedTuple

# The unit types systemd knows (unit_name_is_valid: a name ends in one of them).
UNIT_TYPES = (
    "service", "socket", "target", "device", "mount", "automount", "swap", "timer", "path",
    "slice", "scope",
)  # fmt: skip


class UnitProperty(NamedTuple):
    """One entry of StartTransientUnit's `a(sv)` properties array (unitprops.py makes them
    from `-p` text). A NamedTuple: made at import time a dataclass costs ~0.5 ms."""

    name: str
    signature: str
    value: object


_UNIT_NAME_CHARS = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ:-_.\\")


def unit_name_is_valid(name: str) -> bool:
    """systemd's unit_name_is_valid(UNIT_NAME_PLAIN|UNIT_NAME_INSTANCE): 'a.service',
    'b@1.service'; not a template ('a@.service') nor '@x.service'. THE check of a unit
    name (--unit, --slice, -p Slice=, the lifeline's)."""
    prefix, dot, suffix = name.rpartition(".")
    if not dot or not prefix or suffix not in UNIT_TYPES or len(name) >= 256:
        return False
    head, at, instance = prefix.partition("@")
    if not head or any(c not in _UNIT_NAME_CHARS for c in head + instance.replace("@", "")):
        return False
    return not at or bool(instance)


def fdname_is_valid(name: str) -> bool:
    """systemd's fdname_is_valid(): printable ASCII (space included) but ':', at most 255
    characters. THE check of an fd name (--open-file, --pass-fd, -p OpenFile=)."""
    return len(name) <= 255 and all(" " <= c <= "~" and c != ":" for c in name)
