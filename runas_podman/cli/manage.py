"""`runas-podman` commands that manage a service user: setup, doctor, its podman API, Quadlets.

cli.py adds COMMANDS to its group; their machinery is imported when they run.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import click

from runas_podman.cli.common import AsciiInt, lazy_completion

if TYPE_CHECKING:
    from runas_podman.core.model import ServiceUser


USER_OPTION = click.option(
    "-u", "--user", required=True, metavar="USER", help="The service user.",
    shell_complete=lazy_completion("complete_service_user"),
)  # fmt: skip
QUADLET_NAMES = click.argument(
    "names", nargs=-1, required=True, shell_complete=lazy_completion("complete_quadlet")
)

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


def format_options(default: str = "table") -> Callable[[F], F]:
    """podman's `--format json|table`, and `--json` as the older alias of `--format json`."""

    def decorate(function: F) -> F:
        function = click.option(
            "--json", "output_format", flag_value="json", help="Same as --format json."
        )(function)
        return click.option(
            "--format", "output_format", type=click.Choice(["json", "table"]), default=default,
            show_default=True, help="Output format: json for scripts, table for people.",
        )(function)  # fmt: skip

    return decorate


def _run(coroutine: Coroutine[object, object, T]) -> T:
    import asyncio  # not at the top: `runas-podman --version` must not import it

    return asyncio.run(coroutine)


def _user(name: str) -> ServiceUser:
    from runas_podman.host import lookup

    return lookup.service_user(name)


@click.command()
@USER_OPTION
@click.option("--create", is_flag=True, help="Create the system user if it does not exist.")
@click.option("--home", metavar="DIR", help="Home of a created user (default /var/lib/USER).")
@click.option("--dry-run", is_flag=True, help="List the changes setup would make; make none.")
def setup(user: str, create: bool, home: str | None, dry_run: bool) -> int:
    """Set USER up for rootless podman (idempotent).

    Each change is printed as it is made; if one fails, those made are undone.
    """
    from runas_podman.manage.service_user import Step
    from runas_podman.manage.service_user import setup as run_setup

    def report(step: Step) -> None:
        click.echo(step.line())

    steps = _run(run_setup(user, create, home, report, dry_run=dry_run))
    if dry_run:
        click.echo("dry run: nothing changed")
    else:
        click.echo("changed" if any(s.changed for s in steps) else "nothing to change")
    return 0


@click.command()
@USER_OPTION
@click.option(
    "--keep-storage", is_flag=True, help="Keep USER's images and volumes (no podman system reset)."
)
@click.option("--delete-user", is_flag=True, help="Also delete the account and its home.")
@click.option(
    "--force", is_flag=True, help="Also for an account runas-podman setup did not create."
)
@click.option("--dry-run", is_flag=True, help="List the changes remove would make; make none.")
def remove(user: str, keep_storage: bool, delete_user: bool, force: bool, dry_run: bool) -> int:
    """Take service user USER down: the opposite of setup.

    Stops and removes USER's Quadlets and containers, resets its podman storage (unless
    --keep-storage), disables linger, stops user@UID.service, removes the sub-id ranges
    setup added, and with --delete-user deletes the account and its home. Refused for
    root, and for an account setup did not create unless --force. Each change is printed
    as it is made; a user that is gone already has nothing to remove.
    """
    from runas_podman.manage.removal import RemoveOptions
    from runas_podman.manage.removal import remove as run_remove

    options = RemoveOptions(keep_storage=keep_storage, delete_user=delete_user, force=force,
                            dry_run=dry_run)  # fmt: skip
    changed = _run(run_remove(user, options, click.echo))
    if dry_run:
        click.echo("dry run: nothing changed")
    else:
        click.echo("changed" if changed else "nothing to change")
    return 0


