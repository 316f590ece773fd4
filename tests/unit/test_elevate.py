"""The pure core of `runas`: run0's rules for stdio, environment, directories, tint."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runas_podman.core.elevate import (
    DEFAULT_PROMPT_PREFIX,
    Caller,
    ElevateOptions,
    build_elevate_plan,
    check_conflicts,
    choose_stdio,
    decorations,
    session_class,
    shell_command_line,
    tint_color,
    tint_hue,
    unit_slice,
    window_title,
)
from runas_podman.core.errors import UsageError
from runas_podman.core.model import ServiceUser, Stdio
from runas_podman.run.ptyfwd import Tinter

ROOT = ServiceUser("root", 0, 0, "root", "/root", "/bin/bash")
TEST = ServiceUser("test", 1000, 1000, "test", "/home/test", "/bin/bash")
CALLER = Caller(
    name="alice", uid=1001, gid=1001, cwd="/srv/work",
    environ={"TERM": "xterm-256color", "LD_PRELOAD": "/evil.so", "PATH": "/evil:/usr/bin",
             "PYTHONPATH": "/evil", "IFS": ":", "KEEP": "kept", "HOME": "/home/alice"},
    slice="user-1001.slice", hostname="box",
)  # fmt: skip


def plan_for(target: ServiceUser = TEST, caller: Caller = CALLER, **options: object):  # type: ignore[no-untyped-def]
    defaults: dict[str, object] = {"command": ("/usr/bin/id",), "unit": "runas-x.service"}
    defaults.update(options)
    return build_elevate_plan(ElevateOptions(**defaults), caller, target)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("pty", "pipe", "ttys", "mode"),
    [(False, False, (True, True, True), "pty"), (False, False, (True, True, False), "pty"),
     (False, False, (False, True, True), "pty"), (True, False, (False, False, False), "pty"),
     (False, True, (True, True, True), "pipe"), (True, True, (True, True, True), "pty"),
     (True, True, (True, False, True), "pty"), (False, False, (False, False, False), "pipe")],
)  # fmt: skip
def test_stdio_choice_as_run0(pty: bool, pipe: bool, ttys: tuple[bool, ...], mode: str) -> None:
    assert choose_stdio(pty, pipe, *ttys).value == mode


def test_environment_is_an_allowlist() -> None:
    env = dict(plan_for(caller=dataclasses.replace(CALLER, on_tty=True)).environment)
    assert env == {
        "TERM": "xterm-256color",
        "SUDO_USER": "alice", "SUDO_UID": "1001", "SUDO_GID": "1001",
        "SHELL_PROMPT_PREFIX": DEFAULT_PROMPT_PREFIX,
    }  # fmt: skip


def test_term_only_where_a_terminal_is_involved() -> None:
    assert "TERM" not in dict(plan_for().environment)
    pty_env = dict(
        plan_for(stdio=Stdio.PTY, caller=dataclasses.replace(CALLER, environ={})).environment
    )
    assert pty_env["TERM"] == "dumb"


def test_setenv_preserve_env_and_prompt_prefix() -> None:
    caller = dataclasses.replace(
        CALLER, environ={**CALLER.environ, "SYSTEMD_RUN_SHELL_PROMPT_PREFIX": "$ "}
    )
    env = dict(
        plan_for(caller=caller, setenv=("A=1", "KEEP"), preserve_env=("HOME,NOPE",)).environment
    )
    assert env["A"] == "1" and env["KEEP"] == "kept" and env["HOME"] == "/home/alice"
    assert "NOPE" not in env and env["SHELL_PROMPT_PREFIX"] == "$ "
    assert "SHELL_PROMPT_PREFIX" not in dict(plan_for(shell_prompt_prefix="").environment)
    assert dict(plan_for(shell_prompt_prefix="# ").environment)["SHELL_PROMPT_PREFIX"] == "# "


def test_unit_properties_as_run0() -> None:
    texts = [a.text for a in plan_for().assignments]
    assert texts[:6] == ["User=test", "PAMName=runas", "Type=exec", "SendSIGHUP=yes",
                         "IgnoreSIGPIPE=no", "Slice=user.slice"]  # fmt: skip
    assert "LogExtraFields=ELEVATED_USER=alice" in texts
    assert "WorkingDirectory=~" in texts


@pytest.mark.parametrize(
    ("target", "options", "directory"),
    [(ROOT, {}, "/srv/work"), (TEST, {}, "~"), (TEST, {"chdir": "/var"}, "/var"),
     (ROOT, {"login": True}, "~"), (TEST, {"chdir": "~"}, "~"),
     (TEST, {"chdir": "sub/../dir"}, "/srv/work/dir"),
     # --empower (run0 >= 259, systemd#39874): the caller's directory, unless -u was given
     (TEST, {"empower": True}, "/srv/work"), (TEST, {"empower": True, "user_given": True}, "~")],
)  # fmt: skip
def test_working_directory_rules(
    target: ServiceUser, options: dict[str, object], directory: str
) -> None:
    texts = [a.text for a in plan_for(target=target, **options).assignments]
    assert f"WorkingDirectory={directory}" in texts


def test_login_shell_without_command_and_via_shell() -> None:
    assert plan_for(command=()).argv == ("/bin/bash", "-l")
    assert plan_for(command=("echo", "a b"), via_shell=True).argv == (
        "/bin/bash", "-l", "-c", "echo a\\ b",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("command", "line"),
    [
        (("echo $HOME",), "echo $HOME"),  # one argument: a command line, as su -c
        (("echo", "$HOME"), "echo $HOME"),  # several: sudo -s's escaping keeps '$'
        (("ls", "$HOME/my dir"), "ls $HOME\\/my\\ dir"),
        (("printf", "%s;", "a'b"), "printf \\%s\\; a\\'b"),
        (("echo", "under_score-dash"), "echo under_score-dash"),
    ],
)
def test_via_shell_command_line_expands_variables(command: tuple[str, ...], line: str) -> None:
    assert shell_command_line(command) == line
    assert plan_for(command=command, via_shell=True).argv[-1] == line


ALICE = ServiceUser("alice", 1001, 1001, "alice", "/home/alice", "/bin/bash")


def test_empower_properties() -> None:
    texts = [
        a.text for a in plan_for(target=ALICE, empower=True, empower_group_exists=True).assignments
    ]
    assert "AmbientCapabilities=~" in texts and "SupplementaryGroups=empower" in texts
    assert "User=alice" in texts
    without_group = [a.text for a in plan_for(target=ALICE, empower=True).assignments]
    assert "AmbientCapabilities=~" in without_group
    assert not any(t.startswith("SupplementaryGroups=") for t in without_group)


def test_empower_looks_as_run0_259() -> None:
    """systemd#39882: orange, a pumpkin prompt, an orange dot; an empowered root is root."""
    env = dict(plan_for(target=ALICE, empower=True, stdio=Stdio.PTY).environment)
    assert env["SHELL_PROMPT_PREFIX"] == "\N{JACK-O-LANTERN} "
    assert env["XDG_SESSION_CLASS"] == "user-light"
    assert tint_hue(False, True) == 30 and tint_hue(True, True) == 0
    root_env = dict(plan_for(target=ROOT, empower=True, stdio=Stdio.PTY).environment)
    assert root_env["SHELL_PROMPT_PREFIX"] == DEFAULT_PROMPT_PREFIX
    assert root_env["XDG_SESSION_CLASS"] == "user-early-light"
    assert window_title(30, ["x"], "") == "\N{LARGE ORANGE CIRCLE} x"


