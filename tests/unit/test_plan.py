"""The pure plan builder and its systemd-run rendering."""

from __future__ import annotations

import re
import shlex
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runas_podman.bus.systemd_bus import unit_object_path
from runas_podman.core.errors import UsageError, needs_escape
from runas_podman.core.model import (
    Assignment,
    Manager,
    OpenFile,
    PassFd,
    ServiceUser,
    parse_systemd_version,
)
from runas_podman.core.plan import (
    build_service_plan,
    inject_fd_names,
    parse_assignments,
    parse_open_file,
    parse_pass_fd,
    parse_setenv,
    service_unit_name,
    slice_unit_name,
)
from runas_podman.core.properties import (
    Session,
    lifeline_unit_name,
    service_properties,
    start_call,
    systemd_run_argv,
    systemd_run_command,
)
from runas_podman.core.unitprops import UnitProperty
from runas_podman.host.lookup import resolve_executable

TEST_USER = ServiceUser(name="test", uid=1000, gid=1000, group="test", home="/home/test")


def system_plan(**overrides: object):  # type: ignore[no-untyped-def]
    arguments: dict[str, object] = {
        "user": TEST_USER,
        "argv": ["/usr/bin/podman", "run", "--rm", "localhost/busybox", "echo", "hello"],
        "manager": Manager.SYSTEM,
        "unit": "runas-podman-0123456789ab.service",
    }
    arguments.update(overrides)
    return build_service_plan(**arguments)  # type: ignore[arg-type]


def test_system_plan_properties() -> None:
    properties = {
        p.name: p for p in service_properties(system_plan(), Session()) if p.name != "After"
    }
    assert properties["User"] == UnitProperty("User", "s", "test")
    assert properties["Group"] == UnitProperty("Group", "s", "test")
    assert properties["Requires"].value == ["user@1000.service"]
    assert properties["Type"].value == "exec"
    assert properties["CollectMode"].value == "inactive-or-failed"
    assert properties["AddRef"].value is True
    assert properties["Environment"].value == ["XDG_RUNTIME_DIR=/run/user/1000"]
    assert properties["ExecStartEx"] == UnitProperty(
        "ExecStartEx",
        "a(sasas)",
        [["/usr/bin/podman",
          ["/usr/bin/podman", "run", "--rm", "localhost/busybox", "echo", "hello"],
          ["no-env-expand"]]],
    )  # fmt: skip
    after = [p for p in service_properties(system_plan(), Session()) if p.name == "After"]
    assert after == [UnitProperty("After", "as", ["user@1000.service"])]


def test_user_properties_come_after_the_plans_own() -> None:
    plan = system_plan(assignments=parse_assignments(["Type=oneshot", "MemoryMax=1G"]))
    types = [p.value for p in service_properties(plan, Session()) if p.name == "Type"]
    assert types == ["exec", "oneshot"]  # systemd applies them in order: the user's wins


def test_systemd_run_rendering_is_exact() -> None:
    plan = system_plan(
        assignments=parse_assignments(["MemoryMax=1G"]),
        environment=[("FOO", "a b")],
        description="demo",
    )
    assert systemd_run_argv(plan) == [
        "systemd-run",
        "--unit=runas-podman-0123456789ab.service",
        "--description=demo",
        "--wait", "--pipe", "--quiet", "--collect", "--expand-environment=no",
        "--property=User=test",
        "--property=Group=test",
        "--property=Requires=user@1000.service",
        "--property=After=user@1000.service",
        "--property=Type=exec",
        "--property=MemoryMax=1G",
        "--setenv=XDG_RUNTIME_DIR=/run/user/1000",
        "--setenv=FOO=a b",
        "--",
        "/usr/bin/podman", "run", "--rm", "localhost/busybox", "echo", "hello",
    ]  # fmt: skip
    assert shlex.split(systemd_run_command(plan)) == systemd_run_argv(plan)


def test_user_manager_rendering() -> None:
    plan = system_plan(manager=Manager.USER)
    argv = systemd_run_argv(plan)
    assert argv[1:3] == ["--machine=test@", "--user"]
    assert not any(a.startswith("--property=User=") for a in argv)
    names = {p.name for p in service_properties(plan, Session())}
    assert "User" not in names and "Requires" not in names


def bash_words(line: str) -> list[str]:
    """The words bash reads in LINE (which may hold $'...' quoting, unlike shlex)."""
    result = subprocess.run(
        ["bash", "-c", f'set -- {line}; printf "%s\\0" "$@"'],
        capture_output=True, env={"LANG": "C.UTF-8"}, check=True,
    )  # fmt: skip
    return [word.decode("utf-8", "surrogateescape") for word in result.stdout.split(b"\0")[:-1]]


