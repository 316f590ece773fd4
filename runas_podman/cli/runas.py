"""`runas`: a run0-style elevator. The command runs in a fresh unit forked off the system
manager, never in the caller's context. Exit status: the command's (128+N for a
signal), or 1 for a failure of runas itself.

Imports stay light at the top: `runas --version` must be fast.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn

import click

from runas_podman import __version__
from runas_podman.cli.common import AsciiInt, lazy_completion, run_cli

if TYPE_CHECKING:
    from runas_podman.broker.client import BrokerCall
    from runas_podman.broker.protocol import BrokerAction
    from runas_podman.core.elevate import Caller, ElevateRequest

PROG = "runas"
EXIT_FAILURE = 1


def _boolean(value: str | None) -> bool | None:
    if value is None:
        return None
    from runas_podman.core.unitprops import PropertyValueError, parse_boolean

    try:
        return parse_boolean(value)
    except PropertyValueError as error:
        raise click.BadParameter(str(error), param_hint="--lightweight") from None


@click.command(
    context_settings={"help_option_names": ["-h", "--help"], "allow_interspersed_args": False}
)
@click.version_option(__version__, prog_name=PROG)
@click.option(
    "-u", "--user", metavar="USER", help="Run as USER (name or uid); default root.",
    shell_complete=lazy_completion("complete_any_user"),
)  # fmt: skip
@click.option(
    "-g", "--group", metavar="GROUP", help="Run with GROUP (name or gid).",
    shell_complete=lazy_completion("complete_group"),
)  # fmt: skip
@click.option("-D", "--chdir", metavar="DIR", help="Working directory (default: run0's rule).")
@click.option("-i", "login", is_flag=True, help="Login shell semantics; change to the home.")
@click.option(
    "-s",
    "--shell",
    "--via-shell",
    "via_shell",
    is_flag=True,
    help="Run COMMAND through the target user's login shell.",
)
@click.option(
    "--setenv",
    "--env",
    "setenv",
    multiple=True,
    metavar="NAME[=VALUE]",
    help="Set a variable; NAME alone copies yours. Repeatable.",
)
@click.option(
    "--preserve-env",
    multiple=True,
    metavar="LIST",
    help="Comma-separated names of your variables to keep. Repeatable.",
)
@click.option(
    "-p",
    "--property",
    "properties",
    multiple=True,
    metavar="NAME=VALUE",
    help="Unit property (systemctl set-property syntax). Repeatable.",
    shell_complete=lazy_completion("complete_property"),
)
@click.option(
    "--unit", metavar="NAME", help="Unit name (default runas-RANDOM.service).",
    shell_complete=lazy_completion("complete_unit"),
)  # fmt: skip
@click.option("--description", metavar="TEXT", help="Unit description.")
@click.option("--slice", "slice_", metavar="SLICE", help="Slice of the unit (default user.slice).")
@click.option("--slice-inherit", is_flag=True, help="Put the unit under your own slice.")
@click.option("--nice", type=AsciiInt(-20, 19), metavar="NICE", help="Nice level.")
@click.option("--pty", is_flag=True, help="Use a pseudo-terminal (default if all stdio are ttys).")
@click.option("--pipe", is_flag=True, help="Pass your stdin/stdout/stderr directly.")
@click.option(
    "--background",
    metavar="COLOR",
    help="ANSI background for the session (e.g. 48;2;60;0;0); empty: none.",
)
@click.option(
    "--shell-prompt-prefix", metavar="STRING", help="$SHELL_PROMPT_PREFIX for the command."
)
@click.option("--lightweight", metavar="BOOL", help="Session class without a user manager.")
@click.option(
    "-n",
    "--non-interactive",
    "--no-ask-password",
    "non_interactive",
    is_flag=True,
    help="Do not ask for authorization interactively.",
)
@click.option(
    "-S",
    "--stdin",
    "stdin_password",
    is_flag=True,
    help="Read your password from stdin's first line (authenticates through the wheel+PAM "
    "broker instead of polkit).",
)
@click.option(
    "--via-broker",
    is_flag=True,
    help="Ask the root broker, which checks polkit's org.runas_podman.run with the command "
    "in its details (rules can allow one exact command), or wheel+PAM without polkit.",
)
@click.option(
    "-k",
    "--reset-timestamp",
    "reset_timestamp",
    is_flag=True,
    help="Forget your cached authorizations first (without COMMAND: and exit).",
)
@click.option(
    "-K",
    "--remove-timestamp",
    "remove_timestamp",
    is_flag=True,
    help="Forget your cached authorizations and exit.",
)
@click.option(
    "-v",
    "--validate",
    "validate",
    is_flag=True,
    help="Authenticate (starting a fresh cached authorization) without running anything.",
)
@click.option(
    "--empower",
    is_flag=True,
    help="Give the user (-u, else you) every capability and the group empower (as run0 --empower).",
)
@click.option("--dry-run", is_flag=True, help="Print the equivalent systemd-run command line.")
@click.option(
    "--backend", type=click.Choice(["auto", "dbus", "native"]), default="auto",
    show_default=True,
    help="dbus: a unit of systemd; native: run it here (root, or a listening broker); "
    "auto: native where systemd is not PID 1.",
)  # fmt: skip
@click.option(
    "--list-properties", is_flag=True, is_eager=True, expose_value=False,
    callback=lambda ctx, _param, value: _list_properties(ctx, value),
    help="List every unit property -p accepts, and exit.",
)  # fmt: skip
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def runas(
    command: tuple[str, ...],
    user: str | None,
    group: str | None,
    chdir: str | None,
    login: bool,
    via_shell: bool,
    setenv: tuple[str, ...],
    preserve_env: tuple[str, ...],
    properties: tuple[str, ...],
    unit: str | None,
    description: str | None,
    slice_: str | None,
    slice_inherit: bool,
    nice: int | None,
    pty: bool,
    pipe: bool,
    background: str | None,
    shell_prompt_prefix: str | None,
    lightweight: str | None,
    non_interactive: bool,
    stdin_password: bool,
    via_broker: bool,
    reset_timestamp: bool,
    remove_timestamp: bool,
    validate: bool,
    empower: bool,
    dry_run: bool,
    backend: str,
) -> int:
    """Run COMMAND (default: the target user's login shell) with other privileges."""
    from runas_podman.core.elevate import ElevateRequest, choose_stdio

    ttys = (os.isatty(0), os.isatty(1), os.isatty(2))
    request = ElevateRequest(
        command=command, user=user, group=group, chdir=chdir, login=login,
        via_shell=via_shell, setenv=setenv, preserve_env=preserve_env,
        properties=properties, unit=unit, description=description, slice=slice_,
        slice_inherit=slice_inherit, nice=nice, stdio=choose_stdio(pty, pipe, *ttys),
        background=background, shell_prompt_prefix=shell_prompt_prefix,
        lightweight=_boolean(lightweight), empower=empower,
    )  # fmt: skip
    route = Route(via_broker, stdin_password, not non_interactive, backend)
    flags = (("-k", reset_timestamp), ("-K", remove_timestamp), ("-v", validate))
    asked = [flag for flag, given in flags if given]
    if len(asked) > 1:
        from runas_podman.core.errors import UsageError

        raise UsageError(f"{asked[0]} and {asked[1]} cannot be combined: give one of -k, -K, -v")
    if asked:
        action = {"-k": "reset", "-K": "remove", "-v": "validate"}[asked[0]]
        return cached_authorization(action, request, route)
    return elevate(request, ttys, dry_run, route, forced_pty=pty and not pipe)


@dataclass(frozen=True)
class Route:
    """Which way authorization goes: --via-broker, -S, and whether anyone may be asked."""

    via_broker: bool = False
    stdin_password: bool = False
    interactive: bool = True
    backend: str = "auto"  # auto, dbus, native

    def native_broker_call(self) -> BrokerCall:
        """Without systemd a listening broker authenticates with wheel+PAM (no polkit)."""
        from runas_podman.broker.client import BrokerCall

        return BrokerCall(interactive=self.interactive, password_from_stdin=self.stdin_password)

    def broker_call(self, action: BrokerAction | None = None) -> BrokerCall | None:
        """The broker call for this route, or None for the direct systemd+polkit path."""
        if os.geteuid() == 0 and not self.via_broker:
            return None  # root needs nobody's authorization (nor the broker module)
        from runas_podman.broker.client import BrokerCall
        from runas_podman.broker.protocol import Authentication, BrokerAction
        from runas_podman.bus.polkit import polkit_installed

        if self.stdin_password or not polkit_installed():
            authentication = Authentication.PASSWORD
        elif self.via_broker:
            authentication = Authentication.POLKIT
        else:
            return None
        return BrokerCall(
            authentication=authentication,
            interactive=self.interactive,
            password_from_stdin=self.stdin_password,
            action=action or BrokerAction.RUN,
        )


def cached_authorization(action: str, request: ElevateRequest, route: Route) -> int:
    """-k, -K, -v: forget the caller's cached authorizations (polkit's temporary ones for
    runas's actions, and the broker's own), or authenticate without running anything."""
    from runas_podman.broker.protocol import BrokerAction
    from runas_podman.core.elevate import MANAGE_UNITS_ACTION
    from runas_podman.core.errors import UsageError

    if request.command and action != "reset":
        flag = "-K" if action == "remove" else "-v"
        raise UsageError(f"{flag} runs nothing: drop the command, or use -k to forget first")
    if action in ("reset", "remove"):
        forget_cached_authorizations(request)
        if action == "remove" or not request.command:
            return 0
        return elevate(request, (os.isatty(0), os.isatty(1), os.isatty(2)), False, route)
    if os.geteuid() == 0:
        return 0  # -v: root is never asked
    call = route.broker_call(action=BrokerAction.VALIDATE)
    if call is not None:
        return _broker(request, call)
    return validate_with_polkit(MANAGE_UNITS_ACTION, route)


def forget_cached_authorizations(request: ElevateRequest) -> None:
    """polkit's temporary authorizations of this session for runas's two actions, then the
    broker's cache entries of this uid (if a broker is installed)."""
    import asyncio

    from runas_podman.broker.client import BrokerCall
    from runas_podman.broker.protocol import BROKER_SOCKET, BrokerAction
    from runas_podman.bus import polkit
    from runas_podman.bus.polkit import polkit_installed
    from runas_podman.core.elevate import MANAGE_UNITS_ACTION, RUN_ACTION

    if os.geteuid() == 0:
        return  # root is never asked, so nothing is cached for it
    if polkit_installed():
        asyncio.run(polkit.forget(frozenset({MANAGE_UNITS_ACTION, RUN_ACTION})))
    if os.path.exists(BROKER_SOCKET):
        _broker(request, BrokerCall(action=BrokerAction.FORGET))


def _broker(request: ElevateRequest, call: BrokerCall) -> int:
    from runas_podman.broker.client import run_through_broker
    from runas_podman.run.session import Terminal

    return run_through_broker(request, _caller(on_tty=False), Terminal(None, None), call)


def _caller(on_tty: bool) -> Caller:
    """This process as the caller: who, where, its environment, its slice."""
    import socket

    from runas_podman.core.elevate import Caller
    from runas_podman.host.procfs import slice_of

    return Caller(
        name=_user_name(os.getuid()),
        uid=os.getuid(),
        gid=os.getgid(),
        cwd=_cwd(),
        environ=dict(os.environ),
        slice=slice_of("self"),
        hostname=socket.gethostname(),
        on_tty=on_tty,
    )


def validate_with_polkit(action: str, route: Route) -> int:
    """-v on systemd's own path: forget this session's temporary authorization of ACTION
    (a session-wide agent's), then ask polkit for it as systemd would (pkttyagent prompts).
    What polkit keeps after pkttyagent's answer lasts as long as this process (polkit keeps
    per process): run0 -v has the same limit."""
    import asyncio

    from runas_podman.bus import polkit
    from runas_podman.core.errors import RunasError
    from runas_podman.run.polkit_agent import close_agent, open_agent

    async def check() -> polkit.Authorization:
        await polkit.forget(frozenset({action}))
        bus = await polkit.connect()
        try:
            subject = polkit.Subject.process(os.getpid(), os.getuid())
            return await polkit.check_authorization(bus, subject, action, {},
                                                    route.interactive)  # fmt: skip
        finally:
            bus.disconnect()

    agent = open_agent() if route.interactive else None
    try:
        result = asyncio.run(check())
    finally:
        close_agent(agent)
    if result.authorized:
        return 0
    if result.challenge and not route.interactive:
        raise RunasError(f"authentication is required for {action}, and -n forbids asking")
    raise RunasError(f"not authorized: polkit refused {action}")


def elevate(
    request: ElevateRequest,
    ttys: tuple[bool, bool, bool],
    dry_run: bool,
    route: Route,
    forced_pty: bool = False,
) -> int:
    """Plan the request here (so every usage error is found before anything starts),
    then run it: directly through systemd (root, polkit) or through the root broker."""
    from runas_podman.core.elevate import PAM_FILE, decorations
    from runas_podman.core.errors import RunasError
    from runas_podman.core.properties import systemd_run_command
    from runas_podman.host import lookup
    from runas_podman.run.resolve import resolve_elevation

    caller = _caller(on_tty=any(ttys))
    plan, hue = resolve_elevation(request, caller)
    if request.empower and (dry_run or sys.stderr.isatty()):
        # Told to a person (or with --dry-run), never into a command's captured stderr.
        from runas_podman.manage.empower import GROUP, has_rule, missing_note

        note = missing_note(lookup.group_exists(GROUP), has_rule())
        if note is not None:
            click.echo(f"{PROG}: note: {note}", err=True)
    if dry_run:
        from runas_podman.run.session import manager_version

        version, note = manager_version(plan)
        if note is not None:
            click.echo(f"{PROG}: note: {note}", err=True)
        click.echo(systemd_run_command(plan, version))
        return 0
    if not os.path.exists(PAM_FILE):
        raise RunasError(
            f"the PAM service file {PAM_FILE} is missing: install it with "
            "`runas-podman install-pam` (see runas --help)"
        )
    tint, title = decorations(
        ttys[1], caller.environ, request.background, hue, plan.argv, caller.hostname
    )
    from runas_podman.core.model import through_pty
    from runas_podman.run.session import Terminal

    terminal = Terminal(tint, title, through_pty(forced_pty, ttys))
    if _native_backend(route.backend):
        from runas_podman.broker.client import elevate_native

        return elevate_native(plan, request, caller, terminal, route.native_broker_call())
    call = route.broker_call()
    if call is not None:
        from runas_podman.broker.client import run_through_broker

        return run_through_broker(request, caller, terminal, call)
    from runas_podman.run.session import run_session

    interactive = route.interactive and os.geteuid() != 0
    return run_session(plan, interactive=interactive, terminal=terminal)


def _native_backend(backend: str) -> bool:
    """--backend native, or auto where systemd is not PID 1 (said once, on stderr)."""
    from runas_podman.host.backend import choose_backend, systemd_running

    chosen, note = choose_backend(backend, systemd_running() if backend == "auto" else True)
    if note is not None:
        click.echo(f"{PROG}: note: {note}", err=True)
    return chosen == "native"


def _list_properties(ctx: click.Context, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        from runas_podman.cli.common import print_properties

        print_properties("table")
        ctx.exit(0)


def _user_name(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _cwd() -> str:
    try:
        return os.getcwd()
    except OSError:
        return "/"


def main() -> NoReturn:
    run_cli(runas, PROG, failure_status=EXIT_FAILURE)


if __name__ == "__main__":
    sys.exit(main())