def test_empower_with_a_user_is_no_conflict() -> None:
    check_conflicts(ElevateOptions(empower=True, user_given=True))  # run0 >= 259 takes both


def test_conflicts() -> None:
    with pytest.raises(UsageError, match="-i already changes"):
        check_conflicts(ElevateOptions(login=True, chdir="/tmp"))


@pytest.mark.parametrize(
    ("lightweight", "root", "empower", "pty", "klass"),
    [(None, True, False, True, "user-early-light"), (None, False, False, True, None),
     (None, False, True, False, "background-light"), (False, True, False, True, "user-early"),
     (True, False, False, True, "user-light"), (False, False, False, False, "background")],
)  # fmt: skip
def test_session_class(
    lightweight: bool | None, root: bool, empower: bool, pty: bool, klass: str | None
) -> None:
    assert session_class(lightweight, root, empower, pty) == klass


def test_slices() -> None:
    assert unit_slice(ElevateOptions(), CALLER) == "user.slice"
    assert unit_slice(ElevateOptions(slice="work"), CALLER) == "work.slice"
    assert unit_slice(ElevateOptions(slice_inherit=True), CALLER) == "user-1001.slice"
    assert unit_slice(ElevateOptions(slice="x", slice_inherit=True), CALLER) == "user-1001-x.slice"


def test_tint_colors_and_title() -> None:
    assert tint_color(0) == "48;2;51;13;13"  # reddish for root
    assert tint_color(60) == "48;2;51;51;13"  # yellowish for another user
    assert tint_color(30) == "48;2;51;32;13"
    assert window_title(0, ["/bin/bash", "-l"], "box") == "\N{LARGE RED CIRCLE} /bin/bash -l on box"


