"""Parse `-p NAME=VALUE` assignments the way `systemd-run -p` / `systemctl set-property` do.

Pure: text in, D-Bus (name, signature, value) triples out. Only the commonly used
properties are known; anything else is refused up front rather than sent to systemd
with a guessed type. The accepted syntax mirrors systemd's parse_boolean(),
parse_size() (base 1024), parse_sec() and extract_first_word() (quotes, C escapes).
"""

from __future__ import annotations

import re
import signal
from collections.abc import Callable
from dataclasses import dataclass

from .errors import UsageError

UINT64_MAX = 2**64 - 1
UINT32_MAX = 2**32 - 1
USEC_PER_SEC = 1_000_000


@dataclass(frozen=True)
class UnitProperty:
    """One entry of StartTransientUnit's `a(sv)` properties array."""

    name: str
    signature: str
    value: object


class PropertyValueError(ValueError):
    """A value that does not parse; the caller adds which property it was."""


# --- scalar parsers ---------------------------------------------------------

_TRUE = {"1", "yes", "y", "true", "t", "on"}
_FALSE = {"0", "no", "n", "false", "f", "off"}


def parse_boolean(text: str) -> bool:
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise PropertyValueError(f"'{text}' is not a boolean (use yes/no, true/false, on/off, 1/0)")


_SIZE_FACTORS = {
    "E": 1024**6,
    "P": 1024**5,
    "T": 1024**4,
    "G": 1024**3,
    "M": 1024**2,
    "K": 1024,
    "B": 1,
    "": 1,
}
_SIZE_PART = re.compile(r"\s*([0-9]+)(?:\.([0-9]+))?\s*([EPTGMKB]?)")


def parse_size(text: str) -> int:
    """Bytes from '512M', '1.5G', '1G 512M' (base 1024), like systemd's parse_size()."""
    pos, total, matched = 0, 0, False
    while pos < len(text):
        part = _SIZE_PART.match(text, pos)
        if part is None or part.end() == pos:
            if text[pos:].strip() == "" and matched:
                break
            raise PropertyValueError(f"'{text}' is not a size (e.g. 512M, 1.5G, 2T)")
        whole, fraction, unit = part.groups()
        factor = _SIZE_FACTORS[unit]
        total += int(whole) * factor
        if fraction:
            total += int(fraction) * factor // 10 ** len(fraction)
        matched = True
        pos = part.end()
    if not matched or total > UINT64_MAX:
        raise PropertyValueError(f"'{text}' is not a size (e.g. 512M, 1.5G, 2T)")
    return total


_TIME_UNITS_USEC = {
    **dict.fromkeys(("us", "usec", "µs", "μs"), 1),
    **dict.fromkeys(("ms", "msec"), 1000),
    **dict.fromkeys(("", "s", "sec", "second", "seconds"), USEC_PER_SEC),
    **dict.fromkeys(("m", "min", "minute", "minutes"), 60 * USEC_PER_SEC),
    **dict.fromkeys(("h", "hr", "hour", "hours"), 3600 * USEC_PER_SEC),
    **dict.fromkeys(("d", "day", "days"), 86400 * USEC_PER_SEC),
    **dict.fromkeys(("w", "week", "weeks"), 7 * 86400 * USEC_PER_SEC),
    **dict.fromkeys(("M", "month", "months"), 2629800 * USEC_PER_SEC),
    **dict.fromkeys(("y", "year", "years"), 31557600 * USEC_PER_SEC),
}
_TIME_PART = re.compile(r"\s*([0-9]+)(?:\.([0-9]+))?\s*([a-zA-Zµμ]*)")


def parse_timespan_usec(text: str) -> int:
    """Microseconds from '90', '1.5s', '5min 20s', 'infinity', like systemd's parse_sec()."""
    if text.strip() == "infinity":
        return UINT64_MAX
    pos, total, matched = 0, 0, False
    while pos < len(text):
        part = _TIME_PART.match(text, pos)
        if part is None or part.end() == pos:
            if text[pos:].strip() == "" and matched:
                break
            raise PropertyValueError(f"'{text}' is not a time span (e.g. 90, 500ms, 5min 20s)")
        whole, fraction, unit = part.groups()
        if unit not in _TIME_UNITS_USEC:
            raise PropertyValueError(f"'{text}' has an unknown time unit '{unit}'")
        factor = _TIME_UNITS_USEC[unit]
        total += int(whole) * factor
        if fraction:
            total += int(fraction) * factor // 10 ** len(fraction)
        matched = True
        pos = part.end()
    if not matched or total >= UINT64_MAX:
        raise PropertyValueError(f"'{text}' is not a time span (e.g. 90, 500ms, 5min 20s)")
    return total


