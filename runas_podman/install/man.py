"""The man pages, rendered from the Click commands handed in (click-man) with EXIT
STATUS, PROPERTIES (for -p) and SEE ALSO added; at build time (hatch_build.py) and, for
an installation built without them, at install time."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import click

from runas_podman.core.errors import (
    EXIT_CANNOT_EXECUTE,
    EXIT_LAUNCHER,
    EXIT_NOT_FOUND,
    EXIT_USAGE,
)

# (program name, its Click command): what man pages and completions are made from.
Programs = Sequence[tuple[str, "click.Command"]]


# --- the man pages --------------------------------------------------------------------------


def _all_commands(
    command: click.Command, name: str, parent: click.Context | None = None
) -> Iterator[click.Context]:
    context = click.Context(command, info_name=name, parent=parent)
    yield context
    if isinstance(command, click.Group):
        for sub_name in command.list_commands(context):
            sub = command.get_command(context, sub_name)
            if sub is not None and not sub.hidden:
                yield from _all_commands(sub, sub_name, context)


def _page_name(context: click.Context) -> str:
    return context.command_path.replace(" ", "-")


def _exit_status_section(prog: str) -> list[str]:
    if prog == "runas":
        rows = [
            ("the command's", "the command's own status; 128+N when a signal N ended it"),
            ("1", "a failure of runas itself (usage, access denied, systemd refused)"),
        ]
    else:
        rows = [
            ("0", "success"),
            ("1..124", "the command's own status (128+N when a signal N ended it)"),
            (str(EXIT_USAGE), "bad usage: nothing was started"),
            (str(EXIT_LAUNCHER), "a failure of runas-podman itself; one line on stderr"),
            (str(EXIT_CANNOT_EXECUTE), "the command cannot be executed"),
            (str(EXIT_NOT_FOUND), "the command was not found"),
        ]
    lines = [".SH EXIT STATUS"]
    for value, meaning in rows:
        lines += [".TP", rf"\fB{_roff(value)}\fP", _roff(meaning)]
    return lines


def _roff(text: str) -> str:
    """Plain text for a roff line: backslashes and hyphens escaped, no leading dot."""
    escaped = text.replace("\\", r"\e").replace("-", r"\-")
    return rf"\&{escaped}" if escaped.startswith((".", "'")) else escaped


_CLICK_MAN_REQUESTS = frozenset({".TH", ".SH", ".B", ".TP", ".PP"})


def _guard_lines(page: str) -> str:
    """click-man copies help text into the page as is: a help line that starts with a dot
    or a quote would be a roff request. Such lines are made text (\\&)."""
    out = []
    for line in page.split("\n"):
        if line.startswith("'") or (
            line.startswith(".") and line.split(" ", 1)[0] not in _CLICK_MAN_REQUESTS
        ):
            line = rf"\&{line}"
        out.append(line)
    return "\n".join(out)


def render_man_pages(
    programs: Programs, version: str | None = None, date: str | None = None
) -> dict[str, str]:
    """{NAME.1: roff}: runas-podman(1), runas-podman-COMMAND(1) for every subcommand
    (runas-podman-quadlet-install(1), ...), and runas(1), from the Click definitions by
    click-man, with EXIT STATUS, PROPERTIES (for -p) and SEE ALSO added.

    `date` defaults to $SOURCE_DATE_EPOCH's day (reproducible builds), else today.
    Raises ImportError without click-man (a build requirement, not a runtime one)."""
    import time
    import warnings

    from click_man.core import generate_man_page  # type: ignore[import-untyped]

    from runas_podman import __version__
    from runas_podman.core.unitprops import KNOWN_PROPERTIES

    version = version or __version__
    if date is None:
        epoch = os.environ.get("SOURCE_DATE_EPOCH", "")
        seconds = int(epoch) if epoch.isascii() and epoch.isdigit() else int(time.time())
        date = time.strftime("%Y-%m-%d", time.gmtime(seconds))
    pages: dict[str, str] = {}
    for prog, top in programs:
        for context in _all_commands(top, prog):
            with warnings.catch_warnings():  # click-man 0.6 on click 8.2+: deprecations
                warnings.simplefilter("ignore", DeprecationWarning)
                page = _guard_lines(generate_man_page(context, version=version, date=date))
            name = _page_name(context)
            page = _fix_header(page, name, version, date)
            # click-man names a nested group's children "runas-podman quadlet-install(1)".
            page = page.replace(rf"\fB{context.command_path}-", rf"\fB{name}-")
            extra: list[str] = []
            options = {
                opt for param in context.command.params for opt in getattr(param, "opts", [])
            }
            if "--property" in options:
                extra += [
                    ".SH PROPERTIES",
                    r"\fB\-p\fP takes \fINAME\fP\fB=\fP\fIVALUE\fP in the syntax of "
                    r"\fBsystemctl set\-property\fP; these names are known "
                    "(anything else is refused before a unit starts):",
                    ".PP",
                    ".nh",
                    ", ".join(KNOWN_PROPERTIES) + ".",
                    ".hy",
                ]
            if name in ("runas-podman", "runas-podman-exec", "runas-podman-podman", "runas"):
                extra += _exit_status_section(prog)
            extra += [".SH SEE ALSO", _see_also(context)]
            pages[f"{name}.1"] = page.rstrip("\n") + "\n" + "\n".join(extra) + "\n"
    return pages


def _fix_header(page: str, name: str, version: str, date: str) -> str:
    """The title line as man(1) shows it (the page's name, and the suite's), and the NAME
    line with the page's name as apropos(1) indexes it (click-man writes the command path
    with its spaces made hyphens, e.g. runas-podman\\-exec)."""
    lines = page.split("\n")
    lines[0] = f'.TH "{name.upper()}" "1" "{date}" "runas-podman {version}" "runas-podman Manual"'
    if len(lines) > 2 and lines[1] == ".SH NAME":
        _old, separator, summary = lines[2].partition(r" \- ")
        if separator:
            lines[2] = rf"{_roff(name)} \- {summary}"
    return "\n".join(lines)


def _see_also(context: click.Context) -> str:
    references = []
    parent = context.parent
    while parent is not None:
        references.append(f"{_page_name(parent)}(1)")
        parent = parent.parent
    name = _page_name(context)
    if name == "runas-podman":
        references += ["runas(1)", "podman(1)", "systemd-run(1)"]
    elif name == "runas":
        references += ["runas-podman(1)", "run0(1)", "systemd-run(1)", "pam(8)", "polkit(8)"]
    elif name in ("runas-podman-exec", "runas-podman-podman"):
        references += ["systemd-run(1)", "systemd.exec(5)", "systemd.resource-control(5)"]
    elif name.startswith("runas-podman-quadlet"):
        references += ["podman-systemd.unit(5)"]
    elif name.startswith("runas-podman-install") or name == "runas-podman-uninstall":
        references += ["pam.d(5)", "runas(1)"]
    return ", ".join(rf"\fB{_roff(ref.split('(')[0])}\fP({ref.split('(')[1]}" for ref in references)
