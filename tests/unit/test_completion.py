"""Shell completion: the pure pieces on fake inputs, users from this machine's password
database, and whole completions through Click's protocol (COMP_WORDS/COMP_CWORD)."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.shell_completion import CompletionItem, ShellComplete

from runas_podman.cli.runas import runas
from runas_podman.cli.runas_podman import cli
from runas_podman.core.unitprops import KNOWN_PROPERTIES
from runas_podman.install import completion
from runas_podman.install.completion import (
    REGULAR,
    ROOT,
    SERVICE,
    SYSTEM,
    Account,
    classify_users,
    parse_list_units,
    parse_login_defs,
    property_items,
    quadlet_names,
    subuid_owners,
    user_items,
)


def values(items: list[CompletionItem]) -> list[str]:
    return [item.value for item in items]


def complete(command: click.Command, prog: str, line: str) -> list[str]:
    """What the shell would offer for `line` (completing its last word), through Click's
    bash protocol, in this process."""
    words = line.split(" ")
    completer = ShellComplete(command, {}, prog, "_X_COMPLETE")
    return values(completer.get_completions(words[1:-1], words[-1]))


# --- users ----------------------------------------------------------------------------------

ACCOUNTS = [
    Account("root", 0),
    Account("daemon", 1),
    Account("svc-web", 990),  # a system user set up by `runas-podman setup`: lingers
    Account("alice", 1000),
    Account("test", 1001),  # subuids by name
    Account("bob", 1002),  # subuids by uid
    Account("nobody", 65534),
    Account("huge", 70000),
]


def test_login_defs() -> None:
    assert parse_login_defs("") == (1000, 60000)
    text = "# comment\nUID_MIN\t\t 500\nUID_MAX 29999\nSYS_UID_MIN 100\nUID_MIN bogus\n"
    assert parse_login_defs(text) == (500, 29999)


def test_subuid_owners() -> None:
    assert subuid_owners("test:100000:65536\n1002:165536:65536\n# x:1:2\nbad\n") == {
        "test",
        "1002",
    }


def test_service_users_first_then_regular_users() -> None:
    ordered = classify_users(ACCOUNTS, ["svc-web"], {"test", "1002"}, (1000, 60000))
    assert [(account.name, kind) for account, kind in ordered] == [
        ("svc-web", SERVICE),
        ("test", SERVICE),
        ("bob", SERVICE),
        ("alice", REGULAR),
    ]


def test_runas_also_offers_root_then_every_account() -> None:
    ordered = classify_users(ACCOUNTS, [], set(), (1000, 60000), everyone=True)
    assert [(account.name, kind) for account, kind in ordered] == [
        ("alice", REGULAR),
        ("test", REGULAR),
        ("bob", REGULAR),
        ("root", ROOT),
        ("daemon", SYSTEM),
        ("svc-web", SYSTEM),
        ("nobody", SYSTEM),
        ("huge", SYSTEM),
    ]


def test_user_items_by_prefix_or_uid() -> None:
    ordered = classify_users(ACCOUNTS, ["svc-web"], {"test"}, (1000, 60000))
    assert values(user_items(ordered, "")) == ["svc-web", "test", "alice", "bob"]
    assert values(user_items(ordered, "t")) == ["test"]
    items = user_items(ordered, "100")
    assert values(items) == ["1001", "1000", "1002"]
    assert items[0].help == "test (service user)"
    assert user_items(ordered, "zz") == []


def test_users_of_this_machine() -> None:
    ordered = completion.system_users(everyone=False)
    low, high = parse_login_defs(Path("/etc/login.defs").read_text())
    names = [account.name for account, _kind in ordered]
    assert len(names) == len(set(names))
    for account, kind in ordered:
        assert pwd.getpwnam(account.name).pw_uid == account.uid
        if kind == REGULAR:
            assert low <= account.uid <= high and account.uid != 65534
    everyone = completion.system_users(everyone=True)
    assert {account.name for account, _kind in everyone} == {e.pw_name for e in pwd.getpwall()}
    assert names == [account.name for account, _kind in everyone][: len(names)]


def test_user_completion_through_click(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = [(Account("test", 1000), SERVICE), (Account("tina", 1001), REGULAR)]
    monkeypatch.setattr(completion, "system_users", lambda everyone: fake)
    assert complete(cli, "runas-podman", "runas-podman doctor -u ") == ["test", "tina"]
    assert complete(cli, "runas-podman", "runas-podman quadlet start -u te") == ["test"]
    assert complete(cli, "runas-podman", "runas-podman setup --user=t") == ["test", "tina"]


# --- -p NAME=VALUE --------------------------------------------------------------------------


def test_property_names_complete_to_name_equals() -> None:
    memory = property_items(KNOWN_PROPERTIES, "Memory")
    assert values(memory) == [f"{n}=" for n in KNOWN_PROPERTIES if n.startswith("Memory")]
    assert "MemoryMax=" in values(memory)
    folded = [f"{n}=" for n in KNOWN_PROPERTIES if n.lower().startswith("memorym")]
    assert "MemoryMax=" in folded
    assert values(property_items(KNOWN_PROPERTIES, "memorym")) == folded  # no exact match
    assert property_items(KNOWN_PROPERTIES, "MemoryMax=1") == []
    assert len(property_items(KNOWN_PROPERTIES, "")) == len(KNOWN_PROPERTIES)


# A command wired as the lead wires the real ones (cli.py's -u/-p/--unit, runas's -u).
@click.command(context_settings={"allow_interspersed_args": False})
@click.option("-u", "--user", shell_complete=completion.complete_service_user)
@click.option("-p", "--property", multiple=True, shell_complete=completion.complete_property)
@click.option("--unit", shell_complete=completion.complete_unit)
@click.argument("command", nargs=-1)
def wired(user: str, property: tuple[str, ...], unit: str, command: tuple[str, ...]) -> None:
    """A stand-in."""


def test_property_completion_through_click() -> None:
    assert "CPUQuota=" in complete(wired, "w", "w -u test -p CPU")
    assert complete(wired, "w", "w -p MemoryMax=1G -p TasksM") == ["TasksMax="]


# --- units ----------------------------------------------------------------------------------

LIST_UNITS = """\
runas-podman-1a2b.service loaded active running web as test
runas-3c4d.service        loaded active running runas: id
runas-broker.socket       loaded active listening runas wheel+PAM broker socket
runas-broker@0-1-2.service loaded active running runas wheel+PAM broker connection
"""


def test_parse_list_units() -> None:
    assert parse_list_units(LIST_UNITS)[:2] == [
        ("runas-podman-1a2b.service", "web as test"),
        ("runas-3c4d.service", "runas: id"),
    ]
    assert parse_list_units("") == []


def test_unit_completion_asks_systemctl_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        calls.append((argv, kwargs.get("timeout")))
        return subprocess.CompletedProcess(argv, 0, LIST_UNITS, "")

    monkeypatch.setattr(completion.subprocess, "run", fake_run)
    assert complete(wired, "w", "w --unit runas-") == [
        "runas-podman-1a2b.service",
        "runas-3c4d.service",
    ]
    assert complete(wired, "w", "w --unit runas-p") == ["runas-podman-1a2b.service"]
    argv, timeout = calls[0]
    assert argv[:5] == ["systemctl", "list-units", "--all", "--plain", "--no-legend"]
    assert argv[-2:] == ["runas-podman-*", "runas-*"] and timeout == completion.SYSTEMCTL_TIMEOUT


def test_completion_never_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> object:
        raise subprocess.TimeoutExpired("systemctl", 2)

    monkeypatch.setattr(completion.subprocess, "run", broken)
    assert complete(wired, "w", "w --unit ") == []
    monkeypatch.setattr(completion, "system_users", broken)
    assert complete(wired, "w", "w -u ") == []


# --- Quadlets -------------------------------------------------------------------------------


def test_quadlet_names() -> None:
    files = ["web.container", "db.pod", "notes.txt", ".web.container.runas-new", "net.network"]
    assert values(quadlet_names(files, "")) == ["db.pod", "net.network", "web.container"]
    assert values(quadlet_names(files, "w")) == ["web.container"]


def test_quadlet_completion_reads_the_users_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / ".config/containers/systemd"
    directory.mkdir(parents=True)
    for name in ("web.container", "app.pod", "README"):
        (directory / name).write_text("")
    homes = {"test": str(tmp_path)}
    monkeypatch.setattr(completion, "_home_of", homes.get)
    assert complete(cli, "runas-podman", "runas-podman quadlet start -u test ") == [
        "app.pod",
        "web.container",
    ]
    assert complete(cli, "runas-podman", "runas-podman quadlet stop -u test app.pod w") == [
        "web.container"
    ]
    assert complete(cli, "runas-podman", "runas-podman quadlet remove ") == []  # no -u yet
    assert complete(cli, "runas-podman", "runas-podman quadlet remove -u nobody-here ") == []


def test_home_of_this_machine() -> None:
    assert completion._home_of("root") == pwd.getpwnam("root").pw_dir
    assert completion._home_of("0") == pwd.getpwuid(0).pw_dir
    assert completion._home_of("no-such-user-here") is None


# --- scripts --------------------------------------------------------------------------------


@pytest.mark.parametrize("shell", completion.SHELLS)
@pytest.mark.parametrize(("prog", "command"), [("runas-podman", cli), ("runas", runas)])
def test_scripts_are_clicks_own(shell: str, prog: str, command: click.Command) -> None:
    script = completion.completion_script(shell, command, prog)
    variable = "_RUNAS_PODMAN_COMPLETE" if prog == "runas-podman" else "_RUNAS_COMPLETE"
    assert f"{variable}={shell}_complete" in script
    module = "runas_podman.cli.runas_podman" if prog == "runas-podman" else "runas_podman.cli.runas"
    own = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys; from {module} import main; sys.argv[0] = '{prog}'; main()",
        ],
        env={**os.environ, variable: f"{shell}_source"},
        capture_output=True,
        text=True,
    ).stdout
    if shell == "bash":
        assert "compopt -o nospace" in script and "compopt -o nospace" not in own
        own = own.replace(
            "\n    return 0\n}", "\n" + completion._BASH_NOSPACE + "    return 0\n}", 1
        )
    assert script == own


def test_completion_paths() -> None:
    assert completion.completion_paths("runas") == {
        "bash": "bash-completion/completions/runas",
        "zsh": "zsh/site-functions/_runas",
        "fish": "fish/vendor_completions.d/runas.fish",
    }


def test_subcommands_and_options_complete() -> None:
    assert {"exec", "podman", "install", "uninstall", "quadlet"} <= set(
        complete(cli, "runas-podman", "runas-podman ")
    )
    assert complete(cli, "runas-podman", "runas-podman install --pr") == ["--prefix"]
    assert complete(cli, "runas-podman", "runas-podman quadlet st") == ["start", "stop"]