@click.command()
@USER_OPTION
@format_options()
def doctor(user: str, output_format: str) -> int:
    """Check what USER needs for rootless podman; exit 0 only if nothing fails."""
    from runas_podman.manage.doctor import failed, render_json, render_text, run_checks

    checks = run_checks(user)
    click.echo(render_json(checks) if output_format == "json" else render_text(checks))
    return 1 if failed(checks) else 0


@click.command()
@USER_OPTION
@click.option("-a", "--all", "all_containers", is_flag=True, help="Also stopped containers.")
@format_options()
def ps(user: str, all_containers: bool, output_format: str) -> int:
    """List USER's containers (through its podman API)."""
    from runas_podman.manage import podman_api

    click.echo(podman_api.ps(_user(user), all_containers, output_format == "json"))
    return 0


@click.command()
@USER_OPTION
@format_options()
def images(user: str, output_format: str) -> int:
    """List USER's images."""
    from runas_podman.manage import podman_api

    click.echo(podman_api.images(_user(user), output_format == "json"))
    return 0


@click.command()
@USER_OPTION
@format_options(default="json")
@click.argument("containers", nargs=-1, required=True)
def inspect(user: str, output_format: str, containers: tuple[str, ...]) -> int:
    """Show USER's CONTAINERS (JSON, as podman inspect; or a table)."""
    from runas_podman.manage import podman_api

    click.echo(podman_api.inspect(_user(user), containers, output_format == "json"))
    return 0


@click.command()
@USER_OPTION
@click.option("-f", "--follow", is_flag=True, help="Keep streaming new output.")
@click.option("-n", "--lines", type=AsciiInt(0), metavar="N",
              help="For a unit: only its last N journal lines.")  # fmt: skip
@click.argument("name", metavar="CONTAINER|UNIT")
def logs(user: str, follow: bool, lines: int | None, name: str) -> int:
    """Print the logs of USER's CONTAINER, or the journal of a unit running as USER.

    A NAME with a unit suffix (web.service, nightly.timer) is a unit: of USER's own manager
    (a Quadlet's) or of the system manager with User=USER (exec/podman --no-block, timers).
    """
    from runas_podman.manage.unit_logs import is_unit_name

    if is_unit_name(name):
        from runas_podman.manage.unit_logs import show

        return show(_user(user), name, follow, lines)
    if lines is not None:
        raise click.UsageError("-n/--lines is for a unit's journal; podman's logs are whole")
    from runas_podman.manage import podman_api

    podman_api.write_stream(podman_api.logs(_user(user), name, follow))
    return 0


@click.command()
@USER_OPTION
@click.option(
    "-t", "--time", "timeout", type=AsciiInt(0), metavar="SECONDS", help="Wait before SIGKILL."
)
@click.argument("containers", nargs=-1, required=True)
def stop(user: str, timeout: int | None, containers: tuple[str, ...]) -> int:
    """Stop USER's CONTAINERS."""
    from runas_podman.manage import podman_api

    for name in podman_api.stop(_user(user), containers, timeout):
        click.echo(name)
    return 0


@click.command()
@USER_OPTION
@click.option("-f", "--force", is_flag=True, help="Remove running containers too.")
@click.argument("containers", nargs=-1, required=True)
def rm(user: str, force: bool, containers: tuple[str, ...]) -> int:
    """Remove USER's CONTAINERS."""
    from runas_podman.manage import podman_api

    for name in podman_api.remove(_user(user), containers, force):
        click.echo(name)
    return 0


@click.command()
@USER_OPTION
@format_options()
def timers(user: str, output_format: str) -> int:
    """List the timers that run something as USER (--on-* of exec and podman, and USER's own).

    On the system manager those whose service has User=USER; on USER's own manager (when it
    runs) every timer. Soonest first.
    """
    from runas_podman.manage.timers import list_timers, render

    notes: list[str] = []
    rows = _run(list_timers(_user(user), notes))
    click.echo(render(rows, output_format == "json"))
    for note in notes:
        click.echo(f"runas-podman: note: {note}", err=True)
    return 0