def test_tinter_rewrites_resets_and_line_starts() -> None:
    tinter = Tinter("41")
    assert tinter.start() == b"\x1b[41m\x1b[K"
    assert tinter.feed(b"a\r\nb") == b"a\r\x1b[41m\n\x1b[41mb"
    assert tinter.feed(b"\x1b[0m\x1b[1;32m\x1b[49m") == b"\x1b[0;41m\x1b[1;32m\x1b[49;41m"
    assert tinter.feed(b"\x1bc") == b"\x1bc\x1b[41m"


@given(st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=6))
def test_tinter_output_does_not_depend_on_chunking(data: bytes, cuts: list[int]) -> None:
    in_one = Tinter("41")
    whole = in_one.feed(data)
    in_pieces = Tinter("41")
    points = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    pieces = b"".join(in_pieces.feed(data[a:b]) for a, b in itertools.pairwise(points))
    assert pieces == whole
    assert in_pieces.pending == in_one.pending  # an unfinished sequence is held the same way


def test_decorations_only_on_a_terminal_and_without_colour_when_asked() -> None:
    on_tty = {"TERM": "xterm-256color"}
    tint, title = decorations(True, on_tty, None, 0, ["/bin/true"], "host")
    assert tint == tint_color(0) and title is not None and "/bin/true" in title
    assert decorations(False, on_tty, None, 0, ["/bin/true"], "host") == (None, None)
    assert decorations(True, {**on_tty, "NO_COLOR": "1"}, None, 0, ["x"], "")[0] is None
    assert decorations(True, {"TERM": "dumb"}, None, 0, ["x"], "")[0] is None
    assert decorations(True, on_tty, "", 0, ["x"], "")[0] is None
    assert decorations(True, on_tty, "48;5;1", 0, ["x"], "")[0] == "48;5;1"


def test_context_sequences_are_cut_from_captured_output_wherever_chunks_split() -> None:
    from runas_podman.run.ptyfwd import ContextFilter

    data = b"\x1b]3008;start=a;user=root;type=session\x1b\\foo\x1b]3008;end=a\x07bar\x1b]0;t\x07"
    for cut in range(len(data) + 1):
        for second in range(cut, len(data) + 1):
            context = ContextFilter()
            out = context.feed(data[:cut]) + context.feed(data[cut:second])
            out += context.feed(data[second:])
            assert out == b"foobar\x1b]0;t\x07"  # other OSC sequences pass


CONTROL = st.sampled_from(["\n", "\r", "\x1b", "\x85", "\x7f", "\t", "\x00"])
HOSTILE = st.builds(lambda a, c, b: a + c + b, st.text(max_size=4), CONTROL, st.text(max_size=4))
ELEVATE_FIELDS = ("description", "chdir", "setenv", "properties", "shell_prompt_prefix",
                  "cwd", "command", "preserve_env")  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(field=st.sampled_from(ELEVATE_FIELDS), value=HOSTILE)
def test_no_control_character_reaches_what_systemd_writes_raw(field: str, value: str) -> None:
    """Whatever a request carries, the unit call holds no control character outside the
    settings systemd escapes itself (Environment=, command lines, byte arrays), or the
    plan is refused with a usage error (the gate, issue 18)."""
    from runas_podman.core.errors import is_control
    from runas_podman.core.gate import escaped_by_systemd
    from runas_podman.core.properties import Session, start_call

    options: dict[str, object] = {}
    caller = CALLER
    if field == "cwd":
        caller = dataclasses.replace(CALLER, cwd="/srv/" + value)
    elif field == "setenv":
        options["setenv"] = ("A=" + value,)
    elif field == "properties":
        options["properties"] = ("SyslogIdentifier=" + value,)
    elif field == "preserve_env":
        options["preserve_env"] = ("KEEP",)
        caller = dataclasses.replace(CALLER, environ={**CALLER.environ, "KEEP": value})
    elif field == "command":
        options["command"] = ("/bin/echo", value)
    elif field == "chdir":
        options["chdir"] = "/srv/" + value
    else:
        options[field] = value
    try:
        plan = plan_for(ROOT, caller, **options)
        call = start_call(plan, Session(tty_path="/dev/pts/3"))
    except UsageError:
        return
    for unit in (call.unit, *call.aux):
        for name, signature, prop_value in unit.properties:
            if escaped_by_systemd(name, signature):
                continue
            texts = [prop_value] if isinstance(prop_value, str) else []
            if isinstance(prop_value, list):
                texts = [t for t in prop_value if isinstance(t, str)]
            assert not any(is_control(c) for t in texts for c in t), (name, prop_value)