_INTEGER = re.compile(r"[+-]?[0-9]+")


def parse_int(text: str, low: int, high: int) -> int:
    """ASCII digits only: Python's int() also takes full-width digits and
    '1_000', systemd does not."""
    if not _INTEGER.fullmatch(text.strip(" \t")):
        raise PropertyValueError(f"'{text}' is not an integer (ASCII digits only)")
    number = int(text.strip(" \t"), 10)
    if not low <= number <= high:
        raise PropertyValueError(f"{number} is out of range {low}..{high}")
    return number


def parse_percent(text: str) -> float:
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)%\s*", text)
    if match is None:
        raise PropertyValueError(f"'{text}' is not a percentage (e.g. 50%)")
    return float(match.group(1))


_C_ESCAPES = {
    "a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
    "\\": "\\", '"': '"', "'": "'", "s": " ",
}  # fmt: skip


def split_words(text: str) -> list[str]:
    """Split like systemd's extract_first_word(EXTRACT_UNQUOTE|EXTRACT_CUNESCAPE).

    Words are separated by whitespace; single or double quotes group; backslash
    escapes (C style, plus \\xNN) work inside and outside quotes.
    """
    words: list[str] = []
    current: list[str] = []
    in_word = False
    quote: str | None = None
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\":
            if i + 1 >= len(text):
                raise PropertyValueError(f"'{text}' ends in a lone backslash")
            nxt = text[i + 1]
            if nxt == "x" and re.fullmatch(r"[0-9a-fA-F]{2}", text[i + 2 : i + 4]):
                current.append(chr(int(text[i + 2 : i + 4], 16)))
                i += 4
            elif nxt in _C_ESCAPES:
                current.append(_C_ESCAPES[nxt])
                i += 2
            else:
                raise PropertyValueError(f"'{text}' has an unknown escape '\\{nxt}'")
            in_word = True
            continue
        if quote is not None:
            if char == quote:
                quote = None
            else:
                current.append(char)
        elif char in "'\"":
            quote = char
            in_word = True
        elif char.isspace():
            if in_word:
                words.append("".join(current))
                current, in_word = [], False
        else:
            current.append(char)
            in_word = True
        i += 1
    if quote is not None:
        raise PropertyValueError(f"'{text}' has an unterminated {quote} quote")
    if in_word:
        words.append("".join(current))
    return words


ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse_env_assignment(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not ENV_NAME.fullmatch(name):
        raise PropertyValueError(f"'{text}' is not an environment assignment NAME=VALUE")
    return name, value


# --- property handlers ------------------------------------------------------

Handler = Callable[[str, str], list[UnitProperty]]


def _string(name: str, value: str) -> list[UnitProperty]:
    return [UnitProperty(name, "s", value)]


def _boolean(name: str, value: str) -> list[UnitProperty]:
    return [UnitProperty(name, "b", parse_boolean(value))]


def _word_list(name: str, value: str) -> list[UnitProperty]:
    return [UnitProperty(name, "as", split_words(value))]


def _environment(name: str, value: str) -> list[UnitProperty]:
    words = split_words(value)
    names = [parse_env_assignment(word)[0] for word in words]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        # systemd rejects the whole call for this (strv_env_is_valid).
        raise PropertyValueError(f"variable {duplicates[0]} is set twice in one assignment")
    return [UnitProperty(name, "as", words)]


def _env_names(name: str, value: str) -> list[UnitProperty]:
    words = split_words(value)
    for word in words:
        if not ENV_NAME.fullmatch(word.partition("=")[0]):
            raise PropertyValueError(f"'{word}' is not an environment variable name")
    return [UnitProperty(name, "as", words)]


def _ranged_int(low: int, high: int) -> Handler:
    def handler(name: str, value: str) -> list[UnitProperty]:
        return [UnitProperty(name, "i", parse_int(value, low, high))]

    return handler


def _weight(name: str, value: str) -> list[UnitProperty]:
    if value == "":
        return [UnitProperty(name, "t", UINT64_MAX)]
    if value == "idle" and name in ("CPUWeight", "StartupCPUWeight"):
        return [UnitProperty(name, "t", 0)]
    return [UnitProperty(name, "t", parse_int(value, 1, 10000))]


def _memory(name: str, value: str) -> list[UnitProperty]:
    """Sizes, 'infinity', or a percentage of physical memory sent as *Scale."""
    if value in ("infinity", ""):
        return [UnitProperty(name, "t", UINT64_MAX)]
    if value.strip().endswith("%"):
        scale = round(parse_percent(value) * UINT32_MAX / 100)
        if scale > UINT32_MAX:
            raise PropertyValueError(f"'{value}' is above 100%")
        return [UnitProperty(name + "Scale", "u", scale)]
    return [UnitProperty(name, "t", parse_size(value))]


def _tasks_max(name: str, value: str) -> list[UnitProperty]:
    if value in ("infinity", ""):
        return [UnitProperty(name, "t", UINT64_MAX)]
    if value.strip().endswith("%"):
        scale = round(parse_percent(value) * UINT32_MAX / 100)
        if scale > UINT32_MAX:
            raise PropertyValueError(f"'{value}' is above 100%")
        return [UnitProperty(name + "Scale", "u", scale)]
    return [UnitProperty(name, "t", parse_int(value, 1, UINT64_MAX - 1))]


def _cpu_quota(name: str, value: str) -> list[UnitProperty]:
    if value == "":
        return [UnitProperty("CPUQuotaPerSecUSec", "t", UINT64_MAX)]
    percent = parse_percent(value)
    if percent <= 0:
        raise PropertyValueError(f"'{value}' must be above 0%")
    return [UnitProperty("CPUQuotaPerSecUSec", "t", round(percent * USEC_PER_SEC / 100))]


def _seconds_as_usec(name: str, value: str) -> list[UnitProperty]:
    # systemd names these *Sec in unit files and *USec on D-Bus.
    return [UnitProperty(name.removesuffix("Sec") + "USec", "t", parse_timespan_usec(value))]


def _limit(parse_one: Callable[[str], int]) -> Handler:
    """Limit*=N or SOFT:HARD or infinity -> Limit* (hard) and Limit*Soft."""

    def one(text: str) -> int:
        return UINT64_MAX if text == "infinity" else parse_one(text)

    def handler(name: str, value: str) -> list[UnitProperty]:
        soft_text, sep, hard_text = value.partition(":")
        soft = one(soft_text)
        hard = one(hard_text) if sep else soft
        if soft > hard:
            raise PropertyValueError(f"soft limit above hard limit in '{value}'")
        return [UnitProperty(name, "t", hard), UnitProperty(name + "Soft", "t", soft)]

    return handler


def _count(text: str) -> int:
    return parse_int(text, 0, UINT64_MAX - 1)


def _seconds(text: str) -> int:
    return parse_timespan_usec(text) // USEC_PER_SEC


def _umask(name: str, value: str) -> list[UnitProperty]:
    if not re.fullmatch(r"[0-7]{1,4}", value):
        raise PropertyValueError(f"'{value}' is not an octal umask (e.g. 0077)")
    return [UnitProperty(name, "u", int(value, 8))]


def _signal(name: str, value: str) -> list[UnitProperty]:
    text = value  # systemd's signal_from_string() is case-sensitive
    if text.isascii() and text.isdigit():
        number = int(text)
        if not 1 <= number < signal.NSIG:
            raise PropertyValueError(f"'{value}' is not a signal number")
        return [UnitProperty(name, "i", number)]
    try:
        return [UnitProperty(name, "i", int(signal.Signals["SIG" + text.removeprefix("SIG")]))]
    except KeyError:
        raise PropertyValueError(f"'{value}' is not a signal name (e.g. SIGTERM)") from None


def _working_directory(name: str, value: str) -> list[UnitProperty]:
    path = value.removeprefix("-")
    if path != "~" and not path.startswith("/"):
        raise PropertyValueError(f"'{value}' must be an absolute path or ~ (optionally '-' first)")
    return [UnitProperty(name, "s", value)]


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


def _capabilities(name: str, value: str) -> list[UnitProperty]:
    """`CAP_A CAP_B`, or `~CAP_A` for all but those (`~` alone: all), as a bit mask."""
    invert = value.startswith("~")
    mask = 0
    for word in value.removeprefix("~").split():
        cap = word.upper() if word.upper().startswith("CAP_") else "CAP_" + word.upper()
        if cap not in CAPABILITIES:
            raise PropertyValueError(f"'{word}' is not a capability name (e.g. CAP_NET_ADMIN)")
        mask |= 1 << CAPABILITIES.index(cap)
    return [UnitProperty(name, "t", (~mask & UINT64_MAX) if invert else mask)]


def _journal_fields(name: str, value: str) -> list[UnitProperty]:
    field, sep, _ = value.partition("=")
    if not sep or not re.fullmatch(r"[A-Z0-9_]+", field) or field.startswith("_"):
        raise PropertyValueError(f"'{value}' is not FIELD=VALUE with an upper-case journal field")
    return [UnitProperty(name, "aay", [value.encode()])]


def _choice(*choices: str) -> Handler:
    def handler(name: str, value: str) -> list[UnitProperty]:
        if value not in choices:
            raise PropertyValueError(f"'{value}' is not one of: {', '.join(choices)}")
        return [UnitProperty(name, "s", value)]

    return handler


_STRINGS = (
    "Description", "Slice", "PAMName", "TTYPath", "SyslogIdentifier", "User", "Group",
    "RootDirectory", "UtmpIdentifier", "StandardInput", "StandardOutput", "StandardError",
)  # fmt: skip
# ExecXYZ= prefixes as bus-unit-util reads them, and the flag each sets (in systemd's order).
_EXEC_FLAGS = ("ignore-failure", "privileged", "no-setuid", "ambient", "no-env-expand")
_EXEC_PREFIXES = {"-": "ignore-failure", ":": "no-env-expand", "+": "privileged"}


def _exec_command(name: str, value: str) -> list[UnitProperty]:
    """ExecStop= and friends: prefixes, then a command line (systemd's quoting).

    As systemd-run does, a setting whose prefixes need more than ignore-failure is sent
    as its `…Ex` twin with the flags as strings ("-:/bin/sh …" -> ExecStopEx).
    """
    flags: set[str] = set()
    explicit_path = False
    rest = value
    while rest:
        char = rest[0]
        if char in _EXEC_PREFIXES and _EXEC_PREFIXES[char] not in flags:
            flags.add(_EXEC_PREFIXES[char])
        elif char == "@" and not explicit_path:
            explicit_path = True
        elif rest.startswith("!!") and "ambient" not in flags:
            flags.add("ambient")
            rest = rest[1:]
        elif char == "!" and "no-setuid" not in flags:
            flags.add("no-setuid")
        else:
            break
        rest = rest[1:]
    words = split_words(rest)
    if not words or not words[0].startswith("/"):
        raise PropertyValueError(f"'{value}' needs an absolute executable path")
    path, argv = (words[0], words[1:]) if explicit_path else (words[0], words)
    if not argv:
        raise PropertyValueError(f"'{value}' gives no argv[0] after the @path")
    ex = name.endswith("Ex") or bool(flags - {"ignore-failure"})
    if ex:
        field = name if name.endswith("Ex") else f"{name}Ex"
        ordered = [flag for flag in _EXEC_FLAGS if flag in flags]
        return [UnitProperty(field, "a(sasas)", [[path, argv, ordered]])]
    return [UnitProperty(name, "a(sasb)", [[path, argv, "ignore-failure" in flags]])]


_OPEN_FILE_FLAGS = {"read-only": 1, "append": 2, "truncate": 4, "graceful": 8}


def _open_file(name: str, value: str) -> list[UnitProperty]:
    """OpenFile=PATH[:NAME[:FLAGS]], ':' and '\\' escaped as systemd writes them."""
    fields = value.split(":")
    if len(fields) > 3 or not fields[0]:
        raise PropertyValueError(f"'{value}' is not PATH[:NAME[:FLAGS]]")
    path = fields[0].replace("\\x3a", ":").replace("\\\\", "\\")
    if not path.startswith("/"):
        raise PropertyValueError(f"'{value}': the path must be absolute")
    fd_name = fields[1] if len(fields) > 1 and fields[1] else path.rsplit("/", 1)[-1]
    bits = 0
    for flag in filter(None, fields[2].split(",")) if len(fields) > 2 else ():
        if flag not in _OPEN_FILE_FLAGS:
            raise PropertyValueError(f"unknown OpenFile= flag '{flag}'")
        bits |= _OPEN_FILE_FLAGS[flag]
    return [UnitProperty(name, "a(sst)", [[path, fd_name.replace("\\x3a", ":"), bits]])]


_BOOLEANS = (
    "NoNewPrivileges", "PrivateTmp", "PrivateDevices", "PrivateNetwork", "PrivateIPC",
    "PrivateMounts", "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs",
    "ProtectControlGroups", "ProtectClock", "ProtectHostname", "RestrictRealtime",
    "RestrictSUIDSGID", "LockPersonality", "MemoryDenyWriteExecute", "RemainAfterExit",
    "SendSIGHUP", "SendSIGKILL", "IgnoreSIGPIPE", "Delegate", "CPUAccounting",
    "MemoryAccounting", "TasksAccounting", "IOAccounting", "DynamicUser", "RemoveIPC",
    "TTYReset", "TTYVHangup", "TTYVTDisallocate",
)  # fmt: skip
_WORD_LISTS = (
    "After", "Before", "Requires", "Requisite", "Wants", "BindsTo", "PartOf", "Conflicts",
    "Upholds", "SupplementaryGroups", "ReadOnlyPaths", "ReadWritePaths", "InaccessiblePaths",
    "ExecPaths", "NoExecPaths",
)  # fmt: skip
_TIMES = (
    "RuntimeMaxSec", "RuntimeRandomizedExtraSec", "TimeoutStartSec", "TimeoutStopSec",
    "TimeoutAbortSec", "RestartSec", "WatchdogSec",
)  # fmt: skip
_SIZE_LIMITS = (
    "LimitFSIZE", "LimitDATA", "LimitSTACK", "LimitCORE", "LimitRSS", "LimitAS",
    "LimitMEMLOCK", "LimitMSGQUEUE",
)  # fmt: skip
_COUNT_LIMITS = (
    "LimitNOFILE", "LimitNPROC", "LimitLOCKS", "LimitSIGPENDING", "LimitNICE", "LimitRTPRIO",
)  # fmt: skip

HANDLERS: dict[str, Handler] = {
    **dict.fromkeys(_STRINGS, _string),
    **dict.fromkeys(_BOOLEANS, _boolean),
    **dict.fromkeys(_WORD_LISTS, _word_list),
    **dict.fromkeys(_TIMES, _seconds_as_usec),
    **dict.fromkeys(_SIZE_LIMITS, _limit(parse_size)),
    **dict.fromkeys(_COUNT_LIMITS, _limit(_count)),
    "LimitCPU": _limit(_seconds),
    "LimitRTTIME": _limit(parse_timespan_usec),
    "Environment": _environment,
    **dict.fromkeys(
        (
            "ExecCondition",
            "ExecStartPre",
            "ExecStartPost",
            "ExecReload",
            "ExecStop",
            "ExecStopPost",
        ),
        _exec_command,
    ),
    "OpenFile": _open_file,
    "UnsetEnvironment": _env_names,
    "PassEnvironment": _env_names,
    "Nice": _ranged_int(-20, 19),
    "OOMScoreAdjust": _ranged_int(-1000, 1000),
    "CPUWeight": _weight,
    "StartupCPUWeight": _weight,
    "IOWeight": _weight,
    "StartupIOWeight": _weight,
    "MemoryMax": _memory,
    "MemoryHigh": _memory,
    "MemoryLow": _memory,
    "MemoryMin": _memory,
    "MemorySwapMax": _memory,
    "TasksMax": _tasks_max,
    "CPUQuota": _cpu_quota,
    "UMask": _umask,
    "KillSignal": _signal,
    "FinalKillSignal": _signal,
    "WorkingDirectory": _working_directory,
    "AmbientCapabilities": _capabilities,
    "CapabilityBoundingSet": _capabilities,
    "LogExtraFields": _journal_fields,
    "Type": _choice(
        "simple", "exec", "forking", "oneshot", "dbus", "notify", "notify-reload", "idle"
    ),
    "KillMode": _choice("control-group", "mixed", "process", "none"),
    "CollectMode": _choice("inactive", "inactive-or-failed"),
    "ProtectSystem": _choice("yes", "no", "true", "false", "full", "strict"),
    "ProtectHome": _choice("yes", "no", "true", "false", "read-only", "tmpfs"),
    "ProtectProc": _choice("noaccess", "invisible", "ptraceable", "default"),
    "ProcSubset": _choice("all", "pid"),
    "KeyringMode": _choice("inherit", "private", "shared"),
    "NotifyAccess": _choice("none", "main", "exec", "all"),
}

KNOWN_PROPERTIES = tuple(sorted(HANDLERS))


def parse_assignment(text: str) -> list[UnitProperty]:
    """`NAME=VALUE` -> the D-Bus properties it sets. Raises UsageError naming the problem."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise UsageError(f"property '{text}' is not of the form NAME=VALUE (e.g. -p MemoryMax=1G)")
    handler = HANDLERS.get(name)
    if handler is None:
        raise UsageError(
            f"unknown property '{name}' in '{text}': see the supported list in docs/cli.md"
        )
    try:
        return handler(name, value)
    except PropertyValueError as error:
        raise UsageError(f"bad value for property {name}: {error}") from None