@click.group()
def quadlet() -> None:
    """Install and drive USER's Quadlets (~/.config/containers/systemd/)."""


@quadlet.command("install")
@USER_OPTION
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
def quadlet_install(user: str, files: tuple[str, ...]) -> int:
    """Validate FILES with podman's generator, install them, reload USER's manager."""
    from pathlib import Path  # not at the top: `runas-podman --version` must stay light

    from runas_podman.manage import quadlet as quadlets

    target = _user(user)
    installed = quadlets.install(target, [Path(file) for file in files])
    if not quadlets.podman_manages_quadlets():  # podman quadlet install reloads itself
        _run(quadlets.reload_manager(target))
    for name, units in installed.items():
        click.echo(f"installed {name}: {', '.join(units)}")
    return 0


@quadlet.command("list")
@USER_OPTION
@format_options()
def quadlet_list(user: str, output_format: str) -> int:
    """USER's Quadlets, the units they become, and the units' states."""
    import json

    from runas_podman.manage import quadlet as quadlets
    from runas_podman.manage.podman_api import render_table

    target = _user(user)
    rows: list[list[str]]
    by_podman = quadlets.listed(target)  # podman quadlet list, on podman >= 5.6
    if by_podman is not None:
        rows = [list(row) for row in by_podman]
    else:
        files = quadlets.installed(target)
        units = quadlets.generate(files) if files else {}
        states = _run(quadlets.unit_states(target, [u for us in units.values() for u in us]))
        rows = [
            [name, unit, states.get(unit, "?")] for name in files for unit in units.get(name, [])
        ]
    if output_format == "json":
        keys = ("quadlet", "unit", "state")
        click.echo(json.dumps([dict(zip(keys, row, strict=True)) for row in rows], indent=2))
    else:
        click.echo(render_table(["QUADLET", "UNIT", "STATE"], rows))
    return 0


@quadlet.command("remove")
@USER_OPTION
@click.option("--force", is_flag=True, help="Also when another Quadlet of USER names it.")
@QUADLET_NAMES
def quadlet_remove(user: str, force: bool, names: tuple[str, ...]) -> int:
    """Stop and remove USER's Quadlets NAMES (file or unit names).

    A file another Quadlet still names (Network=, Volume=, Pod=, Image=) is refused
    unless --force, or both are removed together.
    """
    from runas_podman.manage import quadlet as quadlets

    target = _user(user)
    chosen = quadlets.resolve(target, names)
    if not force:
        quadlets.check_dependents(target, [name for name, _units in chosen])
    _run(quadlets.run_jobs(target, "StopUnit", [u for _f, us in chosen for u in us]))
    reloaded = quadlets.remove(target, [name for name, _units in chosen])
    for name, _units in chosen:
        click.echo(f"removed {name}")
    if not reloaded:
        _run(quadlets.reload_manager(target))
    return 0


def _drive(method: str, user: str, names: tuple[str, ...]) -> int:
    from runas_podman.manage import quadlet as quadlets

    status = 0
    for unit, state, problem in _run(quadlets.drive(_user(user), method, names)):
        click.echo(f"{unit}: {state}" + (f" ({problem})" if problem else ""))
        status = status or (1 if problem else 0)
    return status


@quadlet.command("start")
@USER_OPTION
@QUADLET_NAMES
def quadlet_start(user: str, names: tuple[str, ...]) -> int:
    """Start the units of USER's Quadlets NAMES."""
    return _drive("StartUnit", user, names)


@quadlet.command("stop")
@USER_OPTION
@QUADLET_NAMES
def quadlet_stop(user: str, names: tuple[str, ...]) -> int:
    """Stop the units of USER's Quadlets NAMES."""
    return _drive("StopUnit", user, names)


# Added to the `runas-podman` group by cli.py (no import of cli here: no cycle).
COMMANDS = (setup, remove, doctor, ps, images, inspect, logs, stop, rm, timers, quadlet)
