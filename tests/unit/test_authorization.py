"""The pure parts of per-command authorization and the broker's caches."""

from __future__ import annotations

import os

import pytest

from runas_podman.broker.authcache import (
    AuthCache,
    Binding,
    CacheSettings,
    is_fresh,
    parse_settings,
)
from runas_podman.broker.protocol import Authentication, BrokerAction, BrokerRequest
from runas_podman.broker.server import details_digest
from runas_podman.core.elevate import (
    DETAIL_KEYS,
    ElevateOptions,
    ElevateRequest,
    authorization_details,
    build_elevate_plan,
)
from runas_podman.core.errors import RunasError
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
    result = details(command=("/usr/bin/systemctl", "restart", "nginx.service"))
    assert {key: result[key] for key in list(result)[:6]} == {
        "program": "/usr/bin/systemctl",
        "command_line": "/usr/bin/systemctl restart nginx.service",
        "user": "root", "group": "root", "cwd": "/srv/work", "extras": "",
    }  # fmt: skip
    assert tuple(result) == DETAIL_KEYS
    assert (result["unit"], result["stdio"], result["slice"]) == (
        "runas-x.service", "pipe", "user.slice"
    )  # fmt: skip
    assert result["description"] == "[runas] /usr/bin/systemctl restart nginx.service"
    assert "SUDO_USER=alice" in result["environment"].splitlines()
    assert "User=root" in result["properties"].splitlines()


def test_the_policy_file_documents_exactly_the_details_sent() -> None:
    """Finding 7 of the audit: the comment named keys the broker never sent, and a rule
    written from it allowed -p ExecStartPre=... as root."""
    from importlib.resources import files

    text = (files("runas_podman") / "data/polkit/org.runas_podman.policy").read_text()
    comment = text[text.index("<!--") : text.index("-->")]
    documented = set()
    for line in comment.splitlines():  # "    key, key      what": the first column
        if line.startswith("    ") and not line.startswith("     "):
            documented.update(line[4:18].strip().split(", "))
    assert documented == set(DETAIL_KEYS), documented ^ set(DETAIL_KEYS)
    assert "<allow_active>auth_admin</allow_active>" in text  # nothing kept by polkit


def test_hostile_text_in_details_is_shown_escaped() -> None:
    """Finding 5: a command line that rewrites the prompt on the admin's terminal."""
    hostile = "chmod 4755 /tmp/rootbash #\r\x1b[2KAuthentication is required to run\x1b[8m"
    result = details(command=("/bin/sh", "-c", hostile), setenv=("A=x\ny",))
    assert not any(c in value for value in result.values() for c in "\r\x1b")
    assert result["command_line"] == (
        "/bin/sh -c $'chmod 4755 /tmp/rootbash #\\r\\e[2KAuthentication is required to run\\e[8m'"
    )
    assert "Environment=$'A=x\\ny'" in result["extras"].splitlines()
    bidi = details(command=("/bin/echo", "\u202eevil"))["command_line"]
    assert bidi == "/bin/echo $'\\u202eevil'"


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
        ({"version": 2}, "broker request version 2 is not 3"),
        ({"tty_path": "/dev/tty1"}, "unknown field 'tty_path'"),
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
    here = Binding(1001, "c2", 34817, "4242:1000")
    cache.remember(here)
    assert cache.valid(here)
    assert not cache.valid(Binding(1001, "c2", 34817, "4343:2000"))  # the tty, reused
    assert not cache.valid(Binding(1001, "c3", 34817))  # another session
    assert not cache.valid(Binding(1001, "c2", 34818))  # another terminal
    assert not cache.valid(Binding(1002, "c2", 34817))  # another user
    assert oct(os.stat(directory).st_mode & 0o777) == "0o700"
    assert not AuthCache(CacheSettings(enabled=False), directory).valid(here)  # off: never
    assert not AuthCache(CacheSettings(enabled=True), directory, kind="polkit").valid(here)
    assert cache.forget(1001) and not cache.valid(here) and not cache.forget(1001)


def test_polkit_entries_are_bound_to_the_exact_details(tmp_path) -> None:  # type: ignore[no-untyped-def]
    kept = AuthCache(CacheSettings(enabled=True), str(tmp_path), kind="polkit")
    here = Binding(1001, "c2", 34817)
    one = details_digest(details(command=("/usr/bin/id", "-un")))
    other = details_digest(details(command=("/bin/sh", "-c", "id")))
    kept.remember(here, one)
    assert kept.valid(here, one)
    assert not kept.valid(here, other) and not kept.valid(here)


def test_answers_from_a_kept_authorization_are_told_apart() -> None:
    """polkit's three answers that say yes (its sources, 122-127): a rule's, a fresh
    challenge's (retained), and one from what it kept for the process, which names no
    command and is never accepted, in the quiet check as in the interactive one."""
    from runas_podman.bus.polkit import Authorization, from_kept_authorization

    rule_yes = Authorization(True, False, False, None, False)
    fresh = Authorization(True, False, False, "tmpauthz1", True)
    kept = Authorization(True, False, False, "tmpauthz1", False)
    assert not from_kept_authorization(rule_yes) and not from_kept_authorization(fresh)
    assert from_kept_authorization(kept)


def test_a_session_is_the_first_unit_after_the_slices() -> None:
    """A user can make a scope called session-7.scope inside its own user manager: that
    is no logind session (audit review)."""
    from runas_podman.host.procfs import session_from_cgroup

    assert session_from_cgroup("0::/user.slice/user-1001.slice/session-3.scope\n") == "3"
    nested = "0::/user.slice/user-1001.slice/user@1001.service/app.slice/session-7.scope\n"
    assert session_from_cgroup(nested) is None
    hybrid = "12:pids:/x\n1:name=systemd:/user.slice/user-1001.slice/session-c2.scope\n"
    assert session_from_cgroup(hybrid) == "c2"
    # sid's container on a v1 host: a stale name=systemd line first, cgroup2's holds it.
    stale = "9:name=systemd:/\n1:cpu:/\n0::/user.slice/user-1001.slice/session-c630.scope\n"
    assert session_from_cgroup(stale) == "c630"


def test_extras_name_a_group_and_a_directory_asked_for() -> None:
    result = details(command=("/usr/bin/id",), group="shadow", chdir="/etc")
    assert "Group=shadow" in result["extras"].splitlines()
    assert "WorkingDirectory=/etc" in result["extras"].splitlines()
    assert result["extras_shown"] == ", with Group=shadow, WorkingDirectory=/etc"
    assert details(command=("/usr/bin/id",))["extras_shown"] == ""


def test_invisible_characters_are_shown_escaped() -> None:
    from runas_podman.core.errors import shell_quote, truncated

    for hidden in ("\u200b", "\u2060", "\ufeff", "\u00ad", "\u3164", "\u00a0", "\u202e"):
        assert shell_quote(f"a{hidden}b").startswith("$'a\\u"), hidden
    assert shell_quote("héllo wörld") == "'héllo wörld'"  # letters stay letters
    assert (
        truncated("x" * 300, 200).endswith("…[truncated]") and len(truncated("x" * 300, 200)) == 200
    )
