"""`runas-podman`: the Click layer. Parses options, builds a plan, hands it to the launcher.

Heavy modules (dbus-next, asyncio machinery) are imported only when something is
launched, so --help, --version and --dry-run stay fast.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn, TypeVar

import click

from runas_podman import __version__
from runas_podman.cli.common import AsciiInt, lazy_completion, run_cli
from runas_podman.core.errors import UsageError

if TYPE_CHECKING:
    from runas_podman.core.model import LaunchPlan

F = TypeVar("F", bound=Callable[..., Any])
PROG = "runas-podman"


class LaunchOptions(NamedTuple):  # not a dataclass: keeps `dataclasses` off --version
    user: str
    group: str | None
    via: str
    properties: tuple[str, ...]
    setenv: tuple[str, ...]
    unit: str | None
    description: str | None
    dry_run: bool
    backend: str
    open_files: tuple[str, ...]
    pass_fds: tuple[str, ...]
    slice_: str | None
    slice_inherit: bool
    same_dir: bool
    send_sighup: bool
    nice: int | None
    working_directory: str | None
    quiet: bool
    no_ask_password: bool
    pty: bool
    pipe: bool
    json: str | None


def launch_options(function: F) -> F:
    """The options shared by every command that starts a unit."""
    decorators = [
        click.option("-u", "--user", required=True, metavar="USER",
                     shell_complete=lazy_completion("complete_service_user"),
                     help="Service user to run as (name or uid)."),
        click.option("-g", "--group", metavar="GROUP",
                     shell_complete=lazy_completion("complete_group"),
                     help="Group to run as (name or gid; Group=), instead of USER's primary "
                          "group; system manager only."),
        click.option("--via", type=click.Choice(["auto", "system", "user"]), default="auto",
                     show_default=True,
                     help="Service manager that runs the unit: PID 1 with User=, or USER's own; "
                          "auto: USER's own when USER runs this."),
        click.option("-p", "--property", "properties", multiple=True, metavar="NAME=VALUE",
                     shell_complete=lazy_completion("complete_property"),
                     help="Unit property, systemctl set-property syntax; repeatable."),
        click.option("-E", "--setenv", multiple=True, metavar="NAME[=VALUE]",
                     help="Environment variable for the command; NAME alone copies yours."),
        click.option("--slice", "slice_", metavar="SLICE", help="Slice of the unit (Slice=)."),
        click.option("--slice-inherit", is_flag=True,
                     help="Put the unit under your own slice (with --slice: inside it)."),
        click.option("-d", "--same-dir", is_flag=True,
                     help="Run in your working directory (WorkingDirectory=)."),
        click.option("--send-sighup", is_flag=True,
                     help="Send SIGHUP after SIGTERM when stopping (SendSIGHUP=yes)."),
        click.option("--nice", type=AsciiInt(-20, 19), metavar="NICE",
                     help="Nice level of the command (Nice=)."),
        click.option("-D", "--working-directory", metavar="DIR",
                     help="Working directory of the command (WorkingDirectory=; ~ for home)."),
        click.option("-t", "--pty", is_flag=True,
                     help="Run the command on a pseudo-terminal (e.g. podman run -it); the "
                          "default when USER is not you and stdio is a terminal."),
        click.option("-P", "--pipe", is_flag=True,
                     help="Hand your stdin/stdout/stderr to the command as they are, "
                          "terminals included (USER can then keep and use your terminal)."),
        click.option("-q", "--quiet", is_flag=True,
                     help="Print no summary (run time, CPU, memory, IO) when the command ends."),
        click.option("--no-ask-password", is_flag=True,
                     help="Never ask for polkit authorization interactively."),
        click.option("--json", type=click.Choice(["short", "pretty", "off"]), metavar="MODE",
                     help="Print the unit name and invocation ID as JSON (short|pretty) once "
                          "the unit has started."),
        click.option("--unit", metavar="NAME", help="Unit name (default runas-podman-RANDOM).",
                     shell_complete=lazy_completion("complete_unit")),
        click.option("--description", metavar="TEXT", help="Unit description."),
        click.option("--dry-run", is_flag=True,
                     help="Print the equivalent systemd-run command line and exit."),
        click.option("--backend", type=click.Choice(["auto", "dbus", "systemd-run", "native"]),
                     default="auto", show_default=True,
                     help="Talk to systemd over D-Bus, exec systemd-run with the same plan, or "
                          "run the command here without systemd (root only); auto: dbus, or "
                          "native where systemd is not PID 1."),
        click.option("--open-file", "open_files", multiple=True, metavar="PATH[:NAME[:FLAGS]]",
                     help="systemd opens PATH and passes it as fd 3, 4, ... (OpenFile=); "
                          "FLAGS: read-only,append,truncate,graceful. Repeatable."),
        click.option("--pass-fd", "pass_fds", multiple=True, metavar="N[:NAME]",
                     help="Pass your open fd N on to the command (ExtraFileDescriptors); "
                          "repeatable."),
    ]  # fmt: skip
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


# Options end at `--` or at the first argument that is not ours (podman -u U ps -a).
COMMAND_SETTINGS = {"allow_interspersed_args": False}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name=PROG)
def cli() -> None:
    """Run podman, or any command, as a service user through systemd."""


@cli.command(context_settings=COMMAND_SETTINGS, short_help="Run podman as USER.")
@launch_options
@click.argument("podman_args", nargs=-1, type=click.UNPROCESSED)
def podman(podman_args: tuple[str, ...], **options: Any) -> int:
    """Run `podman PODMAN_ARGS...` as USER, for example `-- run --rm IMAGE CMD`."""
    if not podman_args:
        raise UsageError("no podman arguments given (e.g. runas-podman podman -u USER -- ps)")
    return launch(LaunchOptions(**options), ("podman", *podman_args), package="podman")


@cli.command("install", short_help="Install the PAM file, man pages, completions.")
@click.option(
    "--broker",
    is_flag=True,
    help="Also install and start runas's wheel+PAM broker (runas-broker.socket).",
)
@click.option(
    "--empower",
    is_flag=True,
    help="Also add what the host lacks of runas --empower's group and polkit rule "
    "(systemd >= 259 ships the rule).",
)
@click.option(
    "--prefix",
    default="/usr/local",
    show_default=True,
    metavar="DIR",
    help="Where man pages and shell completions go (DIR/share/...).",
)
@click.option(
    "--root",
    default="/",
    show_default=True,
    metavar="DIR",
    help="Install into DIR as the target's / (staging); starts nothing.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Replace files runas-podman did not write, or that were changed since.",
)
@click.option("--dry-run", is_flag=True, help="List what install would write; change nothing.")
def install_command(
    broker: bool, empower: bool, prefix: str, root: str, force: bool, dry_run: bool
) -> int:
    """Install what the host needs: the PAM file, man pages, shell completions.

    /etc/pam.d/runas (as install-pam), with --broker the broker units (as install-broker),
    with --empower the group empower (a sysusers.d file) and its polkit rule where the host
    lacks them, the man pages in PREFIX/share/man/man1, and the bash, zsh and fish completions under
    PREFIX/share. Each file is printed as it is written. A file that runas-podman did not
    write, or that was changed since, is refused unless --force. What was written is
    listed in /var/lib/runas-podman/installed, for update and for uninstall.
    """
    from runas_podman.install.install import install

    return install(
        prefix=prefix, root=root, broker=broker, empower=empower, force=force, dry_run=dry_run,
        programs=programs(),
    )  # fmt: skip


def programs() -> tuple[tuple[str, click.Command], ...]:
    """The two programs' Click commands, for their man pages and completions (install
    renders them; it does not import the CLI)."""
    from runas_podman.cli.runas import runas

    return (("runas-podman", cli), ("runas", runas))


@cli.command("uninstall", short_help="Remove what install wrote.")
@click.option(
    "--root",
    default="/",
    show_default=True,
    metavar="DIR",
    help="Uninstall from DIR, the target's / of install --root.",
)
@click.option("--force", is_flag=True, help="Also remove files that were changed since.")
@click.option("--dry-run", is_flag=True, help="List what uninstall would remove; change nothing.")
def uninstall_command(root: str, force: bool, dry_run: bool) -> int:
    """Remove exactly what install wrote (/var/lib/runas-podman/installed lists it).

    The broker is stopped and disabled first if it was installed. A file changed since it
    was installed is refused unless --force; directories install created go when empty.
    """
    from runas_podman.install.install import uninstall

    return uninstall(root=root, force=force, dry_run=dry_run)


@cli.command("install-pam")
@click.option(
    "--dest",
    default="/etc/pam.d/runas",
    show_default=True,
    metavar="PATH",
    help="Where to install the PAM service file of `runas`.",
)
@click.option("--force", is_flag=True, help="Replace a file runas-podman did not write.")
def install_pam(dest: str, force: bool) -> int:
    """Install the PAM service file that `runas` sessions use (PAMName=runas).

    It includes the distribution's own stacks (chosen from /etc/os-release and what
    exists under /etc/pam.d), so sssd/LDAP, faillock or 2FA configured there apply.
    """
    from runas_podman.install.install import install_pam as run

    return run(dest, force)


@cli.command("install-broker")
@click.option(
    "--dest",
    default="/etc/systemd/system",
    show_default=True,
    metavar="DIR",
    help="Where the unit files go.",
)
@click.option("--force", is_flag=True, help="Replace unit files runas-podman did not write.")
def install_broker(dest: str, force: bool) -> int:
    """Install and start the root broker of runas (runas-broker.socket): the wheel+PAM path,
    and the per-command polkit path of `runas --via-broker` (its polkit action too)."""
    from runas_podman.install.install import install_broker as run

    return run(dest, force)


@cli.command("broker")
@click.option(
    "--listen", metavar="PATH", default="/run/runas-broker.sock", show_default=True,
    help="The unix socket to accept runas clients on (mode 0666).",
)  # fmt: skip
def broker_command(listen: str) -> int:
    """Run runas's wheel+PAM broker in the foreground, for supervisors other than systemd.

    For runit, s6 or OpenRC: accepts connections on PATH, one forked root process per
    connection, each served as the socket-activated broker serves one (peer credentials,
    group wheel, the caller's password through PAM). Without systemd as PID 1 the command
    runs natively in that process. Runs until SIGTERM or SIGINT; logs to stderr.
    """
    from runas_podman.broker.listen import listen as serve_forever

    return serve_forever(listen)


def choose_manager(via: str, caller_uid: int, user_uid: int) -> str:
    """--via auto: USER's own manager when USER runs this itself (no privilege needed
    there), the system manager otherwise."""
    if via != "auto":
        return via
    return "user" if caller_uid == user_uid != 0 else "system"


@cli.command("exec", context_settings=COMMAND_SETTINGS)
@launch_options
@click.argument("command", nargs=-1, type=click.UNPROCESSED, required=True)
def exec_command(command: tuple[str, ...], **options: Any) -> int:
    """Run COMMAND as USER in a transient service."""
    return launch(LaunchOptions(**options), command, package=None)


def launch(options: LaunchOptions, argv: Sequence[str], package: str | None) -> int:
    import dataclasses

    from runas_podman.core.model import Manager, Stdio, through_pty
    from runas_podman.core.plan import (
        build_service_plan,
        launch_settings,
        parse_assignments,
        parse_open_file,
        parse_pass_fd,
        parse_setenv,
        podman_plan,
        service_unit_name,
    )
    from runas_podman.core.properties import systemd_run_argv, systemd_run_command
    from runas_podman.host import lookup
    from runas_podman.host.procfs import slice_of

    settings = launch_settings(
        slice_name=options.slice_, slice_inherit=options.slice_inherit,
        caller_slice=slice_of("self") if options.slice_inherit else None, nice=options.nice,
        working_directory=options.working_directory, same_dir=options.same_dir,
        cwd=os.getcwd() if options.same_dir else "/", send_sighup=options.send_sighup,
    )  # fmt: skip
    assignments = parse_assignments([*settings, *options.properties])
    environment = parse_setenv(options.setenv, dict(os.environ))
    open_files = [parse_open_file(text) for text in options.open_files]
    pass_fds = [parse_pass_fd(text) for text in options.pass_fds]
    if pass_fds and options.backend == "systemd-run":
        raise UsageError("--pass-fd needs --backend dbus: systemd-run cannot pass fds")
    unit = service_unit_name(options.unit)
    user = lookup.service_user(options.user)
    manager = Manager(choose_manager(options.via, os.geteuid(), user.uid))
    path = lookup.executable(argv[0], package)
    plan = build_service_plan(
        user=user,
        argv=[path, *argv[1:]],
        manager=manager,
        unit=unit,
        assignments=assignments,
        environment=environment,
        description=options.description,
        open_files=open_files,
        pass_fds=pass_fds,
        group=lookup.group_name(options.group) if options.group is not None else None,
    )
    if manager is Manager.SYSTEM and plan.open_files:
        check_open_files_for_root(plan)
    if package == "podman":
        plan = podman_plan(plan)
    if options.pty and options.pipe:
        raise UsageError("-t/--pty and --pipe contradict each other: give one of them")
    ttys = (os.isatty(0), os.isatty(1), os.isatty(2))
    # A terminal of the caller's is never handed to another user's command: a pty
    # stands between (sudo's use_pty, run0), unless --pipe.
    someone_else = user.uid != os.geteuid()
    if options.pty or (not options.pipe and someone_else and any(ttys)):
        plan = dataclasses.replace(plan, stdio=Stdio.PTY)
    through = through_pty(options.pty, ttys)
    if not options.dry_run and options.backend in ("auto", "native"):
        native = run_natively(plan, options.backend, options.json, through)
        if native is not None:
            return native
    if options.dry_run or options.backend == "systemd-run":
        from runas_podman.run.session import manager_version

        version, note = manager_version(plan)
        if options.dry_run:
            if note is not None:
                click.echo(f"{PROG}: note: {note}", err=True)
            click.echo(systemd_run_command(plan, version))
            return 0
        systemd_run = lookup.executable("systemd-run", "systemd")
        systemd_run_command(plan, version)  # refuses what systemd-run cannot express
        os.execv(systemd_run, systemd_run_argv(plan, version))
    from runas_podman.run.launcher import check_passed_fds

    check_passed_fds(plan)  # before this process opens fds of its own
    from runas_podman.run.session import Report, Terminal, run_session

    interactive = not options.no_ask_password and os.geteuid() != 0 and os.isatty(0)
    # The summary is for people: on a terminal, unless -q (scripts read stderr clean).
    summary = not options.quiet and os.isatty(2)
    json_mode = None if options.json in (None, "off") else options.json
    return run_session(
        plan,
        interactive=interactive,
        terminal=Terminal(through=through),
        report=Report(json_mode, summary),
    )


def run_natively(
    plan: LaunchPlan,
    backend: str,
    json: str | None = None,
    through: tuple[bool, bool, bool] = (True, True, True),
) -> int | None:
    """The status of the plan run natively (--backend native, or auto where systemd is
    not PID 1: said once on stderr), or None when systemd runs it."""
    from runas_podman.host.backend import choose_backend, systemd_running
    from runas_podman.run.launcher import check_passed_fds

    chosen, note = choose_backend(backend, systemd_running() if backend == "auto" else True)
    if chosen != "native":
        return None
    if note is not None:
        click.echo(f"{PROG}: note: {note}", err=True)
    if json not in (None, "off"):
        raise UsageError("--json names the unit and its invocation: there is none natively")
    check_passed_fds(plan)
    from runas_podman.run.native import Client, run_native

    return run_native(plan, Client(through=through))


def check_open_files_for_root(plan: LaunchPlan) -> None:
    """On the system manager PID 1 opens --open-file paths as root: only paths nobody but
    root and the caller controls (see safepath), so the file is the one the caller meant."""
    from runas_podman.host.safepath import check_open_file_for_root

    for open_file in plan.open_files:
        problem = check_open_file_for_root(open_file.path, os.geteuid())
        if problem is not None:
            raise UsageError(
                f"--open-file {open_file.path}: {problem}, so PID 1 (as root) might open another "
                f"file; use --via user to let {plan.user.name}'s own manager open it with "
                f"{plan.user.name}'s rights, or keep the secret where only root can change the "
                "path (e.g. /etc/runas-podman/secrets)"
            )


@cli.command("properties")
@click.option(
    "--format", "output_format", type=click.Choice(["table", "json"]), default="table",
    show_default=True, help="table for people (name, what it does); json adds the D-Bus form.",
)  # fmt: skip
def properties_command(output_format: str) -> int:
    """List every unit property -p accepts (systemd-run -p's own list)."""
    from runas_podman.cli.common import print_properties

    print_properties(output_format)
    return 0


def main() -> NoReturn:
    run_cli(cli, PROG)


def _add_commands() -> None:
    """The service-user commands live in manage_cli; added here, explicitly."""
    from runas_podman.cli.manage import COMMANDS

    for command in COMMANDS:
        cli.add_command(command)


_add_commands()
