"""`runas`: a run0-style elevator. The command runs in a fresh unit forked off the system
manager, never in the caller's context. Exit status: the command's (128+N for a
signal), or 1 for a failure of runas itself.

Imports stay light at the top: `runas --version` must be fast.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn

import click

from runas_podman import __version__
from runas_podman.cli.common import (
    NO_SERVER_HELP,
    AsciiInt,
    caller_pid,
    lazy_completion,
    run_cli,
)

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
@click.version_option(__version__, "-V", "--version", prog_name=PROG)
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
@click.option(
    "--pty-late", is_flag=True,
    help="The same as --pty (run0 262): the pty takes your terminal only once the unit has "
         "started, after any polkit or password prompt; runas's pty always does.",
)  # fmt: skip
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
@click.option("--no-server", is_flag=True, expose_value=False, help=NO_SERVER_HELP)
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
    pty_late: bool,
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
    from runas_podman.core.elevate import ElevateRequest
    from runas_podman.core.errors import UsageError
    from runas_podman.launch.launch import run
    from runas_podman.launch.request import (
        Backend,
        CachedAction,
        CallerStdio,
        ElevationRequest,
        Route,
        caller_of,
    )

    request = ElevateRequest(
        command=command, user=user, group=group, chdir=chdir, login=login,
        via_shell=via_shell, setenv=setenv, preserve_env=preserve_env,
        properties=properties, unit=unit, description=description, slice=slice_,
        slice_inherit=slice_inherit, nice=nice, background=background,
        shell_prompt_prefix=shell_prompt_prefix, lightweight=_boolean(lightweight),
        empower=empower,
    )  # fmt: skip
    flags = ((CachedAction.RESET, reset_timestamp), (CachedAction.REMOVE, remove_timestamp),
             (CachedAction.VALIDATE, validate))  # fmt: skip
    asked = [action for action, given in flags if given]
    if len(asked) > 1:
        raise UsageError(
            f"{asked[0].value} and {asked[1].value} cannot be combined: give one of -k, -K, -v"
        )
    stdio = CallerStdio.of()
    caller = caller_of(caller_pid(), os.getuid(), os.getgid(), os.environ, _cwd(),
                       any(stdio.ttys))  # fmt: skip
    route = Route(via_broker, stdin_password, not non_interactive, Backend(backend))
    elevation = ElevationRequest(
        request, caller, route, pty=pty or pty_late, pipe=pipe, dry_run=dry_run,
        cached=asked[0] if asked else None, prog=PROG,
    )  # fmt: skip
    return run(elevation, stdio)


def _list_properties(ctx: click.Context, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        from runas_podman.cli.common import print_properties

        print_properties("table")
        ctx.exit(0)


def _cwd() -> str:
    try:
        return os.getcwd()
    except OSError:
        return "/"


def main() -> NoReturn:
    run_cli(runas, PROG, failure_status=EXIT_FAILURE)


if __name__ == "__main__":
    sys.exit(main())
