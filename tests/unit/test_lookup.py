"""Identities from -u/-g: nothing empty, blank or odd may fall back to a default."""

from __future__ import annotations

import pytest

from runas_podman.core.errors import EXIT_USAGE, UsageError
from runas_podman.host import lookup


@pytest.mark.parametrize("value", ["", " ", "\t", "test\n", "te\x1bst", "\udcff", " test", "test "])
def test_empty_blank_or_control_identities_are_usage_errors(value: str) -> None:
    with pytest.raises(UsageError) as raised:
        lookup.service_user(value)
    assert raised.value.status == EXIT_USAGE
    assert "\n" not in raised.value.message
    with pytest.raises(UsageError):
        lookup.group_name(value)


def test_unknown_accounts_and_groups_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="no such account"):
        lookup.service_user("no-such-user-here")
    with pytest.raises(UsageError, match="no account has uid 99999"):
        lookup.service_user("99999")
    with pytest.raises(UsageError, match="unknown group 'nosuchgroup'"):
        lookup.group_name("nosuchgroup")
    with pytest.raises(UsageError, match="no group has this gid"):
        lookup.group_name("99999")


def test_numeric_ids_resolve() -> None:
    assert lookup.service_user("0").name == "root"
    assert lookup.group_name("0") == "root"
    assert lookup.group_name("root") == "root"
