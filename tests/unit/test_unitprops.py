"""The -p parser against systemd's syntax (parse_size, parse_sec, extract_first_word...)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runas_podman.errors import UsageError
from runas_podman.unitprops import (
    HANDLERS,
    UINT32_MAX,
    UINT64_MAX,
    PropertyValueError,
    UnitProperty,
    parse_assignment,
    parse_boolean,
    parse_size,
    parse_timespan_usec,
    split_words,
)

SIZE_UNITS = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
TIME_UNITS = {"us": 1, "ms": 1000, "s": 10**6, "min": 60 * 10**6, "h": 3600 * 10**6}


@given(st.integers(0, 10**6), st.sampled_from(sorted(SIZE_UNITS)))
def test_size_with_any_unit(number: int, unit: str) -> None:
    assert parse_size(f"{number}{unit}") == number * SIZE_UNITS[unit]


@given(st.lists(st.tuples(st.integers(0, 1000), st.sampled_from(sorted(SIZE_UNITS))), min_size=1))
def test_size_components_add_up(parts: list[tuple[int, str]]) -> None:
    text = " ".join(f"{n}{unit}" for n, unit in parts)
    assert parse_size(text) == sum(n * SIZE_UNITS[unit] for n, unit in parts)


@given(st.lists(st.tuples(st.integers(0, 1000), st.sampled_from(sorted(TIME_UNITS))), min_size=1))
def test_timespan_components_add_up(parts: list[tuple[int, str]]) -> None:
    text = " ".join(f"{n}{unit}" for n, unit in parts)
    assert parse_timespan_usec(text) == sum(n * TIME_UNITS[unit] for n, unit in parts)


@pytest.mark.parametrize(
    ("text", "usec"),
    [("90", 90 * 10**6), ("1.5s", 1_500_000), ("5min 20s", 320 * 10**6), ("2m", 120 * 10**6),
     ("1M", 2629800 * 10**6), ("500ms", 500_000), ("infinity", UINT64_MAX)],
)  # fmt: skip
def test_timespan_examples(text: str, usec: int) -> None:
    assert parse_timespan_usec(text) == usec


@pytest.mark.parametrize("text", ["", "5 parsecs", "1KB", "-1", "s"])
def test_timespan_rejects(text: str) -> None:
    with pytest.raises(PropertyValueError):
        parse_timespan_usec(text)


@pytest.mark.parametrize("text", ["", "1KB", "1k", "1 GiB", "-5M", "G"])
def test_size_rejects(text: str) -> None:
    with pytest.raises(PropertyValueError):
        parse_size(text)


def test_size_fraction() -> None:
    assert parse_size("1.5G") == 3 * 1024**3 // 2


@given(
    st.sampled_from(["1", "yes", "y", "true", "t", "on", "0", "no", "n", "false", "f", "off"]),
    st.booleans(),
)
def test_boolean_spellings_case_insensitive(word: str, upper: bool) -> None:
    expected = word in ("1", "yes", "y", "true", "t", "on")
    assert parse_boolean(word.upper() if upper else word) is expected


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


@given(st.lists(st.text(min_size=0, max_size=20), max_size=6))
def test_quote_then_split_is_identity(words: list[str]) -> None:
    assert split_words(" ".join(quote_word(word) for word in words)) == words


@pytest.mark.parametrize(
    ("text", "words"),
    [("a b", ["a", "b"]), ("'a b' c", ["a b", "c"]), ('"x\\"y"', ['x"y']),
     ("a\\tb", ["a\tb"]), ("\\x41", ["A"]), ("  ", [])],
)  # fmt: skip
def test_split_words_examples(text: str, words: list[str]) -> None:
    assert split_words(text) == words


@pytest.mark.parametrize("text", ["'open", "a\\", "a\\q"])
def test_split_words_rejects(text: str) -> None:
    with pytest.raises(PropertyValueError):
        split_words(text)


@given(st.text(max_size=40))
def test_any_text_parses_or_is_a_usage_error(text: str) -> None:
    try:
        properties = parse_assignment(text)
    except UsageError as error:
        assert "\n" not in error.message.strip("\n") or "\n" in text
    else:
        assert properties and all(isinstance(p, UnitProperty) for p in properties)


@given(st.sampled_from(sorted(HANDLERS)), st.text(max_size=20))
def test_known_property_with_any_value_parses_or_is_a_usage_error(name: str, value: str) -> None:
    try:
        parse_assignment(f"{name}={value}")
    except UsageError as error:
        assert name in error.message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("MemoryMax=1G", [UnitProperty("MemoryMax", "t", 1024**3)]),
        ("MemoryMax=infinity", [UnitProperty("MemoryMax", "t", UINT64_MAX)]),
        ("MemoryHigh=50%", [UnitProperty("MemoryHighScale", "u", round(UINT32_MAX / 2))]),
        ("TasksMax=100", [UnitProperty("TasksMax", "t", 100)]),
        ("CPUQuota=20%", [UnitProperty("CPUQuotaPerSecUSec", "t", 200_000)]),
        ("CPUWeight=idle", [UnitProperty("CPUWeight", "t", 0)]),
        ("RuntimeMaxSec=5min", [UnitProperty("RuntimeMaxUSec", "t", 300 * 10**6)]),
        ("LimitNOFILE=1024:4096",
         [UnitProperty("LimitNOFILE", "t", 4096), UnitProperty("LimitNOFILESoft", "t", 1024)]),
        ("LimitCORE=infinity",
         [UnitProperty("LimitCORE", "t", UINT64_MAX),
          UnitProperty("LimitCORESoft", "t", UINT64_MAX)]),
        ("Nice=-5", [UnitProperty("Nice", "i", -5)]),
        ("UMask=0077", [UnitProperty("UMask", "u", 0o077)]),
        ("KillSignal=SIGINT", [UnitProperty("KillSignal", "i", 2)]),
        ("KillSignal=TERM", [UnitProperty("KillSignal", "i", 15)]),
        ("NoNewPrivileges=yes", [UnitProperty("NoNewPrivileges", "b", True)]),
        ("After=a.service b.service", [UnitProperty("After", "as", ["a.service", "b.service"])]),
        ("Environment=A=1 'B=two words'",
         [UnitProperty("Environment", "as", ["A=1", "B=two words"])]),
        ("WorkingDirectory=-~", [UnitProperty("WorkingDirectory", "s", "-~")]),
        ("Description=a = b", [UnitProperty("Description", "s", "a = b")]),
    ],
)  # fmt: skip
def test_assignment_examples(text: str, expected: list[UnitProperty]) -> None:
    assert parse_assignment(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("Foo=bar", "unknown property 'Foo'"),
        ("MemoryMax", "NAME=VALUE"),
        ("=1", "NAME=VALUE"),
        ("Nice=20", "out of range"),
        ("NoNewPrivileges=maybe", "not a boolean"),
        ("MemoryMax=1KB", "not a size"),
        ("Environment=A=1 A=2", "set twice"),
        ("Environment=1A=x", "not an environment assignment"),
        ("LimitNOFILE=10:5", "soft limit above hard"),
        ("KillSignal=term", "not a signal name"),
        ("WorkingDirectory=relative", "absolute path"),
        ("Type=bogus", "not one of"),
        ("UMask=999", "octal"),
    ],
)
def test_assignment_errors_name_the_problem(text: str, fragment: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_assignment(text)
    assert fragment in caught.value.message
    assert "\n" not in caught.value.message
