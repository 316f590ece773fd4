"""The -p parser against systemd's own (src/shared/bus-unit-util.c and the helpers it
calls: extract_first_word, safe_atou, parse_size, parse_time, parse_permyriad,
parse_cpu_set, in_addr_prefix_from_string_auto, ...). Expected D-Bus values are worked
out by hand from that code."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runas_podman.core import unitprops
from runas_podman.core.errors import UsageError
from runas_podman.core.unitprops import (
    HANDLERS,
    KNOWN_PROPERTIES,
    SETTINGS,
    UINT32_MAX,
    UINT64_MAX,
    PropertyValueError,
    UnitProperty,
    describe_properties,
    parse_assignment,
    parse_boolean,
    parse_permyriad,
    parse_size,
    parse_timespan_nsec,
    parse_timespan_usec,
    split_words,
    suggestions,
)

P = UnitProperty
BY_NAME = {setting.name: setting for setting in SETTINGS}
MS_REC = 16384
AF_INET, AF_INET6 = 2, 10
ALL_NAMESPACES = 0x7E020080  # cgroup ipc net mnt pid user uts time


def scale(permyriad: int) -> int:
    """UINT32_SCALE_FROM_PERMYRIAD()."""
    return (permyriad * UINT32_MAX + 5000) // 10000


def assert_sends_what_it_declares(text: str, properties: list[UnitProperty]) -> None:
    setting = BY_NAME[text.partition("=")[0]]
    for prop in properties:
        assert (prop.name, prop.signature) in setting.sends, (text, prop)


# --- sizes, times, percentages, booleans ----------------------------------------------------

SIZE_UNITS = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
ORDERED_SIZE_UNITS = ("T", "G", "M", "K", "B")  # parse_size() wants them decreasing
TIME_UNITS = {"us": 1, "ms": 1000, "s": 10**6, "min": 60 * 10**6, "h": 3600 * 10**6}


@given(st.integers(0, 10**6), st.sampled_from(sorted(SIZE_UNITS)))
def test_size_with_any_unit(number: int, unit: str) -> None:
    assert parse_size(f"{number}{unit}") == number * SIZE_UNITS[unit]


@given(st.lists(st.tuples(st.integers(0, 1000), st.booleans()), min_size=5, max_size=5))
def test_size_components_in_decreasing_units_add_up(parts: list[tuple[int, bool]]) -> None:
    chosen = [(n, unit) for (n, keep), unit in zip(parts, ORDERED_SIZE_UNITS, strict=True) if keep]
    if chosen:
        text = " ".join(f"{n}{unit}" for n, unit in chosen)
        assert parse_size(text) == sum(n * SIZE_UNITS[unit] for n, unit in chosen)


@given(st.lists(st.tuples(st.integers(0, 1000), st.sampled_from(sorted(TIME_UNITS))), min_size=1))
def test_timespan_components_add_up(parts: list[tuple[int, str]]) -> None:
    text = " ".join(f"{n}{unit}" for n, unit in parts)
    assert parse_timespan_usec(text) == sum(n * TIME_UNITS[unit] for n, unit in parts)


@pytest.mark.parametrize(
    ("text", "usec"),
    [("90", 90 * 10**6), ("1.5s", 1_500_000), ("5min 20s", 320 * 10**6), ("2m", 120 * 10**6),
     ("1M", 2629800 * 10**6), ("500ms", 500_000), ("infinity", UINT64_MAX),
     ("  infinity ", UINT64_MAX), (".5s", 500_000), ("1.25min", 75 * 10**6), ("5 min", 300 * 10**6),
     ("1h30m", 5400 * 10**6), ("2 seconds", 2 * 10**6),
     ("1.5", 1_500_000), ("12.34 .56", 12_900_000),
     ("+3s", 3 * 10**6)],
)  # fmt: skip
def test_timespan_examples(text: str, usec: int) -> None:
    assert parse_timespan_usec(text) == usec


@pytest.mark.parametrize(
    "text", ["", "5 parsecs", "1KB", "-1", "s", "-0", "3.sec", "3. 1", "12.34.56", "infinity x",
             "\uff15s", "1_000s", " "],
)  # fmt: skip
def test_timespan_rejects(text: str) -> None:
    with pytest.raises(PropertyValueError):
        parse_timespan_usec(text)


def test_nanoseconds_default_to_ns() -> None:
    assert parse_timespan_nsec("50") == 50
    assert parse_timespan_nsec("1us") == 1000
    assert parse_timespan_nsec("1.5ms") == 1_500_000
    with pytest.raises(PropertyValueError):
        parse_timespan_nsec("5x")


@pytest.mark.parametrize(
    "text", ["", "1KB", "1k", "1 GiB", "-5M", "G", "512M 1G", "1K 1K", "5M ", "\uff11G", "1_000"]
)
def test_size_rejects(text: str) -> None:
    with pytest.raises(PropertyValueError):
        parse_size(text)


def test_size_fraction() -> None:
    assert parse_size("1.5G") == 3 * 1024**3 // 2
    assert parse_size("0.1K") == 102  # 0.1 * 1024 in doubles, truncated
    assert parse_size("10.M") == 10 * 1024**2
    assert parse_size("1.5K", 1000) == 1500
    assert parse_size("5 ") == 5  # systemd's quirk: a bare number may end in blanks


@pytest.mark.parametrize(
    ("text", "permyriad"),
    [("50%", 5000), ("12.5%", 1250), ("12.34%", 1234), ("5\u2030", 50), ("5.5\u2030", 55),
     ("7\u2031", 7), ("0%", 0), ("100%", 10000)],
)  # fmt: skip
def test_permyriad(text: str, permyriad: int) -> None:
    assert parse_permyriad(text) == permyriad


@pytest.mark.parametrize("text", ["150%", "1.234%", "5", "%", "5.%", "-1%", "\uff15%"])
def test_permyriad_rejects(text: str) -> None:
    with pytest.raises(PropertyValueError):
        parse_permyriad(text)


@given(
    st.sampled_from(["1", "yes", "y", "true", "t", "on", "0", "no", "n", "false", "f", "off"]),
    st.booleans(),
)
def test_boolean_spellings_case_insensitive(word: str, upper: bool) -> None:
    expected = word in ("1", "yes", "y", "true", "t", "on")
    assert parse_boolean(word.upper() if upper else word) is expected


# --- words --------------------------------------------------------------------------------------


def quote_word(word: str) -> str:
    """The inverse of split_words() for one word, as systemd would need it written."""
    if word and re.fullmatch(r"[A-Za-z0-9_@%+=:,./-]+", word):
        return word
    escaped = "".join(
        "\\" + char if char in '\\"' else
        "\\n" if char == "\n" else
        "\\t" if char == "\t" else
        f"\\x{ord(char):02x}" if ord(char) < 0x20 or ord(char) == 0x7F else char
        for char in word
    )  # fmt: skip
    return f'"{escaped}"'


WORD_TEXT = st.text(
    alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=20
)


@given(st.lists(WORD_TEXT, max_size=6))
def test_quote_then_split_is_identity(words: list[str]) -> None:
    assert split_words(" ".join(quote_word(word) for word in words)) == words


@pytest.mark.parametrize(
    ("text", "words"),
    [("a b", ["a", "b"]), ("'a b' c", ["a b", "c"]), ('"x\\"y"', ['x"y']),
     ("a\\tb", ["a\tb"]), ("\\x41", ["A"]), ("  ", []), ("a'b c'd", ["ab cd"]),
     ("\\u00e9", ["\u00e9"]), ("\\xc3\\xa9", ["\u00e9"]), ("\\101", ["A"]), ("''", [""]),
     ("\\s", [" "])],
)  # fmt: skip
def test_split_words_examples(text: str, words: list[str]) -> None:
    assert split_words(text) == words


@pytest.mark.parametrize("text", ["'open", "a\\", "a\\q", "\\x00", "\\000", "\\u0000", "\\xff"])
def test_split_words_rejects(text: str) -> None:
    with pytest.raises(PropertyValueError):
        split_words(text)


# --- any text ---------------------------------------------------------------------------------


@given(st.text(max_size=40))
def test_any_text_parses_or_is_a_usage_error(text: str) -> None:
    try:
        properties = parse_assignment(text)
    except UsageError as error:
        assert "\n" not in error.message
    else:
        assert all(isinstance(p, UnitProperty) for p in properties)
        assert_sends_what_it_declares(text, properties)


@given(st.sampled_from(sorted(HANDLERS)), st.text(max_size=20))
def test_known_property_with_any_value_parses_or_is_a_usage_error(name: str, value: str) -> None:
    try:
        properties = parse_assignment(f"{name}={value}")
    except UsageError as error:
        assert name in error.message
        assert "\n" not in error.message
    else:
        assert_sends_what_it_declares(f"{name}=", properties)


VALUE_ALPHABET = " :-/~!|@+0123456789abcxyzKMG%.,'\"\\=*"


@given(st.sampled_from(sorted(HANDLERS)), st.text(alphabet=VALUE_ALPHABET, max_size=30))
def test_known_property_with_syntax_like_value(name: str, value: str) -> None:
    """Values made of the characters the parsers care about reach deeper."""
    try:
        properties = parse_assignment(f"{name}={value}")
    except UsageError as error:
        assert name in error.message and "\n" not in error.message
    else:
        assert_sends_what_it_declares(f"{name}=", properties)


# --- each family, with its exact D-Bus values ----------------------------------------------------

EXAMPLES: list[tuple[str, list[UnitProperty]]] = [
    # unit
    ("Description=a = b", [P("Description", "s", "a = b")]),
    ("After=a.service b.service", [P("After", "as", ["a.service", "b.service"])]),
    ("Wants=getty@tty1.service", [P("Wants", "as", ["getty@tty1.service"])]),
    ("ConditionPathExists=|!/etc/x",
     [P("Conditions", "a(sbbs)", [["ConditionPathExists", True, True, "/etc/x"]])]),
    ("AssertUser=root", [P("Asserts", "a(sbbs)", [["AssertUser", False, False, "root"]])]),
    ("ConditionPathExists=", [P("Conditions", "a(sbbs)", [])]),
    ("SuccessActionExitStatus=", [P("SuccessActionExitStatus", "i", -1)]),
    ("FailureActionExitStatus=0x10", [P("FailureActionExitStatus", "i", 16)]),
    ("FailureAction=reboot", [P("FailureAction", "s", "reboot")]),
    ("JobTimeoutSec=5min", [P("JobTimeoutUSec", "t", 300 * 10**6)]),
    ("StartLimitIntervalSec=infinity", [P("StartLimitIntervalUSec", "t", UINT64_MAX)]),
    ("StartLimitBurst=010", [P("StartLimitBurst", "u", 8)]),  # safe_atou(): C octal
    ("Documentation=man:systemd.exec(5) https://systemd.io",
     [P("Documentation", "as", ["man:systemd.exec(5)", "https://systemd.io"])]),
    ("RequiresMountsFor=/var /srv", [P("RequiresMountsFor", "as", ["/var", "/srv"])]),
    ("CollectMode=inactive-or-failed", [P("CollectMode", "s", "inactive-or-failed")]),
    # service
    ("Restart=on-failure", [P("Restart", "s", "on-failure")]),
    ("ExitType=cgroup", [P("ExitType", "s", "cgroup")]),
    ("OOMPolicy=kill", [P("OOMPolicy", "s", "kill")]),
    ("Type=notify-reload", [P("Type", "s", "notify-reload")]),
    ("TimeoutSec=90",
     [P("TimeoutStartUSec", "t", 90 * 10**6), P("TimeoutStopUSec", "t", 90 * 10**6)]),
    ("RestartSec=100ms", [P("RestartUSec", "t", 100_000)]),
    ("RuntimeMaxSec=5min", [P("RuntimeMaxUSec", "t", 300 * 10**6)]),
    ("SuccessExitStatus=TEMPFAIL 250 SIGKILL",
     [P("SuccessExitStatus", "(aiai)", [[75, 250], [9]])]),
    ("RestartPreventExitStatus=SIGTERM 1",
     [P("RestartPreventExitStatus", "(aiai)", [[1], [15]])]),
    ("ExecStartPre=-/bin/true",
     [P("ExecStartPre", "a(sasb)", [["/bin/true", ["/bin/true"], True]])]),
    ("ExecStop=+/bin/kill x",
     [P("ExecStopEx", "a(sasas)", [["/bin/kill", ["/bin/kill", "x"], ["privileged"]]])]),
    ("ExecStop=-:/bin/sh -c 'echo hi'",
     [P("ExecStopEx", "a(sasas)",
        [["/bin/sh", ["/bin/sh", "-c", "echo hi"], ["ignore-failure", "no-env-expand"]]])]),
    ("ExecReload=|echo hi",
     [P("ExecReloadEx", "a(sasas)", [["/bin/sh", ["sh", "echo", "hi"], ["via-shell"]]])]),
    ("ExecStartPost=@/bin/busybox sleep 1",
     [P("ExecStartPost", "a(sasb)", [["/bin/busybox", ["sleep", "1"], False]])]),
    ("ExecStopPost=!!/bin/x",
     [P("ExecStopPostEx", "a(sasas)", [["/bin/x", ["/bin/x"], ["ambient"]]])]),
    ("ExecCondition=!/bin/x",
     [P("ExecConditionEx", "a(sasas)", [["/bin/x", ["/bin/x"], ["no-setuid"]]])]),
    ("OpenFile=/etc/hostname:host:read-only",
     [P("OpenFile", "a(sst)", [["/etc/hostname", "host", 1]])]),
    ("ReloadSignal=SIGHUP", [P("ReloadSignal", "i", 1)]),
    ("FileDescriptorStoreMax=0x10", [P("FileDescriptorStoreMax", "u", 16)]),
    ("FileDescriptorStorePreserve=restart", [P("FileDescriptorStorePreserve", "s", "restart")]),
    # exec: credentials
    ("LoadCredential=x:/etc/hostname", [P("LoadCredential", "a(ss)", [["x", "/etc/hostname"]])]),
    ("LoadCredential=x", [P("LoadCredential", "a(ss)", [["x", "x"]])]),  # inherit x
    ("LoadCredential=a:b", [P("LoadCredential", "a(ss)", [["a", "b"]])]),  # inherit b as a
    ("LoadCredential=", [P("LoadCredential", "a(ss)", [])]),
    ("LoadCredentialEncrypted=x:/etc/c/x.cred",
     [P("LoadCredentialEncrypted", "a(ss)", [["x", "/etc/c/x.cred"]])]),
    ("SetCredential=a:b\\x20c", [P("SetCredential", "a(say)", [["a", b"b c"]])]),
    ("SetCredential=a:x\\x00y", [P("SetCredential", "a(say)", [["a", b"x\x00y"]])]),
    ("SetCredential=a:b:c", [P("SetCredential", "a(say)", [["a", b"b:c"]])]),
    ("SetCredential=a:", [P("SetCredential", "a(say)", [["a", b""]])]),
    ("SetCredentialEncrypted=a:aGk=", [P("SetCredentialEncrypted", "a(say)", [["a", b"hi"]])]),
    ("ImportCredential=my.*", [P("ImportCredential", "as", ["my.*"])]),
    ("ImportCredential=a*:b", [P("ImportCredentialEx", "a(ss)", [["a*", "b"]])]),
    # exec: environment
    ("Environment=A=1 'B=two words'", [P("Environment", "as", ["A=1", "B=two words"])]),
    ("EnvironmentFile=-/etc/default/x",
     [P("EnvironmentFiles", "a(sb)", [["/etc/default/x", True]])]),
    ("EnvironmentFile=/etc/x", [P("EnvironmentFiles", "a(sb)", [["/etc/x", False]])]),
    ("EnvironmentFile=", [P("EnvironmentFiles", "a(sb)", [])]),
    ("UnsetEnvironment=A B=1", [P("UnsetEnvironment", "as", ["A", "B=1"])]),
    ("PassEnvironment=TERM LANG", [P("PassEnvironment", "as", ["TERM", "LANG"])]),
    # exec: sandboxing
    ("PrivateUsers=yes", [P("PrivateUsers", "b", True)]),
    ("PrivateUsers=self", [P("PrivateUsersEx", "s", "self")]),
    ("PrivateTmp=disconnected", [P("PrivateTmpEx", "s", "disconnected")]),
    ("ProtectControlGroups=strict", [P("ProtectControlGroupsEx", "s", "strict")]),
    ("ProtectHostname=yes", [P("ProtectHostname", "b", True)]),
    ("ProtectHostname=private", [P("ProtectHostnameEx", "(ss)", ["private", ""])]),
    ("ProtectHostname=yes:box", [P("ProtectHostnameEx", "(ss)", ["yes", "box"])]),
    ("ProtectSystem=strict", [P("ProtectSystem", "s", "strict")]),
    ("ProtectSystem=YES", [P("ProtectSystem", "s", "YES")]),
    ("ProtectHome=read-only", [P("ProtectHome", "s", "read-only")]),
    ("NoNewPrivileges=yes", [P("NoNewPrivileges", "b", True)]),
    ("SystemCallFilter=@system-service",
     [P("SystemCallFilter", "(bas)", [True, ["@system-service"]])]),
    ("SystemCallFilter=~@mount", [P("SystemCallFilter", "(bas)", [False, ["@mount"]])]),
    ("SystemCallFilter=~", [P("SystemCallFilter", "(bas)", [False, []])]),
    ("RestrictAddressFamilies=AF_UNIX AF_INET",
     [P("RestrictAddressFamilies", "(bas)", [True, ["AF_UNIX", "AF_INET"]])]),
    ("SystemCallArchitectures=native", [P("SystemCallArchitectures", "as", ["native"])]),
    ("SystemCallErrorNumber=EPERM", [P("SystemCallErrorNumber", "i", 1)]),
    ("SystemCallErrorNumber=kill", [P("SystemCallErrorNumber", "i", 2**31 - 2)]),
    ("SystemCallErrorNumber=4095", [P("SystemCallErrorNumber", "i", 4095)]),
    ("RestrictNamespaces=yes", [P("RestrictNamespaces", "t", 0)]),
    ("RestrictNamespaces=no", [P("RestrictNamespaces", "t", ALL_NAMESPACES)]),
    ("RestrictNamespaces=cgroup ipc", [P("RestrictNamespaces", "t", 0x0A000000)]),
    ("RestrictNamespaces=~user net", [P("RestrictNamespaces", "t", ALL_NAMESPACES & ~0x50000000)]),
    ("DelegateNamespaces=yes", [P("DelegateNamespaces", "t", ALL_NAMESPACES & ~0x10000000)]),
    ("BindReadOnlyPaths=/etc/hostname:/run/h",
     [P("BindReadOnlyPaths", "a(ssbt)", [["/etc/hostname", "/run/h", False, MS_REC]])]),
    ("BindPaths=-/a:/b:norbind /c",
     [P("BindPaths", "a(ssbt)", [["/a", "/b", True, 0], ["/c", "/c", False, MS_REC]])]),
    ("BindPaths=/a:/b:rbind", [P("BindPaths", "a(ssbt)", [["/a", "/b", False, MS_REC]])]),
    ("TemporaryFileSystem=/run/x:size=10M,mode=0700 /t",
     [P("TemporaryFileSystem", "a(ss)", [["/run/x", "size=10M,mode=0700"], ["/t", ""]])]),
    ("ReadOnlyPaths=-/etc +/usr", [P("ReadOnlyPaths", "as", ["-/etc", "+/usr"])]),
    ("ConfigurationDirectory=foo", [P("ConfigurationDirectory", "as", ["foo"])]),
    ("CapabilityBoundingSet=CAP_NET_ADMIN cap_sys_time",
     [P("CapabilityBoundingSet", "t", (1 << 12) | (1 << 25))]),
    ("CapabilityBoundingSet=~CAP_SYS_ADMIN",
     [P("CapabilityBoundingSet", "t", UINT64_MAX & ~(1 << 21))]),
    ("AmbientCapabilities=12", [P("AmbientCapabilities", "t", 1 << 12)]),
    ("AmbientCapabilities=", [P("AmbientCapabilities", "t", 0)]),
    ("SecureBits=keep-caps noroot", [P("SecureBits", "i", (1 << 4) | 1)]),
    ("CPUAffinity=numa", [P("CPUAffinityFromNUMA", "b", True)]),
    ("CPUAffinity=0,2", [P("CPUAffinity", "ay", b"\x05" + bytes(7))]),
    ("NUMAPolicy=bind", [P("NUMAPolicy", "i", 2)]),
    ("NUMAMask=0-1", [P("NUMAMask", "ay", b"\x03" + bytes(7))]),
    # exec: processes, logging, streams
    ("Nice=-5", [P("Nice", "i", -5)]),
    ("Nice=0x5", [P("Nice", "i", 5)]),
    ("OOMScoreAdjust=-1000", [P("OOMScoreAdjust", "i", -1000)]),
    ("UMask=0077", [P("UMask", "u", 0o077)]),
    ("UMask=00077", [P("UMask", "u", 0o077)]),
    ("RuntimeDirectoryMode=0755", [P("RuntimeDirectoryMode", "u", 0o755)]),
    ("LogLevelMax=debug", [P("LogLevelMax", "i", 7)]),
    ("LogLevelMax=3", [P("LogLevelMax", "i", 3)]),
    ("SyslogFacility=local3", [P("SyslogFacility", "i", 19)]),
    ("CPUSchedulingPolicy=fifo", [P("CPUSchedulingPolicy", "i", 1)]),
    ("CPUSchedulingPolicy=7", [P("CPUSchedulingPolicy", "i", 7)]),
    ("IOSchedulingClass=best-effort", [P("IOSchedulingClass", "i", 2)]),
    ("IOSchedulingPriority=7", [P("IOSchedulingPriority", "i", 7)]),
    ("TimerSlackNSec=50", [P("TimerSlackNSec", "t", 50)]),
    ("LogRateLimitIntervalSec=30s", [P("LogRateLimitIntervalUSec", "t", 30 * 10**6)]),
    ("MountFlags=slave", [P("MountFlags", "t", 1 << 19)]),
    ("CoredumpFilter=default", [P("CoredumpFilter", "t", 0x33)]),
    ("CoredumpFilter=0x40 elf-headers", [P("CoredumpFilter", "t", 0x50)]),
    ("CoredumpFilter=all", [P("CoredumpFilter", "t", UINT64_MAX)]),
    ("StandardOutput=journal", [P("StandardOutput", "s", "journal")]),
    ("StandardOutput=append:/var/log/x", [P("StandardOutputFileToAppend", "s", "/var/log/x")]),
    ("StandardError=truncate:/tmp/e", [P("StandardErrorFileToTruncate", "s", "/tmp/e")]),
    ("StandardOutput=file:/tmp/o", [P("StandardOutputFile", "s", "/tmp/o")]),
    ("StandardInput=file:/dev/null", [P("StandardInputFile", "s", "/dev/null")]),
    ("StandardOutput=fd:logfd", [P("StandardOutputFileDescriptorName", "s", "logfd")]),
    ("StandardInputText=a\\tb", [P("StandardInputText", "ay", b"a\tb\n")]),
    ("StandardInputData=aGk=", [P("StandardInputData", "ay", b"hi")]),
    ("LogFilterPatterns=~^debug", [P("LogFilterPatterns", "a(bs)", [[False, "^debug"]])]),
    ("LogExtraFields=TEAM=web", [P("LogExtraFields", "aay", [b"TEAM=web"])]),
    ("AppArmorProfile=-prof", [P("AppArmorProfile", "(bs)", [True, "prof"])]),
    ("WorkingDirectory=-~", [P("WorkingDirectory", "s", "-~")]),
    ("UtmpMode=login", [P("UtmpMode", "s", "login")]),
    # exec: resource limits (hard, then soft)
    ("LimitNOFILE=1024:4096", [P("LimitNOFILE", "t", 4096), P("LimitNOFILESoft", "t", 1024)]),
    ("LimitCORE=infinity", [P("LimitCORE", "t", UINT64_MAX), P("LimitCORESoft", "t", UINT64_MAX)]),
    ("LimitCPU=1.5", [P("LimitCPU", "t", 2), P("LimitCPUSoft", "t", 2)]),  # rounded up
    ("LimitRTTIME=5", [P("LimitRTTIME", "t", 5), P("LimitRTTIMESoft", "t", 5)]),  # us
    ("LimitRTTIME=5s", [P("LimitRTTIME", "t", 5 * 10**6), P("LimitRTTIMESoft", "t", 5 * 10**6)]),
    ("LimitNICE=+5", [P("LimitNICE", "t", 15), P("LimitNICESoft", "t", 15)]),
    ("LimitNICE=-20", [P("LimitNICE", "t", 40), P("LimitNICESoft", "t", 40)]),
    ("LimitAS=1G:infinity", [P("LimitAS", "t", UINT64_MAX), P("LimitASSoft", "t", 1024**3)]),
    # exec: directories, images
    ("StateDirectory=foo bar:baz",
     [P("StateDirectory", "as", ["foo"]),
      P("StateDirectorySymlink", "a(sst)", [["bar", "baz", 0]])]),
    ("StateDirectory=a:b:ro c::ro",
     [P("StateDirectorySymlink", "a(sst)", [["a", "b", 1], ["c", "", 1]])]),
    ("RuntimeDirectory=x//y/", [P("RuntimeDirectory", "as", ["x/y"])]),
    ("StateDirectory=", []),
    ("StateDirectoryQuota=off",
     [P("StateDirectoryQuota", "(tus)", [UINT64_MAX, UINT32_MAX, "no"])]),
    ("StateDirectoryQuota=10%",
     [P("StateDirectoryQuota", "(tus)", [UINT64_MAX, 429496730, "yes"])]),
    ("LogsDirectoryQuota=1G", [P("LogsDirectoryQuota", "(tus)", [1024**3, UINT32_MAX, "yes"])]),
    ("RootHash=" + "ab" * 32, [P("RootHash", "ay", bytes([0xAB] * 32))]),
    ("RootHash=/x.roothash", [P("RootHashPath", "s", "/x.roothash")]),
    ("RootImageOptions=ro root:nosuid",
     [P("RootImageOptions", "a(ss)", [["root", "ro"], ["root", "nosuid"]])]),
    ("MountImages=/a.raw:/mnt -/b.raw:/m2:ro",
     [P("MountImages", "a(ssba(ss))",
        [["/a.raw", "/mnt", False, []], ["/b.raw", "/m2", True, [["root", "ro"]]]])]),
    ("ExtensionImages=/e.raw:root:ro",
     [P("ExtensionImages", "a(sba(ss))", [["/e.raw", False, [["root", "ro"]]]])]),
    # kill
    ("KillMode=mixed", [P("KillMode", "s", "mixed")]),
    ("KillSignal=SIGINT", [P("KillSignal", "i", 2)]),
    ("KillSignal=TERM", [P("KillSignal", "i", 15)]),
    ("KillSignal=64", [P("KillSignal", "i", 64)]),
    ("FinalKillSignal=RTMIN+1", [P("FinalKillSignal", "i", 35)]),
    ("WatchdogSignal=SIGRTMAX-1", [P("WatchdogSignal", "i", 63)]),
    ("SendSIGKILL=no", [P("SendSIGKILL", "b", False)]),
    # cgroup
    ("MemoryMax=1G", [P("MemoryMax", "t", 1024**3)]),
    ("MemoryMax=infinity", [P("MemoryMax", "t", UINT64_MAX)]),
    ("MemoryMax=", [P("MemoryMax", "t", UINT64_MAX)]),
    ("MemoryLow=", [P("MemoryLow", "t", 0)]),
    ("MemoryHigh=50%", [P("MemoryHighScale", "u", round(UINT32_MAX / 2))]),
    ("MemoryHigh=12.5%", [P("MemoryHighScale", "u", 536870912)]),
    ("MemoryMax=5\u2030", [P("MemoryMaxScale", "u", 21474836)]),
    ("TasksMax=100", [P("TasksMax", "t", 100)]),
    ("TasksMax=10%", [P("TasksMaxScale", "u", 429496730)]),
    ("CPUQuota=20%", [P("CPUQuotaPerSecUSec", "t", 200_000)]),
    ("CPUQuota=150%", [P("CPUQuotaPerSecUSec", "t", 1_500_000)]),
    ("CPUQuota=0.5%", [P("CPUQuotaPerSecUSec", "t", 5_000)]),
    ("CPUQuota=", [P("CPUQuotaPerSecUSec", "t", UINT64_MAX)]),
    ("CPUQuotaPeriodSec=", [P("CPUQuotaPeriodUSec", "t", UINT64_MAX)]),
    ("CPUQuotaPeriodSec=10ms", [P("CPUQuotaPeriodUSec", "t", 10_000)]),
    ("CPUWeight=idle", [P("CPUWeight", "t", 0)]),
    ("CPUWeight=", [P("CPUWeight", "t", UINT64_MAX)]),
    ("IOWeight=500", [P("IOWeight", "t", 500)]),
    ("AllowedCPUs=0-1", [P("AllowedCPUs", "ay", b"\x03" + bytes(7))]),
    ("AllowedCPUs=0,65", [P("AllowedCPUs", "ay", b"\x01" + bytes(7) + b"\x02" + bytes(7))]),
    ("AllowedCPUs=", [P("AllowedCPUs", "ay", b"")]),
    ("AllowedMemoryNodes=0", [P("AllowedMemoryNodes", "ay", b"\x01" + bytes(7))]),
    ("Delegate=yes", [P("Delegate", "b", True)]),
    ("Delegate=cpu memory", [P("DelegateControllers", "as", ["cpu", "memory"])]),
    ("DeviceAllow=/dev/null rw", [P("DeviceAllow", "a(ss)", [["/dev/null", "rw"]])]),
    ("DeviceAllow=char-pts", [P("DeviceAllow", "a(ss)", [["char-pts", ""]])]),
    ("IOReadBandwidthMax=/dev/sda 1M", [P("IOReadBandwidthMax", "a(st)", [["/dev/sda", 10**6]])]),
    ("IOWriteIOPSMax=/dev/sda infinity",
     [P("IOWriteIOPSMax", "a(st)", [["/dev/sda", UINT64_MAX]])]),
    ("IODeviceWeight=/dev/sda 200", [P("IODeviceWeight", "a(st)", [["/dev/sda", 200]])]),
    ("IODeviceLatencyTargetSec=/dev/sda 25ms",
     [P("IODeviceLatencyTargetUSec", "a(st)", [["/dev/sda", 25_000]])]),
    ("IPAddressDeny=any",
     [P("IPAddressDeny", "a(iayu)", [[AF_INET, bytes(4), 0], [AF_INET6, bytes(16), 0]])]),
    ("IPAddressAllow=10.0.0.0/8 127.0.0.1 ::1",
     [P("IPAddressAllow", "a(iayu)",
        [[AF_INET, bytes([10, 0, 0, 0]), 8], [AF_INET, bytes([127, 0, 0, 1]), 32],
         [AF_INET6, bytes(15) + b"\x01", 128]])]),
    ("IPAddressAllow=localhost",
     [P("IPAddressAllow", "a(iayu)",
        [[AF_INET, bytes([127, 0, 0, 0]), 8], [AF_INET6, bytes(15) + b"\x01", 128]])]),
    ("IPAddressAllow=link-local",
     [P("IPAddressAllow", "a(iayu)",
        [[AF_INET, bytes([169, 254, 0, 0]), 16], [AF_INET6, b"\xfe\x80" + bytes(14), 64]])]),
    ("IPAddressAllow=multicast",
     [P("IPAddressAllow", "a(iayu)",
        [[AF_INET, bytes([224, 0, 0, 0]), 4], [AF_INET6, b"\xff" + bytes(15), 8]])]),
    ("IPAddressDeny=", [P("IPAddressDeny", "a(iayu)", [])]),
    ("SocketBindAllow=ipv4:tcp:80-90", [P("SocketBindAllow", "a(iiqq)", [[AF_INET, 6, 11, 80]])]),
    ("SocketBindAllow=tcp:443", [P("SocketBindAllow", "a(iiqq)", [[0, 6, 1, 443]])]),
    ("SocketBindDeny=any", [P("SocketBindDeny", "a(iiqq)", [[0, 0, 0, 0]])]),
    ("SocketBindDeny=ipv6", [P("SocketBindDeny", "a(iiqq)", [[AF_INET6, 0, 0, 0]])]),
    ("NFTSet=cgroup:inet:filter:set1", [P("NFTSet", "a(iiss)", [[3, 1, "filter", "set1"]])]),
    ("NFTSet=user:ipv6:t:s", [P("NFTSet", "a(iiss)", [[4, 10, "t", "s"]])]),
    ("BPFProgram=ingress:/sys/fs/bpf/x",
     [P("BPFProgram", "a(ss)", [["ingress", "/sys/fs/bpf/x"]])]),
    ("IPIngressFilterPath=/sys/fs/bpf/f", [P("IPIngressFilterPath", "as", ["/sys/fs/bpf/f"])]),
    ("Slice=system.slice", [P("Slice", "s", "system.slice")]),
    ("ManagedOOMMemoryPressureLimit=50%", [P("ManagedOOMMemoryPressureLimit", "u", scale(5000))]),
    ("ManagedOOMMemoryPressureDurationSec=",
     [P("ManagedOOMMemoryPressureDurationUSec", "t", UINT64_MAX)]),
    ("MemoryPressureWatch=auto", [P("MemoryPressureWatch", "s", "auto")]),
    ("MemoryPressureThresholdSec=200ms", [P("MemoryPressureThresholdUSec", "t", 200_000)]),
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), EXAMPLES, ids=[text for text, _ in EXAMPLES])
def test_assignment_examples(text: str, expected: list[UnitProperty]) -> None:
    properties = parse_assignment(text)
    assert properties == expected
    assert_sends_what_it_declares(text, properties)


def test_numa_mask_all_counts_the_nodes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(unitprops, "_numa_nodes", lambda: 3)
    assert parse_assignment("NUMAMask=all") == [P("NUMAMask", "ay", b"\x0f" + bytes(7))]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("MemoryMax", "NAME=VALUE"),
        ("=1", "NAME=VALUE"),
        ("Nice=20", "out of range"),
        ("NoNewPrivileges=maybe", "not a boolean"),
        ("MemoryMax=1KB", "not a size"),
        ("MemoryMax=150%", "not a size"),
        ("MemoryMax=512M 1G", "not a size"),
        ("Environment=A=1 A=2", "set twice"),
        ("Environment=1A=x", "not an environment assignment"),
        ("PassEnvironment=A=1", "not an environment variable name"),
        ("LimitNOFILE=10:5", "soft limit above hard"),
        ("LimitNOFILE=1:2:3", "SOFT[:HARD]"),
        ("LimitNOFILE=18446744073709551615", "too large"),
        ("LimitNICE=41", "out of range"),
        ("KillSignal=term", "not a signal name"),
        ("KillSignal=0", "out of range"),
        ("KillSignal=65", "out of range"),
        ("KillSignal=RTMIN+31", "out of range"),
        ("WorkingDirectory=relative", "absolute path"),
        ("Type=bogus", "not one of"),
        ("Restart=sometimes", "not one of"),
        ("FailureAction=explode", "not one of"),
        ("ProtectSystem=bogus", "not one of"),
        ("UMask=999", "octal"),
        ("UMask=+077", "octal"),
        ("LoadCredential=a/b:/etc/x", "credential name"),
        ("LoadCredential=x:", "credential source"),
        ("LoadCredential=x:/etc/../shadow", "normalized"),
        ("SetCredential=a", "ID:VALUE"),
        ("SetCredentialEncrypted=a:!!", "base64"),
        ("EnvironmentFile=rel/x", "not absolute"),
        ("PrivateUsers=bogus", "is not yes, no"),
        ("ProtectHostname=private:", "no hostname"),
        ("SystemCallErrorNumber=EBOGUS", "errno name"),
        ("SystemCallErrorNumber=4096", "errno name"),
        ("RestrictNamespaces=bogus", "not one of"),
        ("BindPaths=/a:/b:bogus", "rbind or norbind"),
        ("BindPaths=/a:", "destination"),
        ("BindPaths=rel", "source"),
        ("TemporaryFileSystem=rel", "not absolute"),
        ("ReadOnlyPaths=etc", "not absolute"),
        ("ConfigurationDirectory=/etc/foo", "relative"),
        ("StateDirectory=/var/lib/x", "relative"),
        ("StateDirectory=a:b:rw", "'ro'"),
        ("CapabilityBoundingSet=NET_ADMIN", "capability name"),
        ("SecureBits=keep-capz", "not one of"),
        ("LogLevelMax=8", "not one of"),
        ("LogLevelMax=Debug", "not one of"),
        ("SyslogFacility=128", "not one of"),
        ("IOSchedulingClass=4", "not one of"),
        ("IOSchedulingPriority=8", "out of range"),
        ("CoredumpFilter=bogus", "hex number"),
        ("MountFlags=rshared", "shared, slave or private"),
        ("StandardOutput=file:rel", "absolute"),
        ("StandardInputData=!", "base64"),
        ("LogExtraFields=lower=x", "journal field"),
        ("RootHash=abc", "hex hash"),
        ("RootHashSignature=xyz", "base64:"),
        ("MountImages=/a.raw", "missing directory"),
        ("OOMScoreAdjust=1001", "out of range"),
        ("TasksMax=0", "out of range"),
        ("CPUQuota=0%", "too small"),
        ("CPUWeight=0", "out of range"),
        ("AllowedCPUs=3-1", "empty range"),
        ("AllowedCPUs=8192", "out of range"),
        ("AllowedCPUs=1-", "ends in '-'"),
        ("DeviceAllow=/dev/null rwx", "r, w and m"),
        ("DeviceAllow=tty rw", "/dev/"),
        ("IOReadBandwidthMax=/dev/sda", "PATH VALUE"),
        ("IODeviceWeight=/dev/sda 0", "out of range"),
        ("IPAddressAllow=any 10.0.0.1", "not an IP address"),
        ("IPAddressAllow=10.0.0.0/33", "out of range"),
        ("IPAddressAllow=fe80::1%eth0", "not an IP address"),
        ("IPAddressAllow=010.0.0.1", "not an IP address"),
        ("SocketBindAllow=80:tcp", "PORT"),
        ("SocketBindAllow=udp:70000", "PORT"),
        ("SocketBindAllow=ipv4:", "PORT"),
        ("NFTSet=address:inet:t:s", "source is"),
        ("NFTSet=cgroup:inet:t", "SOURCE:FAMILY:TABLE:SET"),
        ("NFTSet=cgroup:inet:1t:s", "nft identifier"),
        ("Slice=foo", "slice name"),
        ("After=foo", "unit name"),
        ("Wants=getty@.service", "unit name"),
        ("Documentation=foo", "URL"),
        ("RequiresMountsFor=var", "not absolute"),
        ("ExecStop=/bin/true\\", "lone backslash"),
        ("ExecStop=relative", "absolute executable"),
        ("ExecStop=@/bin/true", "argv[0]"),
        ("RestartPreventExitStatus=300", "neither an exit status nor a signal"),
        ("Description=a\x00b", "NUL"),
        ("Description=\udcff", "UTF-8"),
        ("After='open", "unterminated"),
    ],
)
def test_assignment_errors_name_the_problem(text: str, fragment: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_assignment(text)
    assert fragment in caught.value.message
    assert "\n" not in caught.value.message


@pytest.mark.parametrize("value", ["\uff15", "1_000", "\u0661\u0662", "+-1", "1 0", "1e3"])
@pytest.mark.parametrize(
    "name", ["CPUWeight", "Nice", "TasksMax", "LimitNOFILE", "StartLimitBurst"]
)
def test_numbers_are_ascii_digits_only(name: str, value: str) -> None:
    with pytest.raises(UsageError, match=name):
        parse_assignment(f"{name}={value}")


# --- names --------------------------------------------------------------------------------------


def test_unknown_name_gets_its_case_insensitive_twin() -> None:
    with pytest.raises(UsageError) as caught:
        parse_assignment("memorymax=1G")
    assert caught.value.message == (
        "unknown property 'memorymax' (did you mean MemoryMax?): "
        "list them with runas-podman properties"
    )


def test_unknown_name_gets_up_to_three_close_ones() -> None:
    with pytest.raises(UsageError) as caught:
        parse_assignment("MemMax=1G")
    message = caught.value.message
    assert message.startswith("unknown property 'MemMax' (did you mean MemoryMax")
    assert message.endswith("?): list them with runas-podman properties")
    assert suggestions("MemMax") == ["MemoryMax", "MemorySwapMax", "MemoryZSwapMax"]
    assert suggestions("LoadCredentials")[0] == "LoadCredential"
    assert suggestions("IPAdressDeny")[0] == "IPAddressDeny"


def test_unknown_name_far_from_all_gets_no_guess() -> None:
    with pytest.raises(UsageError) as caught:
        parse_assignment("Foo=bar")
    assert caught.value.message == "unknown property 'Foo': list them with runas-podman properties"


@pytest.mark.parametrize(
    ("name", "fragment"),
    [("ExecStart", "command line"), ("ExecStopEx", "without 'Ex'"), ("MemoryLimit", "MemoryMax")],
)
def test_names_refused_on_purpose_say_why(name: str, fragment: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_assignment(f"{name}=x")
    assert fragment in caught.value.message and name in caught.value.message


@pytest.mark.parametrize(
    "name",
    ["LoadCredential", "SetCredential", "ImportCredential", "IPAddressDeny", "SystemCallFilter",
     "BindReadOnlyPaths", "PrivateUsers", "AllowedCPUs", "EnvironmentFile", "Restart",
     "IOReadBandwidthMax", "DeviceAllow", "TemporaryFileSystem", "LogLevelMax", "ExitType",
     "MountImages", "ExtensionImages", "RestrictNamespaces", "SystemCallArchitectures"],
)  # fmt: skip
def test_names_seen_refused_before_are_known(name: str) -> None:
    assert name in KNOWN_PROPERTIES


def test_settings_are_declared_once_with_a_family_and_signature() -> None:
    names = [setting.name for setting in SETTINGS]
    assert len(names) == len(set(names))
    assert tuple(sorted(names)) == KNOWN_PROPERTIES
    for setting in SETTINGS:
        assert setting.family in ("unit", "service", "exec", "kill", "cgroup")
        assert setting.sends and all(signature for _, signature in setting.sends)
        assert setting.summary and "\n" not in setting.summary and setting.syntax


def test_describe_properties_lists_every_name_once() -> None:
    rows = describe_properties()
    assert [name for name, _, _ in rows] == list(KNOWN_PROPERTIES)
    described = {name: (signature, summary) for name, signature, summary in rows}
    assert described["LoadCredential"][0] == "a(ss)"
    assert described["EnvironmentFile"][0] == "EnvironmentFiles a(sb)"
    assert described["MemoryMax"][0] == "t or MemoryMaxScale u"
    assert described["RuntimeMaxSec"][0] == "RuntimeMaxUSec t"
    assert all(summary and "\n" not in summary for _, summary in described.values())
