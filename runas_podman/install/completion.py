"""Shell completion: the values of -u, --unit, -p and Quadlet names, and the scripts.

The shells ask through Click's own protocol (`_RUNAS_PODMAN_COMPLETE=bash_complete` with
COMP_WORDS/COMP_CWORD, the same for zsh and fish, and `_RUNAS_COMPLETE` for `runas`);
Click completes subcommands and option names itself and calls the `shell_complete`
callables below for option values. Each takes (ctx, param, incomplete), returns
CompletionItems whose value starts with `incomplete`, is quick (local files, at most one
`systemctl` call with a short timeout) and never raises: any error gives no completions.

Users are offered in this order (the definition `runas-podman --help` users rely on):

1. service users: accounts with a linger file in /var/lib/systemd/linger or a range in
   /etc/subuid (by name or uid), whatever their uid: what `runas-podman setup` makes;
2. other regular users: uid from UID_MIN to UID_MAX of /etc/login.defs (1000-60000 when
   unset), except nobody (65534);
3. for `runas` only (complete_any_user): root, then every other account.

Within each group accounts keep the order of the password database. A numeric prefix
completes uids instead of names.

This module is imported only while completing (see the lazy wrappers in the CLI modules)
or by `runas-podman install`: never by a plain command run.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from click.shell_completion import CompletionItem

if TYPE_CHECKING:
    import click

Completer = Callable[["click.Context", "click.Parameter", str], list[CompletionItem]]

LINGER_DIR = "/var/lib/systemd/linger"
SUBUID_FILE = "/etc/subuid"
LOGIN_DEFS = "/etc/login.defs"
UID_MIN_DEFAULT, UID_MAX_DEFAULT = 1000, 60000
NOBODY_UID = 65534
QUADLET_DIR = ".config/containers/systemd"
QUADLET_SUFFIXES = (".container", ".pod", ".network", ".volume", ".kube", ".image", ".build")
UNIT_PATTERNS = ("runas-podman-*", "runas-*")
SYSTEMCTL_TIMEOUT = 2.0  # seconds: a shell waiting on TAB must not hang on a stuck manager


def never_raises(function: Completer) -> Completer:
    """Completion must not print a traceback into the user's shell: errors give nothing."""

    @functools.wraps(function)
    def safe(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
        try:
            return function(ctx, param, incomplete)
        except Exception:
            return []

    return safe


# --- users ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    """An entry of the password database, as far as completion needs it."""

    name: str
    uid: int


SERVICE = "service user"
REGULAR = "user"
ROOT = "root"
SYSTEM = "system account"


def parse_login_defs(text: str) -> tuple[int, int]:
    """UID_MIN and UID_MAX from /etc/login.defs text (shadow's defaults when unset)."""
    values = {"UID_MIN": UID_MIN_DEFAULT, "UID_MAX": UID_MAX_DEFAULT}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] in values and fields[1].isascii() and fields[1].isdigit():
            values[fields[0]] = int(fields[1])
    return values["UID_MIN"], values["UID_MAX"]


def subuid_owners(text: str) -> set[str]:
    """The owners (names or uids as written) of /etc/subuid ranges."""
    owners = set()
    for line in text.splitlines():
        fields = line.strip().split(":")
        if len(fields) == 3 and fields[0] and not fields[0].startswith("#"):
            owners.add(fields[0])
    return owners


def classify_users(
    accounts: Iterable[Account],
    lingering: Iterable[str],
    subuid: Iterable[str],
    uid_range: tuple[int, int],
    everyone: bool = False,
) -> list[tuple[Account, str]]:
    """Accounts in completion order with their kind: service users (linger file or
    subuid range), then regular users (uid in `uid_range`, not nobody); with `everyone`
    (runas) root and then all other accounts too. Each account once."""
    accounts = list(accounts)
    lingering, subuid = set(lingering), set(subuid)
    low, high = uid_range
    ordered: list[tuple[Account, str]] = []
    seen: set[str] = set()

    def add(account: Account, kind: str) -> None:
        if account.name not in seen:
            seen.add(account.name)
            ordered.append((account, kind))

    for account in accounts:
        if account.name in lingering or account.name in subuid or str(account.uid) in subuid:
            add(account, SERVICE)
    for account in accounts:
        if low <= account.uid <= high and account.uid != NOBODY_UID:
            add(account, REGULAR)
    if everyone:
        for account in accounts:
            if account.uid == 0:
                add(account, ROOT)
        for account in accounts:
            add(account, SYSTEM)
    return ordered


