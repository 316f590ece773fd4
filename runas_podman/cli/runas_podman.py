"""`runas-podman`: the Click layer. Parses options, builds a plan, hands it to the launcher.

Heavy modules (dbus-next, asyncio machinery) are imported only when something is
launched, so --help, --version and --dry-run stay fast.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click

from runas_podman import __version__
from runas_podman.cli.common import (
    NO_SERVER_HELP,
    AsciiInt,
    caller_pid,
    lazy_completion,
    run_cli,
)
from runas_podman.core.errors import UsageError

F = TypeVar("F", bound=Callable[..., Any])
PROG = "runas-podman"


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
        click.option("--service-type", type=click.Choice(SERVICE_TYPES), metavar="TYPE",
                     help="The service's Type= (default exec): " + ", ".join(SERVICE_TYPES)
                          + "."),
        click.option("-r", "--remain-after-exit", is_flag=True,
                     help="Keep the unit up after the command ends (RemainAfterExit=yes) "
                          "until systemctl stop; with --no-block."),
        click.option("--no-block", is_flag=True,
                     help="Start the unit, print its name (with --json: and invocation ID) "
                          "and return; its output goes to the journal."),
        click.option("--job-mode", type=click.Choice(JOB_MODES), default="fail",
                     show_default=True, metavar="MODE",
                     help="The start job's mode: " + ", ".join(JOB_MODES) + "."),
        click.option("--ignore-failure", is_flag=True,
                     help="A non-zero exit of the command is no failure of the unit, and "
                          "this exits 0 (ExecStart=-...)."),
        click.option("--nice", type=AsciiInt(-20, 19), metavar="NICE",
                     help="Nice level of the command (Nice=)."),
        click.option("-D", "--working-directory", metavar="DIR",
                     help="Working directory of the command (WorkingDirectory=; ~ for home)."),
        click.option("-t", "--pty", is_flag=True,
                     help="Run the command on a pseudo-terminal (e.g. podman run -it); the "
                          "default when USER is not you and stdio is a terminal."),
        click.option("-T", "--pty-late", is_flag=True,
                     help="The same as -t (systemd-run 262): the pty takes your terminal only "
                          "once the unit has started, after any polkit prompt; ours always does."),
        click.option("-P", "--pipe", is_flag=True,
                     help="Hand your stdin/stdout/stderr to the command as they are, "
                          "terminals included (USER can then keep and use your terminal)."),
        click.option("-q", "--quiet", is_flag=True,
                     help="Print no summary (run time, CPU, memory, IO) when the command ends."),
        click.option("--no-ask-password", is_flag=True,
                     help="Never ask for polkit authorization interactively."),
        click.option("-v", "--verbose", is_flag=True,
                     help="Show the unit's journal on stdout while it runs (journalctl -f -u "
                          "UNIT, as systemd-run -v)."),
        click.option("--output", type=click.Choice(OUTPUT_MODES), metavar="MODE",
                     help="How -v shows the journal (journalctl -o): " + ", ".join(OUTPUT_MODES)
                          + "; default short."),
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
        *timer_options(),
    ]  # fmt: skip
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


def timer_options() -> list[Callable[[F], F]]:
    """systemd-run's timer options: with any, a timer NAME.timer starts the command later."""
    from runas_podman.core.timer import CALENDAR_OPTION, SPAN_OPTIONS

    spans = [
        click.option(option, option.removeprefix("--").replace("-", "_"), multiple=True,
                     metavar="SPAN", help=f"Through a timer: run {when} ({setting}=); repeatable.")
        for (option, setting), when in zip(SPAN_OPTIONS, (
            "SPAN from now", "SPAN after boot", "SPAN after the manager started",
            "SPAN after the unit last started", "SPAN after the unit last stopped",
        ), strict=True)
    ]  # fmt: skip
    return [
        *spans,
        click.option(CALENDAR_OPTION[0], "on_calendar", multiple=True, metavar="SPEC",
                     help="Through a timer: run at calendar times (OnCalendar=, e.g. daily, "
                          "'Mon *-*-* 03:00'); repeatable."),
        click.option("--on-clock-change", is_flag=True,
                     help="Through a timer: run when the clock jumps (OnClockChange=yes)."),
        click.option("--on-timezone-change", is_flag=True,
                     help="Through a timer: run when the time zone changes."),
        click.option("--timer-property", "timer_properties", multiple=True, metavar="NAME=VALUE",
                     help="A setting of the timer (Persistent=yes, RandomizedDelaySec=5min, "
                          "...); repeatable."),
    ]  # fmt: skip


