"""`runas-podman`: the Click layer. Parses options, builds a plan, hands it to the launcher.

Heavy modules (dbus-next, asyncio machinery) are imported only when something is
launched, so --help, --version and --dry-run stay fast.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, NoReturn, TypeVar

import click

from . import __version__
from .errors import EXIT_USAGE, RunasError, UsageError

F = TypeVar("F", bound=Callable[..., Any])
PROG = "runas-podman"


class LaunchOptions(NamedTuple):  # not a dataclass: keeps `dataclasses` off --version
    user: str
    via: str
    properties: tuple[str, ...]
    setenv: tuple[str, ...]
    unit: str | None
    description: str | None
    dry_run: bool
    backend: str


def launch_options(function: F) -> F:
    """The options shared by every command that starts a unit."""
    decorators = [
        click.option("-u", "--user", required=True, metavar="USER",
                     help="Service user to run as (name or uid)."),
        click.option("--via", type=click.Choice(["auto", "system", "user"]), default="auto",
                     show_default=True, help="Service manager that runs the unit (docs/cli.md)."),
        click.option("-p", "--property", "properties", multiple=True, metavar="NAME=VALUE",
                     help="Unit property, systemctl set-property syntax; repeatable."),
        click.option("--setenv", multiple=True, metavar="NAME[=VALUE]",
                     help="Environment variable for the command; NAME alone copies yours."),
        click.option("--unit", metavar="NAME", help="Unit name (default runas-podman-RANDOM)."),
        click.option("--description", metavar="TEXT", help="Unit description."),
        click.option("--dry-run", is_flag=True,
                     help="Print the equivalent systemd-run command line and exit."),
        click.option("--backend", type=click.Choice(["dbus", "systemd-run"]), default="dbus",
                     show_default=True,
                     help="Talk to systemd over D-Bus, or exec systemd-run with the same plan."),
    ]  # fmt: skip
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


COMMAND_SETTINGS = {"ignore_unknown_options": True, "allow_interspersed_args": False}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name=PROG)
def cli() -> None:
    """Run podman, or any command, as a service user through systemd."""


@cli.command(context_settings=COMMAND_SETTINGS)
@launch_options
@click.argument("podman_args", nargs=-1, type=click.UNPROCESSED)
def podman(podman_args: tuple[str, ...], **options: Any) -> int:
    """Run `podman PODMAN_ARGS...` as USER (e.g. -- run --rm IMAGE CMD)."""
    if not podman_args:
        raise UsageError("no podman arguments given (e.g. runas-podman podman -u USER -- ps)")
    return launch(LaunchOptions(**options), ("podman", *podman_args), package="podman")


@cli.command("exec", context_settings=COMMAND_SETTINGS)
@launch_options
@click.argument("command", nargs=-1, type=click.UNPROCESSED, required=True)
def exec_command(command: tuple[str, ...], **options: Any) -> int:
    """Run COMMAND as USER in a transient service."""
    return launch(LaunchOptions(**options), command, package=None)


def launch(options: LaunchOptions, argv: Sequence[str], package: str | None) -> int:
    from . import lookup
    from .plan import (
        Manager,
        build_service_plan,
        parse_assignments,
        parse_setenv,
        service_unit_name,
    )

    if options.via == "user":
        raise RunasError("--via user is not available yet: use --via system (the default)")
    assignments = parse_assignments(options.properties)
    environment = parse_setenv(options.setenv, dict(os.environ))
    unit = service_unit_name(options.unit, lambda: os.urandom(6).hex())
    user = lookup.service_user(options.user)
    path = lookup.executable(argv[0], package)
    plan = build_service_plan(
        user=user,
        argv=[path, *argv[1:]],
        manager=Manager.SYSTEM,
        unit=unit,
        assignments=assignments,
        environment=environment,
        description=options.description,
    )
    if options.dry_run:
        click.echo(plan.systemd_run_command())
        return 0
    if options.backend == "systemd-run":
        systemd_run = lookup.executable("systemd-run", "systemd")
        os.execv(systemd_run, plan.systemd_run_argv())
    return run_with_dbus(plan)


def run_with_dbus(plan: Any) -> int:
    import asyncio

    from .launcher import run_plan
    from .systemd_bus import SystemdBus

    async def session() -> int:
        bus = await SystemdBus.connect_system()
        try:
            return await run_plan(plan, bus)
        finally:
            bus.disconnect()

    return asyncio.run(session())


def fail(prog: str, message: str, status: int) -> NoReturn:
    click.echo(f"{prog}: {message}", err=True)
    sys.exit(status)


def run_cli(group: click.Group, prog: str, argv: Sequence[str] | None = None) -> NoReturn:
    """Run a Click group: every error is one line on stderr with a documented status."""
    try:
        status = group.main(args=argv, prog_name=prog, standalone_mode=False)
    except click.UsageError as error:
        fail(prog, f"{error.format_message()} (see {prog} --help)", EXIT_USAGE)
    except click.ClickException as error:
        fail(prog, error.format_message(), error.exit_code)
    except click.exceptions.Abort:
        fail(prog, "aborted", 130)
    except RunasError as error:
        fail(prog, error.message, error.status)
    except KeyboardInterrupt:
        fail(prog, "interrupted", 130)
    sys.exit(status if isinstance(status, int) else 0)


def main() -> NoReturn:
    run_cli(cli, PROG)