ARGUMENT = st.text(
    st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)), min_size=1, max_size=15
)


@settings(max_examples=60, deadline=None)
@given(st.lists(ARGUMENT, min_size=1, max_size=5))
def test_rendering_keeps_any_argument_verbatim(arguments: list[str]) -> None:
    """Arguments with control or bidi characters are shown as $'...' (never raw), and
    bash reads them back exactly."""
    plan = system_plan(argv=["/bin/echo", *arguments])
    line = systemd_run_command(plan)
    assert not any(needs_escape(char) for char in line)
    rendered = bash_words(line)
    assert rendered[rendered.index("--") + 1 :] == ["/bin/echo", *arguments]


def test_identity_cannot_be_set_with_p() -> None:
    with pytest.raises(UsageError, match="identity comes from -u"):
        parse_assignments(["User=root"])


def test_assignment_keeps_its_text() -> None:
    assignment = Assignment.parse("Environment=A=1")
    assert assignment.text == "Environment=A=1" and assignment.name == "Environment"


def test_random_unit_name() -> None:
    assert service_unit_name(None, random_token=lambda: "abc123") == "runas-podman-abc123.service"


@pytest.mark.parametrize(
    ("requested", "name"), [("web", "web.service"), ("a-b@c.service", "a-b@c.service")]
)
def test_requested_unit_name(requested: str, name: str) -> None:
    assert service_unit_name(requested) == name


@pytest.mark.parametrize(
    "requested",
    ["web.scope", "bad/name", "sp ace", ".service", "x" * 300, "a@.service", "@x.service", "-a"],
)
def test_bad_unit_names(requested: str) -> None:
    with pytest.raises(UsageError, match="--unit"):
        service_unit_name(requested)


def test_lifeline_unit_name() -> None:
    assert lifeline_unit_name("runas-podman-ab.service") == "runas-podman-ab-lifeline.service"


def test_setenv() -> None:
    assert parse_setenv(["A=1", "B", "C="], {"B": "from caller"}) == (
        ("A", "1"), ("B", "from caller"), ("C", ""),
    )  # fmt: skip
    with pytest.raises(UsageError, match="not set in your environment"):
        parse_setenv(["MISSING"], {})
    with pytest.raises(UsageError, match="not a valid variable name"):
        parse_setenv(["1X=2"], {})


def test_resolve_executable_uses_the_fixed_search_path() -> None:
    present = {"/usr/bin/podman", "/opt/x"}
    assert resolve_executable("podman", present.__contains__) == "/usr/bin/podman"
    assert resolve_executable("/opt/x", present.__contains__) == "/opt/x"
    assert resolve_executable("missing", present.__contains__) is None
    assert resolve_executable("./podman", present.__contains__) is None


@pytest.mark.parametrize(
    ("unit", "path"),
    [
        ("runas-podman-ab.service", "runas_2dpodman_2dab_2eservice"),
        ("user@1000.service", "user_401000_2eservice"),
        ("1x.service", "_31x_2eservice"),
    ],
)
def test_unit_object_path(unit: str, path: str) -> None:
    assert unit_object_path(unit) == f"/org/freedesktop/systemd1/unit/{path}"


@given(st.text(min_size=1, max_size=30))
def test_unit_object_path_is_a_valid_object_path(unit: str) -> None:
    assert re.fullmatch(r"(/[A-Za-z0-9_]+)+", unit_object_path(unit))


# --- secret fds ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/etc/secretfile", OpenFile("/etc/secretfile", "secretfile")),
        ("/etc/secretfile:db", OpenFile("/etc/secretfile", "db")),
        ("/etc/s::graceful", OpenFile("/etc/s", "s", ("graceful",))),
        ("/a:n:read-only,append", OpenFile("/a", "n", ("read-only", "append"))),
        ("/odd\\x3aname:n", OpenFile("/odd:name", "n")),
        ("/back\\\\slash", OpenFile("/back\\slash", "back\\slash")),
    ],
)
def test_parse_open_file(text: str, expected: OpenFile) -> None:
    assert parse_open_file(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("relative", "must be absolute"),
        ("/a:b:c:d", "PATH[:NAME[:FLAGS]]"),
        ("/a:n:bogus", "unknown flag 'bogus'"),
        ("/a:n\u00e9", "fd name"),
        ("/a\\q", "as OpenFile= does"),
    ],
)
def test_parse_open_file_errors(text: str, fragment: str) -> None:
    with pytest.raises(UsageError, match=re.escape(fragment)):
        parse_open_file(text)