def user_items(ordered: Sequence[tuple[Account, str]], incomplete: str) -> list[CompletionItem]:
    """Names starting with `incomplete`, or uids when it is a number (or a prefix of one)."""
    numeric = incomplete.isascii() and incomplete.isdigit()
    items = []
    for account, kind in ordered:
        if numeric:
            if str(account.uid).startswith(incomplete):
                items.append(CompletionItem(str(account.uid), help=f"{account.name} ({kind})"))
        elif account.name.startswith(incomplete):
            items.append(CompletionItem(account.name, help=f"{kind}, uid {account.uid}"))
    return items


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            return file.read()
    except OSError:
        return ""


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def system_users(everyone: bool) -> list[tuple[Account, str]]:
    """This machine's accounts in completion order (see classify_users)."""
    import pwd

    accounts = [Account(entry.pw_name, entry.pw_uid) for entry in pwd.getpwall()]
    return classify_users(
        accounts,
        _listdir(LINGER_DIR),
        subuid_owners(_read(SUBUID_FILE)),
        parse_login_defs(_read(LOGIN_DEFS)),
        everyone=everyone,
    )


@never_raises
def complete_service_user(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """-u/--user of `runas-podman`: service users, then other regular users."""
    return user_items(system_users(everyone=False), incomplete)


@never_raises
def complete_any_user(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """-u/--user of `runas`: service users, regular users, root, then every other account."""
    return user_items(system_users(everyone=True), incomplete)


@never_raises
def complete_group(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """-g/--group of `runas`: group names (gids for a numeric prefix)."""
    import grp

    numeric = incomplete.isascii() and incomplete.isdigit()
    items = []
    for entry in grp.getgrall():
        value = str(entry.gr_gid) if numeric else entry.gr_name
        if value.startswith(incomplete):
            items.append(CompletionItem(value, help=f"gid {entry.gr_gid}"))
    return items


# --- units ----------------------------------------------------------------------------------


def parse_list_units(output: str) -> list[tuple[str, str]]:
    """(unit, description) from `systemctl list-units --plain --no-legend` output."""
    units = []
    for line in output.splitlines():
        fields = line.split(None, 4)  # UNIT LOAD ACTIVE SUB DESCRIPTION
        if fields and fields[0].isprintable():
            units.append((fields[0], fields[4] if len(fields) > 4 else ""))
    return units


def transient_units(user_manager: bool = False) -> list[tuple[str, str]]:
    """runas-podman-* and runas-* units of the system manager (or the caller's own)."""
    argv = ["systemctl", "list-units", "--all", "--plain", "--no-legend", "--no-pager"]
    if user_manager:
        argv.append("--user")
    result = subprocess.run(
        [*argv, *UNIT_PATTERNS],
        capture_output=True,
        text=True,
        timeout=SYSTEMCTL_TIMEOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "SYSTEMD_COLORS": "0", "SYSTEMD_PAGER": ""},
        check=False,
    )
    # runas-broker.socket and its connections are installed units, not transient ones.
    return [u for u in parse_list_units(result.stdout) if not u[0].startswith("runas-broker")]


@never_raises
def complete_unit(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """--unit: the runas-podman-*/runas-* units loaded on the system manager."""
    return [
        CompletionItem(unit, help=description or None)
        for unit, description in transient_units()
        if unit.startswith(incomplete)
    ]


# --- Quadlets -------------------------------------------------------------------------------


def quadlet_names(files: Iterable[str], incomplete: str) -> list[CompletionItem]:
    """Quadlet file names (web.container) among `files` that start with `incomplete`."""
    return [
        CompletionItem(name, help="Quadlet")
        for name in sorted(files)
        if name.endswith(QUADLET_SUFFIXES)
        and not name.startswith(".")
        and name.startswith(incomplete)
    ]


def _home_of(user: str) -> str | None:
    import pwd

    try:
        entry = pwd.getpwuid(int(user)) if user.isascii() and user.isdigit() else pwd.getpwnam(user)
    except (KeyError, ValueError, OverflowError):
        return None
    return entry.pw_dir


def _command_line_user(ctx: click.Context) -> str | None:
    """The -u value given so far, on this command or the ones around it."""
    context: click.Context | None = ctx
    while context is not None:
        user = context.params.get("user")
        if isinstance(user, str) and user:
            return user
        context = context.parent
    return None


@never_raises
def complete_quadlet(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """Quadlet NAMES of the user given with -u: ~USER/.config/containers/systemd/*.container
    and the other Quadlet kinds. Needs -u first, and the right to read that directory
    (root, or the user itself)."""
    user = _command_line_user(ctx)
    home = _home_of(user) if user else None
    if home is None:
        return []
    return quadlet_names(_listdir(os.path.join(home, QUADLET_DIR)), incomplete)


# --- -p NAME=VALUE --------------------------------------------------------------------------


def property_items(names: Iterable[str], incomplete: str) -> list[CompletionItem]:
    """`NAME=` for each property name that starts with `incomplete` (case-insensitively
    when nothing matches exactly); nothing once the `=` is typed."""
    if "=" in incomplete:
        return []
    names = list(names)
    chosen = [name for name in names if name.startswith(incomplete)]
    if not chosen:
        folded = incomplete.casefold()
        chosen = [name for name in names if name.casefold().startswith(folded)]
    return [CompletionItem(f"{name}=") for name in chosen]


@never_raises
def complete_property(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """-p/--property: the property names the parser knows, as `NAME=`."""
    from runas_podman.core.unitprops import KNOWN_PROPERTIES

    return property_items(KNOWN_PROPERTIES, incomplete)


# --- the scripts ----------------------------------------------------------------------------

SHELLS = ("bash", "zsh", "fish")

# Click's bash script adds a space after every completion; after `NAME=` (-p) the value
# follows at once. Inserted before the function's `return 0`.
_BASH_NOSPACE = (
    "    if [[ ${#COMPREPLY[@]} -eq 1 && ${COMPREPLY[0]} == *= ]]; then\n"
    "        compopt -o nospace\n"
    "    fi\n"
    "\n"
)
_BASH_ANCHOR = re.compile(r"^    return 0\n}", re.MULTILINE)


def completion_script(shell: str, command: click.Command, prog: str) -> str:
    """The completion script of `prog` for `shell`: what `_PROG_COMPLETE=SHELL_source prog`
    prints (Click's own script, speaking Click's protocol), for bash with `compopt -o
    nospace` after a lone `NAME=`."""
    from click.shell_completion import ShellComplete, get_completion_class

    complete_class = get_completion_class(shell)
    if complete_class is None:
        raise ValueError(f"no completion for shell {shell!r}")
    complete_var = "_{}_COMPLETE".format(re.sub(r"\W", "_", prog).upper())
    completer = complete_class(command, {}, prog, complete_var)
    # ShellComplete.source, not the subclass's: BashComplete.source also runs `bash` to
    # warn about versions before 4.4, which is the target's business, not the installer's.
    script = ShellComplete.source(completer)
    if shell == "bash":
        script = _BASH_ANCHOR.sub(lambda m: _BASH_NOSPACE + m.group(0), script, count=1)
    return script


def completion_paths(prog: str) -> dict[str, str]:
    """{shell: path under PREFIX/share} where each shell looks for `prog`'s completion."""
    return {
        "bash": f"bash-completion/completions/{prog}",
        "zsh": f"zsh/site-functions/_{prog}",
        "fish": f"fish/vendor_completions.d/{prog}.fish",
    }
