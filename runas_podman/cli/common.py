"""Running a Click command the project's way: one line on stderr per failure, a documented
status, no traceback; shared by `runas-podman` and `runas` (click and errors only)."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple, NoReturn

import click

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem

from runas_podman.core.errors import (
    EXIT_LAUNCHER,
    EXIT_USAGE,
    BusCallError,
    RunasError,
    one_line,
    shell_join,
)


class Served(NamedTuple):
    """Click's context object when the launch server runs the command line (cli.server):
    the client's pid, whose slice --slice-inherit means."""

    caller_pid: int


def caller_pid() -> int:
    """The process the command line came from: this one, or the launch server's client."""
    context = click.get_current_context(silent=True)
    served = context.find_object(Served) if context is not None else None
    return served.caller_pid if served is not None else os.getpid()


NO_SERVER_HELP = (
    "Run here, not in the launch server (root's fast path; also RUNAS_PODMAN_SERVER=0)."
)


class AsciiInt(click.ParamType):  # type: ignore[type-arg]
    """An integer of ASCII digits: click's INT takes whatever int() takes
    (full-width digits, '1_0')."""

    name = "integer"

    def __init__(self, low: int | None = None, high: int | None = None) -> None:
        self.low, self.high = low, high

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip(" \t")
        if not re.fullmatch(r"[+-]?[0-9]+", text):
            self.fail(f"'{value}' is not an integer (ASCII digits only)", param, ctx)
        number = int(text)
        if (self.low is not None and number < self.low) or (
            self.high is not None and number > self.high
        ):
            self.fail(f"{number} is not in the range {self.low}..{self.high}", param, ctx)
        return number


def lazy_completion(
    name: str,
) -> Callable[[click.Context, click.Parameter, str], list[CompletionItem]]:
    """The shell_complete callable `name` of runas_podman.install.completion, imported only when a
    shell asks for completions (never on a plain run)."""

    def complete(
        ctx: click.Context, param: click.Parameter, incomplete: str
    ) -> list[CompletionItem]:
        from runas_podman.install import completion

        found: list[CompletionItem] = getattr(completion, name)(ctx, param, incomplete)
        return found

    return complete


def fill_closed_stdio() -> None:
    """/dev/null onto any of fds 0-2 that is closed, before this process opens fds of its
    own: otherwise its first socket would become fd 0, and a unit's stdin with it."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)


def failed(prog: str, message: str, status: int) -> int:
    click.echo(f"{prog}: {one_line(message)}", err=True)
    return status


def run_cli(
    command: click.Command,
    prog: str,
    argv: Sequence[str] | None = None,
    failure_status: int | None = None,
) -> NoReturn:
    """Run a Click command and exit with its status (cli_status)."""
    status = cli_status(command, prog, argv, failure_status)
    exit_quickly()
    sys.exit(status)


def cli_status(
    command: click.Command,
    prog: str,
    argv: Sequence[str] | None = None,
    failure_status: int | None = None,
    obj: object = None,
) -> int:
    """Run a Click command: every error is one line on stderr with a documented status;
    the status to exit with. `failure_status`, if given, is the one status for all of the
    tool's own failures; `obj` reaches the commands as Click's context object."""
    fill_closed_stdio()
    try:
        status = command.main(args=argv, prog_name=prog, standalone_mode=False, obj=obj)
    except click.NoSuchOption as error:
        hint = after_dashes_hint(error, prog, sys.argv[1:] if argv is None else list(argv))
        return failed(prog, f"{error.format_message()} {hint or f'(see {prog} --help)'}",
                      failure_status or EXIT_USAGE)  # fmt: skip
    except click.UsageError as error:
        if type(error).__name__ == "NoArgsIsHelpError":  # click >= 8.2: the help as an error
            return failed(prog, f"missing command (see {prog} --help)",
                          failure_status or EXIT_USAGE)  # fmt: skip
        return failed(prog, f"{error.format_message()} (see {prog} --help)",
                      failure_status or EXIT_USAGE)  # fmt: skip
    except click.ClickException as error:
        return failed(prog, error.format_message(), failure_status or error.exit_code)
    except click.exceptions.Abort:
        return failed(prog, "aborted", 130)
    except click.exceptions.Exit as done:  # --help, --version: Click's own exit
        return done.exit_code
    except RunasError as error:
        return failed(prog, error.message, failure_status or error.status)
    except BusCallError as error:  # a systemd refusal no caller put into words
        return failed(prog, f"systemd refused: {error.text or error.name}",
                      failure_status or EXIT_LAUNCHER)  # fmt: skip
    except OSError as error:  # an I/O failure no caller put into words
        where = f" ({error.filename})" if error.filename else ""
        return failed(prog, f"{error.strerror or error}{where}", failure_status or EXIT_LAUNCHER)
    except KeyboardInterrupt:
        return failed(prog, "interrupted", 130)
    return status if isinstance(status, int) else 0


# Commands whose own options follow ours: an unknown option there is likely podman's.
PASS_THROUGH = {"podman": "podman's"}  # (exec: its command starts at its first argument)


def after_dashes_hint(error: click.NoSuchOption, prog: str, args: Sequence[str]) -> str | None:
    """For `runas-podman podman -u U -v`: the line with `--` before the option, where
    podman's own options go (a command that works as printed), or None."""
    name = error.ctx.command.name if error.ctx is not None else None
    if name not in PASS_THROUGH or error.option_name not in args:
        return None
    at = list(args).index(error.option_name)
    line = shell_join([prog, *args[:at], "--", *args[at:]])
    return f"({PASS_THROUGH[name]} own options go after --: {line})"


def exit_quickly() -> None:
    """Spare the interpreter's last garbage collections of every object still alive: the
    process ends now and its memory goes with it (~15 ms with asyncio, click and
    dbus-next loaded; measured in the testbed). Finalization still runs: atexit
    handlers, flushing stdout and stderr."""
    import gc

    gc.freeze()


def print_properties(output_format: str) -> None:
    """Every unit property -p takes: name, D-Bus signature, what it does (or as JSON)."""
    import json

    from runas_podman.core.unitprops import describe_properties

    rows = describe_properties()
    if output_format == "json":
        keys = ("name", "dbus", "description")
        click.echo(json.dumps([dict(zip(keys, row, strict=True)) for row in rows], indent=2))
        return
    width = max(len(name) for name, _sig, _text in rows)
    for name, _signature, text in rows:
        click.echo(f"{name:<{width}}  {text}")