@given(
    st.text(
        alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
        min_size=1,
        max_size=20,
    )
)
def test_open_file_escaping_round_trips(name: str) -> None:
    path = "/x/" + name
    spec = OpenFile(path, "n", ("graceful",))
    assert parse_open_file(spec.assignment) == spec


def test_open_file_flag_bits() -> None:
    assert OpenFile("/a", "a", ("read-only", "graceful")).flag_bits == 9


def test_parse_pass_fd() -> None:
    assert parse_pass_fd("3") == PassFd(3, "fd3")
    assert parse_pass_fd("4:db") == PassFd(4, "db")
    for bad in ("2", "x", "-1", "3:a\tb", "3:\u00e9"):
        with pytest.raises(UsageError):
            parse_pass_fd(bad)


def test_fds_in_plan_properties_rendering_and_order() -> None:
    plan = system_plan(
        open_files=[OpenFile("/etc/a:b", "first", ("read-only",))],
        pass_fds=[PassFd(3, "piped")],
    )
    properties = {p.name: p for p in service_properties(plan, Session())}
    assert properties["OpenFile"] == UnitProperty("OpenFile", "a(sst)", [["/etc/a:b", "first", 1]])
    assert "--property=OpenFile=/etc/a\\x3ab:first:read-only" in systemd_run_argv(plan)
    # systemd gives ExtraFileDescriptors the first fds, then OpenFile= ones.
    assert plan.fd_names == ("piped", "first")
    assert systemd_run_command(plan).endswith(
        "# without --pass-fd 3:piped: systemd-run cannot pass fds"
    )
    assert plan.required_systemd() == [
        ("--open-file (OpenFile=)", 253), ("--pass-fd (ExtraFileDescriptors)", 257),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["run", "--rm", "img", "cat"],
            ["run", "--env", "LISTEN_FDNAMES=a:b", "--rm", "img", "cat"],
        ),
        (
            ["container", "create", "img"],
            ["container", "create", "--env", "LISTEN_FDNAMES=a:b", "img"],
        ),
        (["ps"], ["ps"]),
        (["container", "ls"], ["container", "ls"]),
    ],
)
def test_inject_fd_names(args: list[str], expected: list[str]) -> None:
    assert inject_fd_names(args, ["a", "b"]) == expected
    assert inject_fd_names(args, []) == args


def test_parse_systemd_version() -> None:
    assert parse_systemd_version("257.13-1~deb13u1") == 257
    assert parse_systemd_version("252") == 252
    assert parse_systemd_version("v259-rc1") == 259
    assert parse_systemd_version("") == 0


def test_secret_fds_go_through_the_relay_where_the_manager_lacks_the_properties() -> None:
    from runas_podman.core.properties import Relay, needs_relay

    plan = system_plan(pass_fds=[PassFd(3, "x")], open_files=[OpenFile("/a", "a")])
    assert not needs_relay(plan, 257) and not needs_relay(plan, None)
    assert needs_relay(plan, 256) and needs_relay(plan, 252)
    assert not needs_relay(system_plan(open_files=[OpenFile("/a", "a")]), 253)
    session = Session(relay=Relay("/usr/bin/python3", "/opt/fdrelay.py", 7))
    props = {p.name: p.value for p in service_properties(plan, session)}
    assert "OpenFile" not in props and "ExtraFileDescriptors" not in props
    assert props["StandardInputFileDescriptor"] == 7
    assert props["ExecStartEx"] == [[
        "/usr/bin/python3",
        ["/usr/bin/python3", "-I", "-S", "/opt/fdrelay.py", "--", *plan.argv],
        ["no-env-expand"],
    ]]  # fmt: skip
    with pytest.raises(UsageError, match="cannot be written as a systemd-run line"):
        systemd_run_command(plan, 252)


def test_bytes_that_are_not_utf8_are_refused_with_a_name() -> None:
    with pytest.raises(UsageError, match=r"argument 1 '\\xff\\xfe' is not valid UTF-8"):
        build_service_plan(
            user=TEST_USER, argv=["/usr/bin/true", "\udcff\udcfe"], manager=Manager.SYSTEM,
            unit="u.service",
        )  # fmt: skip
    with pytest.raises(UsageError, match="environment variable GREETING"):
        build_service_plan(
            user=TEST_USER, argv=["/usr/bin/true"], manager=Manager.SYSTEM, unit="u.service",
            environment=[("GREETING", "h\udce9")],
        )  # fmt: skip


