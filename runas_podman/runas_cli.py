"""`runas`: a run0-style elevator. The command runs in a fresh unit forked off the system
manager, never in the caller's context. Exit status: the command's (128+N for a
signal), or 1 for a failure of runas itself.

Imports stay light at the top: `runas --version` must be fast.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

import click

from . import __version__
from .clirun import AsciiInt, run_cli

PROG = "runas"
EXIT_FAILURE = 1


def _boolean(value: str | None) -> bool | None:
    if value is None:
        return None
    from .unitprops import PropertyValueError, parse_boolean

    try:
        return parse_boolean(value)
    except PropertyValueError as error:
        raise click.BadParameter(str(error), param_hint="--lightweight") from None


@click.command(
    context_settings={"help_option_names": ["-h", "--help"], "allow_interspersed_args": False}
)
@click.version_option(__version__, prog_name=PROG)
@click.option("-u", "--user", metavar="USER", help="Run as USER (name or uid); default root.")
@click.option("-g", "--group", metavar="GROUP", help="Run with GROUP (name or gid).")
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
)
@click.option("--unit", metavar="NAME", help="Unit name (default runas-RANDOM.service).")
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
    help="Read your password from stdin's first line (the wheel+PAM path, see docs).",
)
@click.option(
    "--empower",
    is_flag=True,
    help="Keep your user, add all capabilities and the empower group (see docs).",
)
@click.option("--dry-run", is_flag=True, help="Print the equivalent systemd-run command line.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def runas(command: tuple[str, ...], **options: Any) -> int:
    """Run COMMAND (default: the target user's login shell) with other privileges."""
    return elevate(command, **options)  # lazily imported machinery lives below


def elevate(command: tuple[str, ...], **options: Any) -> int:
    import socket

    from . import lookup
    from .elevate import Caller, choose_stdio, decorations
    from .errors import RunasError

    ttys = [os.isatty(fd) for fd in (0, 1, 2)]
    stdio = choose_stdio(options["pty"], options["pipe"], *ttys)
    caller = Caller(
        name=_user_name(os.getuid()),
        uid=os.getuid(),
        gid=os.getgid(),
        cwd=_cwd(),
        environ=dict(os.environ),
        slice=lookup.slice_of("self"),
        hostname=socket.gethostname(),
        on_tty=any(ttys),
    )
    plan, hue = plan_for(command, options, caller, stdio)
    if options["dry_run"]:
        click.echo(plan.systemd_run_command())
        return 0
    from .elevate import PAM_FILE

    if not os.path.exists(PAM_FILE):
        raise RunasError(
            f"the PAM service file {PAM_FILE} is missing: install it with "
            "`runas-podman install-pam` (see docs/elevation.md)"
        )
    tint, title = decorations(
        ttys[1], caller.environ, options["background"], hue, plan.argv, caller.hostname
    )
    from . import broker

    if os.geteuid() != 0 and (options["stdin_password"] or not broker.polkit_installed()):
        return broker.run_through_broker(
            command,
            options,
            caller,
            stdio,
            tint,
            title,
            password_from_stdin=options["stdin_password"],
        )
    interactive = not options["non_interactive"] and os.geteuid() != 0
    return _launch(plan, stdio, tint, title, interactive)


def plan_for(
    command: Sequence[str], options: Mapping[str, Any], caller: Any, stdio: str
) -> tuple[Any, int]:
    """The plan and tint hue for these options: shared by the CLI and the root broker.

    `options` are the Click option values (or the same as JSON, from the broker).
    """
    import dataclasses
    import grp

    from . import lookup
    from .elevate import ElevateOptions, build_elevate_plan, check_conflicts, tint_hue
    from .plan import service_unit_name

    def strings(name: str) -> tuple[str, ...]:
        return tuple(options.get(name) or ())

    user: str | None = options.get("user")
    user_given = user is not None
    # --empower keeps the caller's own user; otherwise -u, or root. An empty -u is refused
    # (lookup.checked_identity), never read as "not given".
    target_name = caller.name if options.get("empower") else ("root" if user is None else user)
    group = options.get("group")
    if group is not None:
        group = lookup.group_name(group)
    try:
        grp.getgrnam("empower")
        empower_group = True
    except KeyError:
        empower_group = False
    nice = options.get("nice")
    elevate_options = ElevateOptions(
        command=tuple(command),
        group=group,
        chdir=options.get("chdir"),
        login=bool(options.get("login")),
        via_shell=bool(options.get("via_shell")),
        setenv=strings("setenv"),
        preserve_env=strings("preserve_env"),
        properties=strings("properties"),
        unit=service_unit_name(options.get("unit"), lambda: os.urandom(6).hex(), prefix="runas-"),
        description=options.get("description"),
        slice=options.get("slice_"),
        slice_inherit=bool(options.get("slice_inherit")),
        nice=int(nice) if nice is not None else None,
        stdio=stdio,
        background=options.get("background"),
        shell_prompt_prefix=options.get("shell_prompt_prefix"),
        lightweight=_boolean(options.get("lightweight")),
        empower=bool(options.get("empower")),
        empower_group_exists=empower_group,
    )
    check_conflicts(elevate_options, user_given)
    target = lookup.service_user(target_name)
    if command and not (elevate_options.via_shell or elevate_options.login):
        path = lookup.executable(command[0])
        elevate_options = dataclasses.replace(elevate_options, command=(path, *command[1:]))
    plan = build_elevate_plan(elevate_options, caller, target)
    return plan, tint_hue(target.uid == 0, elevate_options.empower)


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


def _launch(plan: Any, stdio: str, tint: str | None, title: str | None, interactive: bool) -> int:
    import asyncio

    from .launcher import run_plan
    from .polkit_agent import close_agent, open_agent
    from .ptyfwd import PtyForwarder
    from .systemd_bus import SystemdBus, connected

    async def session() -> int:
        async with connected(SystemdBus.connect_system()) as bus:
            agent = open_agent() if interactive else None
            forwarder = PtyForwarder(tint, title) if stdio == "pty" else None

            def started() -> None:
                close_agent(agent)  # authorization is over: the terminal is ours again
                if forwarder is not None:
                    forwarder.close_peer()
                    forwarder.start()

            try:
                peer = (forwarder.peer,) * 3 if forwarder else None
                return await run_plan(
                    plan, bus, interactive=interactive,
                    stdio=peer, tty_path=forwarder.path if forwarder else None, on_started=started,
                )  # fmt: skip
            finally:
                if forwarder is not None:
                    forwarder.stop()
                close_agent(agent)

    return asyncio.run(session())


def main() -> NoReturn:
    run_cli(runas, PROG, failure_status=EXIT_FAILURE)


if __name__ == "__main__":
    sys.exit(main())
