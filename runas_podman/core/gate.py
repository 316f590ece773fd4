"""THE gate for every string that reaches systemd as a unit property or a unit name.

systemd writes a transient unit's settings into /run/systemd/transient/UNIT.service and
loads that file again at every daemon-reload. Measured in the testbed (252, 257, 262):
it C-escapes Environment= and the Exec*= command lines, but writes Description=,
WorkingDirectory=, TTYPath=, SyslogIdentifier= and other strings as they are, so a
newline in one of them becomes a line of the unit file (`[Service]` then
`ExecStopPost=` run as root at the next stop). Hence: no string of a plan or a session
reaches systemd with a control character (C0 with newline and CR, DEL, C1), except in
the settings systemd escapes itself. Every plan passes here when it is made
(LaunchPlan), and every StartTransientUnit call again before it is sent (properties),
which also covers what a session adds (TTYPath=).
"""

from __future__ import annotations

from collections.abc import Iterable

from runas_podman.core.errors import UsageError, is_control, one_line, shown

# Settings systemd writes C-escaped (measured: a newline in them stays `\n` in the file):
# Environment=, and the command lines (ExecStart=, ExecStop=, ... and their Ex forms, known
# by their D-Bus signature; not ExecSearchPath= or ExecPaths=, written raw). Byte arrays
# (`ay`) are escaped or encoded too (_strings).
ESCAPED_BY_SYSTEMD = frozenset({"Environment"})
COMMAND_LINE_SIGNATURES = frozenset({"a(sasb)", "a(sasas)"})


def first_control(text: str) -> str | None:
    """The first control character of TEXT, escaped for a message, or None."""
    for char in text:
        if is_control(char):
            return one_line(char)
    return None


def escaped_by_systemd(property_name: str, signature: str) -> bool:
    return property_name in ESCAPED_BY_SYSTEMD or signature in COMMAND_LINE_SIGNATURES


def check_text(what: str, text: str, fix: str = "remove it") -> None:
    """Refuse TEXT, named WHAT in the message, if it holds a control character."""
    found = first_control(text)
    if found is not None:
        raise UsageError(
            f"{what} {shown(text)} contains a control character ({found}), which would "
            f"become a line of the unit file: {fix}"
        )


def _strings(value: object) -> Iterable[str]:
    """The strings in a property's value. Byte arrays are not text to systemd: it writes
    them escaped or encoded (measured: LogExtraFields=, SetCredential= C-escaped; IP
    addresses, base64 data), so they are left out."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)


def check_property(name: str, signature: str, value: object, unit: str = "") -> None:
    """One property (of UNIT, for the message): every string in its value."""
    if escaped_by_systemd(name, signature):
        return
    for text in _strings(value):
        check_text(f"{unit}: {name}=" if unit else f"{name}=", text)


def check_unit(name: str, properties: Iterable[tuple[str, str, object]]) -> None:
    """A whole transient unit: its name and every property (name, signature, value)."""
    check_text("the unit name", name)
    for prop_name, signature, value in properties:
        check_property(prop_name, signature, value, name)