@pytest.mark.parametrize("value", ["\uff15", "1_000", "\u0661\u0662", "+-1", "1 0"])
def test_numbers_are_ascii_digits_only(value: str) -> None:
    with pytest.raises(UsageError):
        parse_assignments([f"CPUWeight={value}"])
    with pytest.raises(UsageError):
        parse_assignments([f"Nice={value}"])


HOSTILE = "x\n[Service]\nExecStopPost=/bin/sh -c 'id > /tmp/pwned'"


def test_the_gate_refuses_a_line_break_in_what_systemd_writes_raw() -> None:
    """Finding 1 of the audit: Description=, WorkingDirectory=, TTYPath= (and any string
    systemd writes unescaped) gained lines in the transient unit file."""
    with pytest.raises(UsageError, match=r"^the description 'x\\n\[Service\]"):
        system_plan(description=HOSTILE)
    with pytest.raises(UsageError, match=r"^WorkingDirectory= '/tmp/w\\n"):
        system_plan(assignments=parse_assignments(["WorkingDirectory=/tmp/w\n[Service]"]))
    with pytest.raises(UsageError, match=r"^SyslogIdentifier= 'a\\rb'"):
        system_plan(assignments=parse_assignments(["SyslogIdentifier=a\rb"]))
    with pytest.raises(UsageError, match="contains a control character"):
        system_plan(description="C1 \x85 next line")
    session = Session(tty_path="/dev/pts/1\n[Service]")
    with pytest.raises(UsageError, match=r"TTYPath= '/dev/pts/1\\n\[Service\]'"):
        start_call(system_plan(), session)


def test_what_systemd_escapes_itself_passes_and_the_default_description_is_escaped() -> None:
    plan = system_plan(
        argv=["/bin/sh", "-c", f"sleep 9{HOSTILE}"], environment=[("GREETING", "a\nb")]
    )
    assert plan.description == (
        "runas-podman: /bin/sh -c $'sleep 9x\\n[Service]\\nExecStopPost=/bin/sh -c \\'id > "
        "/tmp/pwned\\''"
    )
    start_call(plan, Session())  # the argv and Environment= are C-escaped by systemd


def test_a_repeated_setenv_keeps_the_last_value_as_systemd_run() -> None:
    """TEST-74: -E ENV_HELLO=nope -E 'ENV_HELLO=env world' gives 'env world'; systemd
    refuses an Environment= block naming a variable twice."""
    environment = parse_setenv(["ENV_HELLO=nope", "OTHER=1", "ENV_HELLO=env world"], {})
    assert environment == (("ENV_HELLO", "env world"), ("OTHER", "1"))
    plan = system_plan(environment=parse_setenv(["XDG_RUNTIME_DIR=/elsewhere"], {}))
    assert plan.environment == (("XDG_RUNTIME_DIR", "/elsewhere"),)


def test_slice_names_as_systemd_run() -> None:
    assert slice_unit_name("foo") == "foo.slice"
    assert slice_unit_name("foo.slice") == "foo.slice"
    assert slice_unit_name("foo.bar") == "foo.bar.slice"  # not a unit type: a bare name
    with pytest.raises(UsageError, match=r"--slice 'foo.service' is not a slice"):
        slice_unit_name("foo.service")


def test_group_for_the_system_manager_only() -> None:
    plan = system_plan(group="root")
    assert "Group=root" in [a.text for a in plan.assignments]
    with pytest.raises(UsageError, match="-g/--group needs the system manager"):
        system_plan(group="root", manager=Manager.USER)


def test_the_gate_knows_command_lines_by_their_signature_not_their_name() -> None:
    """ExecSearchPath= and ExecPaths= start with Exec but are written raw (audit review)."""
    for name in ("ExecSearchPath", "ExecPaths"):
        text = f'{name}="/x\n[Service]\nExecStopPost=/bin/touch /tmp/pwned\nX-A="'
        with pytest.raises(UsageError, match="contains a control character"):
            system_plan(assignments=parse_assignments([text]))
    system_plan(assignments=parse_assignments(['ExecStartPre=/bin/echo "a\\nb"']))


def test_one_validator_per_kind_of_name_as_systemd() -> None:
    """--unit and -p Slice= agree (unit_name_is_valid), --open-file/--pass-fd and
    OpenFile= agree (fdname_is_valid, which allows a space, as systemd's)."""
    from runas_podman.core.unit import fdname_is_valid, unit_name_is_valid

    for name in ("a@.service", "@x.service"):
        assert not unit_name_is_valid(name)
        with pytest.raises(UsageError):
            service_unit_name(name)
    assert fdname_is_valid("a b") and parse_pass_fd("3:a b") == PassFd(3, "a b")
    assert parse_open_file("/a:two words").name == "two words"
