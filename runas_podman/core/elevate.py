"""The pure core of `runas`: elevator options -> a LaunchPlan, the way run0 builds its unit.

What the invoked command gets is decided here and only here: a fresh unit forked off
the system manager, with the manager's environment plus an allowlist (TERM, SUDO_*,
SHELL_PROMPT_PREFIX, the session class, and what --setenv/--preserve-env name).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from runas_podman.core.errors import (
    UsageError,
    is_utf8,
    one_line,
    shell_join,
    shell_quote,
    truncated,
)
from runas_podman.core.model import Assignment, LaunchPlan, Manager, ServiceUser, Stdio
from runas_podman.core.plan import parse_assignments, parse_setenv
from runas_podman.core.plan import unit_slice as plan_unit_slice

PAM_SERVICE = "runas"
PAM_FILE = f"/etc/pam.d/{PAM_SERVICE}"
# The polkit action the root broker checks for `runas --via-broker`, with the command in
# its details (data/polkit/org.runas_podman.policy); the one systemd checks otherwise.
RUN_ACTION = "org.runas_podman.run"
MANAGE_UNITS_ACTION = "org.freedesktop.systemd1.manage-units"
DEFAULT_PROMPT_PREFIX = "\N{SUPERHERO} "
# run0 >= 259 (systemd#39882): an empowered session has its own prompt glyph.
EMPOWER_PROMPT_PREFIX = "\N{JACK-O-LANTERN} "
EMPOWER_GROUP = "empower"
# Hues as run0 picks them: red for root, orange for --empower, yellow for other users.
HUE_ROOT, HUE_EMPOWER, HUE_OTHER = 0, 30, 60
TERM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")  # a terminfo entry's name
TITLE_DOT = {HUE_ROOT: "\N{LARGE RED CIRCLE}", HUE_EMPOWER: "\N{LARGE ORANGE CIRCLE}",
             HUE_OTHER: "\N{LARGE YELLOW CIRCLE}"}  # fmt: skip


@dataclass(frozen=True)
class Caller:
    """Who runs runas, and what of its context the plan may look at."""

    name: str
    uid: int
    gid: int
    cwd: str
    environ: Mapping[str, str]
    slice: str | None = None  # the caller's own slice, for --slice-inherit
    hostname: str = ""
    on_tty: bool = False  # any of the caller's stdin, stdout, stderr is a terminal


@dataclass(frozen=True)
class ElevateRequest:
    """What `runas` was asked, as parsed from its options: names not yet resolved.

    The CLI builds it from Click's values field by field; the client sends it to the
    root broker as is (BrokerRequest), so renaming a Click parameter changes nothing here.
    """

    command: tuple[str, ...] = ()
    user: str | None = None  # None: root (or yourself with --empower); "" is refused
    group: str | None = None
    chdir: str | None = None
    login: bool = False
    via_shell: bool = False
    setenv: tuple[str, ...] = ()
    preserve_env: tuple[str, ...] = ()
    properties: tuple[str, ...] = ()
    unit: str | None = None
    description: str | None = None
    slice: str | None = None
    slice_inherit: bool = False
    nice: int | None = None
    stdio: Stdio = Stdio.PIPE
    background: str | None = None
    shell_prompt_prefix: str | None = None
    lightweight: bool | None = None
    empower: bool = False


@dataclass(frozen=True)
class ElevateOptions(ElevateRequest):
    """An ElevateRequest with its names resolved (run.resolve.resolve_elevation): the unit
    named, the group and command looked up, and what resolving found out."""

    unit: str = ""  # always named once resolved
    empower_group_exists: bool = False
    user_given: bool = False  # -u was given (--empower without it keeps the caller's cwd)


def choose_stdio(
    pty: bool, pipe: bool, stdin_tty: bool, stdout_tty: bool, stderr_tty: bool
) -> Stdio:
    """--pty or --pipe when one is given; else (or both) a pty when any of stdin, stdout,
    stderr is a terminal: those go through the pty (ptyfwd.through_pty), so the command,
    running as someone else, never holds the caller's terminal (sudo's use_pty, run0)."""
    if pty != pipe:
        return Stdio.PTY if pty else Stdio.PIPE
    return Stdio.PTY if stdin_tty or stdout_tty or stderr_tty else Stdio.PIPE


def session_class(
    lightweight: bool | None, target_is_root: bool, empower: bool, pty: bool
) -> str | None:
    """XDG_SESSION_CLASS for pam_systemd (run0's --lightweight); None leaves it to PAM."""
    if lightweight is None:
        if not (target_is_root or empower):
            return None
        lightweight = True
    if not pty:
        return "background-light" if lightweight else "background"
    base = "user-early" if target_is_root else "user"
    return base + "-light" if lightweight else base


def tint_hue(target_is_root: bool, empower: bool) -> int:
    """As run0: root first (an empowered root is root), then --empower, then another user."""
    if target_is_root:
        return HUE_ROOT
    return HUE_EMPOWER if empower else HUE_OTHER


def tint_color(hue: int, value: float = 0.2, saturation: float = 0.75) -> str:
    """An SGR background `48;2;R;G;B` of `hue`, dark as run0 picks it for a dark terminal."""
    h = (hue % 360) / 60
    chroma = value * saturation
    x = chroma * (1 - abs(h % 2 - 1))
    r, g, b = [(chroma, x, 0), (x, chroma, 0), (0, chroma, x), (0, x, chroma), (x, 0, chroma),
               (chroma, 0, x)][int(h) % 6]  # fmt: skip
    m = value - chroma
    return "48;2;" + ";".join(str(round((c + m) * 255)) for c in (r, g, b))


def decorations(
    stdout_tty: bool,
    environ: Mapping[str, str],
    background: str | None,
    hue: int,
    command: Sequence[str],
    hostname: str,
) -> tuple[str | None, str | None]:
    """(tint, title) of a pty session: only for a terminal on stdout, so that captured
    output is the command's alone; no tint under NO_COLOR or TERM=dumb.

    `background`: None for the default tint of `hue`, "" for none, else an SGR colour.
    """
    if not stdout_tty:
        return None, None
    colours = not environ.get("NO_COLOR") and environ.get("TERM") != "dumb"
    tint = (tint_color(hue) if background is None else background or None) if colours else None
    return tint, window_title(hue, command, hostname)


def window_title(hue: int, command: Sequence[str], hostname: str) -> str:
    text = f"{TITLE_DOT[hue]} {shell_join(command)}"
    return f"{text} on {hostname}" if hostname else text


def check_conflicts(options: ElevateOptions) -> None:
    if options.login and options.chdir is not None:
        raise UsageError("-i already changes to the target's home: drop -D/--chdir, or -i")


def build_elevate_plan(options: ElevateOptions, caller: Caller, target: ServiceUser) -> LaunchPlan:
    """The unit run0 would start for these options, as a LaunchPlan.

    --empower (run0 >= 259): the target (-u, else the caller) keeps its uid and gets every
    capability and the group `empower`, if the host has it; as run0, an empowered root is
    just root (red, superhero, user-early).
    """
    target_is_root = target.uid == 0
    pty = options.stdio is Stdio.PTY
    argv = login_command(options, target)
    # Derived settings are made typed (Assignment.typed); what the caller chose, and
    # what needs systemd's checks, goes through the -p parser.
    typed = Assignment.typed
    assignments = [typed(f"User={target.name}", "s", target.name)]
    if options.group is not None:
        assignments.append(typed(f"Group={options.group}", "s", options.group))
    assignments += [
        typed(f"PAMName={PAM_SERVICE}", "s", PAM_SERVICE),
        typed("Type=exec", "s", "exec"),
        typed("SendSIGHUP=yes", "b", True),
        typed("IgnoreSIGPIPE=no", "b", False),
    ]
    slice_name = unit_slice(options, caller)
    if options.slice or options.slice_inherit:
        assignments.append(Assignment.parse(f"Slice={slice_name}"))  # checked as a slice name
    else:
        assignments.append(typed(f"Slice={slice_name}", "s", slice_name))
    for field in (f"ELEVATED_UID={caller.uid}", f"ELEVATED_GID={caller.gid}",
                  f"ELEVATED_USER={caller.name}"):  # fmt: skip
        assignments.append(typed(f"LogExtraFields={field}", "aay", [field.encode()]))
    if options.nice is not None:
        assignments.append(typed(f"Nice={options.nice}", "i", options.nice))
    workdir = working_directory(options, caller, target_is_root)
    if workdir is not None:
        if workdir == "~" or workdir.startswith("/"):
            assignments.append(typed(f"WorkingDirectory={workdir}", "s", workdir))
        else:
            assignments.append(Assignment.parse(f"WorkingDirectory={workdir}"))
    if options.empower:
        assignments.append(Assignment.parse("AmbientCapabilities=~"))
        if options.empower_group_exists:
            assignments.append(Assignment.parse(f"SupplementaryGroups={EMPOWER_GROUP}"))
    assignments += parse_assignments(options.properties)
    return LaunchPlan(
        unit=options.unit,
        manager=Manager.SYSTEM,
        user=target,
        argv=tuple(argv),
        description=options.description or truncated(f"[runas] {shell_join(argv)}", 200),
        assignments=tuple(assignments),
        environment=environment(options, caller, target_is_root, pty),
        stdio=options.stdio,
    )


def login_command(options: ElevateOptions, target: ServiceUser) -> list[str]:
    """The command, or the target's shell with login semantics when there is none.

    `-l` (not a '-' argv0) so that the plan renders exactly as a systemd-run command.
    """
    shell = target.shell or "/bin/sh"
    if not options.command:
        return [shell, "-l"]
    if options.via_shell or options.login:
        return [shell, "-l", "-c", shell_command_line(options.command)]
    return list(options.command)


def shell_command_line(command: Sequence[str]) -> str:
    """What `-s`/`-i` hand to `SHELL -c`, so that `$VAR` expands in the target's shell.

    One argument is a command line already (`runas -s 'echo $HOME'`, as `su -c` takes
    it); several are joined the way sudo -s joins them: every character but letters,
    digits, '_', '-' and '$' escaped with a backslash (`runas -s ls '$HOME/my dir'`).
    """
    if len(command) == 1:
        return command[0]
    return " ".join(
        "".join(c if c.isalnum() or c in "_-$" else "\\" + c for c in argument)
        for argument in command
    )


def working_directory(options: ElevateOptions, caller: Caller, target_is_root: bool) -> str | None:
    """-D as given; -i: ~; else as run0: the caller's directory for root and for --empower
    without -u (systemd#39874), ~ otherwise."""
    if options.login:
        return "~"
    if options.chdir is not None:
        if options.chdir == "~":
            return "~"
        path = os.path.normpath(os.path.join(caller.cwd, options.chdir))  # as run0
        return None if path == "/" else path
    stays = target_is_root or (options.empower and not options.user_given)
    if stays:
        from runas_podman.core.gate import check_text

        check_text("your working directory", caller.cwd,
                   "change to another directory, or give -D DIR")  # fmt: skip
    return caller.cwd if stays else "~"


def unit_slice(options: ElevateOptions, caller: Caller) -> str:
    """As run0: --slice/--slice-inherit as systemd-run takes them, else user.slice."""
    return plan_unit_slice(options.slice, options.slice_inherit, caller.slice) or "user.slice"


def preserved_names(preserve_env: Sequence[str]) -> list[str]:
    """The variable names of --preserve-env LIST options (comma-separated, repeatable)."""
    return [name for text in preserve_env for name in text.split(",") if name]


def environment(
    options: ElevateOptions, caller: Caller, target_is_root: bool, pty: bool
) -> tuple[tuple[str, str], ...]:
    env: dict[str, str] = {}
    term = caller.environ.get("TERM")
    if term and is_utf8(term) and not TERM_NAME.fullmatch(term):
        term = "dumb"  # a terminfo name, never a path or a control sequence (bytes that
        # are not UTF-8 are named by the plan's check instead)
    if term and (pty or caller.on_tty):  # as run0: TERM only where a terminal is involved
        env["TERM"] = term
    elif pty:
        env["TERM"] = "dumb"
    env.update(SUDO_USER=caller.name, SUDO_UID=str(caller.uid), SUDO_GID=str(caller.gid))
    prefix = options.shell_prompt_prefix
    if prefix is None:
        glyph = EMPOWER_PROMPT_PREFIX if options.empower and not target_is_root else None
        prefix = caller.environ.get(
            "SYSTEMD_RUN_SHELL_PROMPT_PREFIX", glyph or DEFAULT_PROMPT_PREFIX
        )
    if prefix:
        env["SHELL_PROMPT_PREFIX"] = prefix
    klass = session_class(options.lightweight, target_is_root, options.empower, pty)
    if klass is not None:
        env["XDG_SESSION_CLASS"] = klass
    if options.preserve_env:
        from runas_podman.core.unitprops import ENV_NAME
    for name in preserved_names(options.preserve_env):
        if not ENV_NAME.fullmatch(name):
            raise UsageError(f"--preserve-env: '{name}' is not a valid variable name")
        if name in caller.environ:
            env[name] = caller.environ[name]
    env.update(parse_setenv(options.setenv, dict(caller.environ)))
    return tuple(env.items())


# The keys of org.runas_podman.run's details, as the policy file documents them (a unit
# test holds the two equal).
DETAIL_KEYS = ("program", "command_line", "user", "group", "cwd", "extras", "extras_shown",
               "unit", "description", "stdio", "slice", "environment", "properties")  # fmt: skip


def authorization_details(request: ElevateRequest, plan: LaunchPlan) -> dict[str, str]:
    """What polkit's org.runas_podman.run check sees (and its prompt names), taken from
    the very plan the broker then starts: rules match these texts exactly, and every
    text is one a terminal shows as it is (shell quoting, escapes: errors.shell_quote).

    `extras` lists, one per line, everything the request adds beyond running the command
    as the user: --setenv/--preserve-env variables (with the values that will be set),
    -p properties, --nice, --slice, --empower, --lightweight, --description, --unit, a
    prompt prefix of the caller's; empty for a plain request. `environment` and
    `properties` list the whole unit: every variable and every setting it starts with.
    """
    values = {a.name: a.text.partition("=")[2] for a in plan.assignments}
    workdir = values.get("WorkingDirectory", "")
    if workdir in ("", "~"):
        workdir = plan.user.home if workdir == "~" else "/"
    requested = {text.partition("=")[0] for text in request.setenv}
    requested.update(preserved_names(request.preserve_env))
    extras = [f"Environment={shell_quote(f'{name}={value}')}"
              for name, value in plan.environment if name in requested]  # fmt: skip
    if request.group is not None:
        extras.append(f"Group={values.get('Group', '')}")
    if request.chdir is not None:
        extras.append(f"WorkingDirectory={shell_quote(workdir)}")
    extras += [f"-p {shell_quote(text)}" for text in request.properties]
    if request.nice is not None:
        extras.append(f"Nice={request.nice}")
    if request.slice is not None or request.slice_inherit:
        extras.append(f"Slice={values.get('Slice', '')}")
    if request.empower:
        extras.append("--empower")
    if request.lightweight is not None:
        extras.append(f"--lightweight={'yes' if request.lightweight else 'no'}")
    if request.description is not None:
        extras.append(f"--description={shell_quote(plan.description)}")
    if request.unit is not None:
        extras.append(f"--unit={plan.unit}")
    prompt = dict(plan.environment).get("SHELL_PROMPT_PREFIX")
    if request.shell_prompt_prefix is not None or prompt not in (
        None, DEFAULT_PROMPT_PREFIX, EMPOWER_PROMPT_PREFIX
    ):  # fmt: skip
        extras.append(f"SHELL_PROMPT_PREFIX={shell_quote(prompt or '')}")
    return {
        "program": shell_quote(plan.argv[0]),
        "command_line": shell_join(plan.argv),
        "user": plan.user.name,
        "group": values.get("Group") or plan.user.group,
        "cwd": shell_quote(workdir),
        "extras": "\n".join(extras),
        # The prompt names what the request adds, not only the command (the message's
        # "... as $(user)$(extras_shown)").
        "extras_shown": f", with {', '.join(extras)}" if extras else "",
        "unit": plan.unit,
        "description": one_line(plan.description),
        "stdio": plan.stdio.value,
        "slice": values.get("Slice", ""),
        "environment": "\n".join(shell_quote(f"{n}={v}") for n, v in plan.environment),
        "properties": "\n".join(shell_quote(a.text) for a in plan.assignments),
    }