SERVICE_TYPES = ("simple", "exec", "forking", "oneshot", "dbus", "notify", "notify-reload",
                 "idle")  # fmt: skip
OUTPUT_MODES = ("short", "short-full", "short-iso", "short-iso-precise", "short-precise",
                "short-monotonic", "short-delta", "short-unix", "verbose", "export", "json",
                "json-pretty", "json-sse", "json-seq", "cat", "with-unit")  # fmt: skip
JOB_MODES = ("fail", "replace", "replace-irreversibly", "isolate", "flush",
             "ignore-dependencies", "ignore-requirements")  # fmt: skip

# Options end at `--` or at the first argument that is not ours (podman -u U ps -a).
COMMAND_SETTINGS = {"allow_interspersed_args": False}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name=PROG)
@click.option("--no-server", is_flag=True, expose_value=False, help=NO_SERVER_HELP)
def cli() -> None:
    """Run podman, or any command, as a service user through systemd."""


@cli.command(context_settings=COMMAND_SETTINGS, short_help="Run podman as USER.")
@launch_options
@click.argument("podman_args", nargs=-1, type=click.UNPROCESSED)
def podman(podman_args: tuple[str, ...], **options: Any) -> int:
    """Run `podman PODMAN_ARGS...` as USER, for example `-- run --rm IMAGE CMD`."""
    if not podman_args:
        raise UsageError("no podman arguments given (e.g. runas-podman podman -u USER -- ps)")
    return launch(("podman", *podman_args), "podman", options)


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
    "--no-launch-server",
    is_flag=True,
    help="Leave out root's launch server (runas-podman-launch.socket), installed by default.",
)
@click.option(
    "--no-commands",
    is_flag=True,
    help="Leave out PREFIX/bin/runas-podman and runas (installed by default).",
)
@click.option(
    "--prefix",
    default="/usr/local",
    show_default=True,
    metavar="DIR",
    help="Where the commands, man pages and shell completions go (DIR/bin, DIR/share).",
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
    broker: bool,
    empower: bool,
    no_launch_server: bool,
    no_commands: bool,
    prefix: str,
    root: str,
    force: bool,
    dry_run: bool,
) -> int:
    """Install what the host needs: the PAM file, man pages, shell completions.

    /etc/pam.d/runas (as install-pam), with --broker the broker units (as install-broker),
    root's launch server (as install-launch-server) unless --no-launch-server, the
    commands runas-podman and runas in PREFIX/bin (as install-commands) unless --no-commands,
    with --empower the group empower (a sysusers.d file) and its polkit rule where the host
    lacks them, the man pages in PREFIX/share/man/man1, and the bash, zsh and fish completions under
    PREFIX/share. Each file is printed as it is written. A file that runas-podman did not
    write, or that was changed since, is refused unless --force. What was written is
    listed in /var/lib/runas-podman/installed, for update and for uninstall.
    """
    from runas_podman.install.install import install

    return install(
        prefix=prefix, root=root, broker=broker, empower=empower,
        launch_server=not no_launch_server, commands=not no_commands, force=force,
        dry_run=dry_run, programs=programs(),
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


def unit_file_options(function: F) -> F:
    """--dest and --force of the commands that install unit files."""
    function = click.option(
        "--force", is_flag=True, help="Replace unit files runas-podman did not write."
    )(function)
    return click.option("--dest", default="/etc/systemd/system", show_default=True,
                        metavar="DIR", help="Where the unit files go.")(function)  # fmt: skip


@cli.command("install-commands")
@click.option("--prefix", default="/usr/local", show_default=True, metavar="DIR",
              help="The commands go to DIR/bin.")  # fmt: skip
@click.option("--force", is_flag=True, help="Replace files runas-podman did not write.")
def install_commands(prefix: str, force: bool) -> int:
    """Install the commands runas-podman and runas into PREFIX/bin.

    Each starts this install's interpreter without site's work (python -I -S) with the
    directories of this install's imports: root's command lines reach the launch server
    for little more than a bare interpreter's start. A symbolic link there to this
    install's own console script is replaced.
    """
    from runas_podman.install.install import install_commands as run

    return run(prefix, force)


@cli.command("install-broker")
@unit_file_options
def install_broker(dest: str, force: bool) -> int:
    """Install and start the root broker of runas (runas-broker.socket): the wheel+PAM path,
    and the per-command polkit path of `runas --via-broker` (its polkit action too)."""
    from runas_podman.install.install import install_broker as run

    return run(dest, force)


@cli.command("install-launch-server")
@unit_file_options
def install_launch_server(dest: str, force: bool) -> int:
    """Install and start root's launch server (runas-podman-launch.socket): a warm process
    that runs root's exec, podman, ps, images, inspect, logs and runas command lines, so a
    launch costs about what systemd-run's does. Only root can connect; see --no-server."""
    from runas_podman.install.install import install_launch_server as run

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


@cli.command("exec", context_settings=COMMAND_SETTINGS)
@launch_options
@click.argument("command", nargs=-1, type=click.UNPROCESSED, required=True)
def exec_command(command: tuple[str, ...], **options: Any) -> int:
    """Run COMMAND as USER in a transient service."""
    return launch(command, None, options)


def launch(argv: tuple[str, ...], package: str | None, options: dict[str, Any]) -> int:
    """Click's values, converted to the typed request; the caller is this process."""
    from runas_podman.core.model import Via
    from runas_podman.core.timer import TimerOptions
    from runas_podman.launch.launch import run
    from runas_podman.launch.request import (
        Backend,
        CallerStdio,
        JsonMode,
        ServiceOptions,
        ServiceRequest,
        caller_of,
    )

    json = options.pop("json")
    options["pty"] = options.pop("pty_late") or options["pty"]
    timer = TimerOptions(
        spans=tuple((f"--{name.replace('_', '-')}", value) for name in TIMER_SPANS
                    for value in options.pop(name)),
        clock_change=options.pop("on_clock_change"),
        timezone_change=options.pop("on_timezone_change"),
        properties=options.pop("timer_properties"),
    )  # fmt: skip
    typed = ServiceOptions(
        timer=timer,
        **{name: value for name, value in options.items() if name not in CONVERTED},
        slice=options["slice_"],
        via=Via(options["via"]),
        backend=Backend(options["backend"]),
        json=None if json in (None, "off") else JsonMode(json),
        ask_password=not options["no_ask_password"],
    )
    stdio = CallerStdio.of()
    caller = caller_of(caller_pid(), os.geteuid(), os.getegid(), os.environ, _cwd(),
                       any(stdio.ttys))  # fmt: skip
    return run(ServiceRequest(argv, typed, caller, package, PROG), stdio)


TIMER_SPANS = ("on_active", "on_boot", "on_startup", "on_unit_active", "on_unit_inactive",
               "on_calendar")  # fmt: skip
CONVERTED = frozenset({"slice_", "via", "backend", "no_ask_password"})


def _cwd() -> str:
    try:
        return os.getcwd()
    except OSError:
        return ""  # removed under us: only -d uses it, and says so


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
