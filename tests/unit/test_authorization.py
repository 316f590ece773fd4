"""The pure parts of per-command authorization and the broker's caches."""

from __future__ import annotations

import os

import pytest

from runas_podman.authcache import (
    AuthCache,
    Binding,
    CacheSettings,
    is_fresh,
    parse_settings,
)
from runas_podman.elevate import (
    Authentication,
    BrokerAction,
    BrokerRequest,
    ElevateOptions,
    ElevateRequest,
    authorization_details,
    build_elevate_plan,
)
from runas_podman.errors import RunasError
from tests.unit.test_elevate import CALLER, ROOT, TEST


def details(target=ROOT, **options: object) -> dict[str, str]:  # type: ignore[no-untyped-def]
    request = ElevateRequest(**options)  # type: ignore[arg-type]
    values = {k: v for k, v in options.items() if k not in ("user",)}
    values.setdefault("command", ("/usr/bin/systemctl", "restart", "nginx.service"))
    plan = build_elevate_plan(
        ElevateOptions(unit="runas-x.service", **values),  # type: ignore[arg-type]
        CALLER, target,
    )  # fmt: skip
    return authorization_details(request, plan)


def test_details_of_a_plain_request_name_the_command_and_nothing_else() -> None:
    assert details(command=("/usr/bin/systemctl", "restart", "nginx.service")) == {
        "program": "/usr/bin/systemctl",
        "command_line": "/usr/bin/systemctl restart nginx.service",
        "user": "root", "group": "root", "cwd": "/srv/work", "extras": "",
    }  # fmt: skip


def test_details_quote_arguments_and_follow_the_plan() -> None:
    result = details(TEST, command=("/bin/echo", "a b", "$x"), chdir="/tmp")
    assert result["command_line"] == "/bin/echo 'a b' '$x'"
    assert (result["user"], result["cwd"]) == ("test", "/tmp")
    assert details(TEST, command=("/bin/true",))["cwd"] == "/home/test"  # run0's rule: ~


def test_everything_a_request_adds_is_in_extras() -> None:
    result = details(
        command=("/bin/true",), setenv=("A=1",), preserve_env=("KEEP",),
        properties=("MemoryMax=1G",), nice=-5, slice="web",
    )  # fmt: skip
    assert result["extras"].splitlines() == [
        "Environment=KEEP=kept", "Environment=A=1", "-p MemoryMax=1G", "Nice=-5",
        "Slice=web.slice",
    ]  # fmt: skip
    assert "--empower" in details(command=("/bin/true",), empower=True)["extras"]


def test_broker_request_round_trip_and_refusals() -> None:
    request = BrokerRequest(
        options=ElevateRequest(command=("id",)), environ={"TERM": "xterm"},
        authentication=Authentication.POLKIT, action=BrokerAction.VALIDATE, interactive=False,
    )  # fmt: skip
    assert BrokerRequest.from_message(request.to_message()) == request
    for change, line in [
        ({"version": 1}, "broker request version 1 is not 2"),
        ({"authentication": "none"}, "'authentication' must be one of polkit, password"),
        ({"action": "shell"}, "'action' must be one of run, validate, forget"),
        ({"interactive": 0}, "'interactive' must be true or false"),
        ({"forget_first": True}, "unknown field 'forget_first'"),
    ]:
        with pytest.raises(RunasError, match=line):
            BrokerRequest.from_message({**request.to_message(), **change})


def test_cache_settings() -> None:
    assert parse_settings("") == CacheSettings(enabled=False, timeout=300)
    assert parse_settings("auth_cache = true\nauth_cache_timeout = 60") == CacheSettings(True, 60)
    for text, line in [
        ("auth_cache = 'yes'", "auth_cache must be true or false"),
        ("auth_cache_timeout = 0", "auth_cache_timeout must be seconds from 1 to 86400"),
        ("auth_cache_timeout = true", "auth_cache_timeout must be seconds"),
        ("timeout = 5", "unknown setting 'timeout'"),
        ("auth_cache = ", "not valid TOML"),
    ]:
        with pytest.raises(RunasError, match=line):
            parse_settings(text)


def test_an_entry_is_fresh_for_its_time_only_and_never_from_the_future() -> None:
    assert is_fresh(100.0, 100.0, 300) and is_fresh(100.0, 399.9, 300)
    assert not is_fresh(100.0, 400.0, 300) and not is_fresh(100.0, 99.0, 300)


def test_cache_entries_are_bound_and_forgotten(tmp_path) -> None:  # type: ignore[no-untyped-def]
    directory = str(tmp_path / "cache")
    cache = AuthCache(CacheSettings(enabled=True), directory)
    here = Binding(1001, "c2", 34817)
    cache.remember(here)
    assert cache.valid(here)
    assert not cache.valid(Binding(1001, "c3", 34817))  # another session
    assert not cache.valid(Binding(1001, "c2", 34818))  # another terminal
    assert not cache.valid(Binding(1002, "c2", 34817))  # another user
    assert oct(os.stat(directory).st_mode & 0o777) == "0o700"
    assert not AuthCache(CacheSettings(enabled=False), directory).valid(here)  # off: never
    assert not AuthCache(CacheSettings(enabled=True), directory, kind="polkit").valid(here)
    assert cache.forget(1001) and not cache.valid(here) and not cache.forget(1001)
