"""Reading `podman run` command lines: foreground or not, --rm, where options start."""

from __future__ import annotations

import shlex

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runas_podman.core.model import Assignment, Container
from runas_podman.core.plan import container_cleanup, exec_assignment
from runas_podman.core.podman_args import ForegroundRun, foreground_run


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("run --rm img sleep 1", ForegroundRun(1, True)),
        ("run img ls -d /", ForegroundRun(1, False)),  # -d after the image is the command's
        ("container run -it --rm=false img sh", ForegroundRun(2, False)),
        ("run -e A=1 -v /a:/b --name x --rm img", ForegroundRun(1, True)),
        ("run -eA=1 --network=none -it img", ForegroundRun(1, False)),
        ("run --rm -- img", ForegroundRun(1, True)),
        ("run --detach=false img", ForegroundRun(1, False)),
    ],
)
def test_foreground_runs(line: str, expected: ForegroundRun) -> None:
    assert foreground_run(shlex.split(line)) == expected


@pytest.mark.parametrize(
    "line",
    [
        "run -d img sleep 9",
        "run -dit img sh",
        "run --detach --rm img",
        "run --cidfile /x img",  # the caller's own cidfile: the caller's to clean up
        "run --some-future-option img",  # unknown: do not guess where the image is
        "run -Z img",
        "create img",
        "ps -a",
        "",
    ],
)
def test_not_foreground_runs(line: str) -> None:
    assert foreground_run(shlex.split(line)) is None


def test_exec_assignment_both_ways() -> None:
    assignment = exec_assignment("ExecStop", ["/bin/sh", "-c", 'echo "$X" \\ok'], ["no-env-expand"])
    assert assignment.text == 'ExecStop=:/bin/sh "-c" "echo \\"$X\\" \\\\ok"'
    (prop,) = assignment.properties
    assert (prop.name, prop.signature) == ("ExecStopEx", "a(sasas)")
    assert prop.value == [["/bin/sh", ["/bin/sh", "-c", 'echo "$X" \\ok'], ["no-env-expand"]]]


EXEC_FLAG_SETS = [(), ("ignore-failure",), ("no-env-expand",), ("ignore-failure", "no-env-expand")]


@given(
    st.sampled_from(["/bin/sh", "/usr/bin/podman", "/opt/a b/x", "/usr/bin/it's", "relative"]),
    st.lists(st.text(max_size=12), max_size=4),
    st.sampled_from(EXEC_FLAG_SETS),
)
def test_exec_assignment_is_what_its_text_parses_to(
    path: str, args: list[str], flags: tuple[str, ...]
) -> None:
    """exec_assignment makes the property directly: the same as parsing its text with -p's
    parser (or the same refusal)."""
    try:
        made = exec_assignment("ExecStopPost", [path, *args], flags)
    except Exception as error:  # compared with the parser's own refusal
        made_error: Exception | None = error
    else:
        made_error = None
    text = made.text if made_error is None else None
    if text is None:
        prefix = "-" * ("ignore-failure" in flags) + ":" * ("no-env-expand" in flags)
        quoted = ['"' + a.replace("\\", "\\\\").replace('"', '\\"') + '"' for a in args]
        text = f"ExecStopPost={prefix}{path} {' '.join(quoted)}".rstrip()
    try:
        parsed = Assignment.parse(text)
    except Exception as error:
        assert made_error is not None and str(made_error) == str(error)
    else:
        assert made_error is None and made == parsed


def test_container_cleanup_stops_or_removes() -> None:
    stop, post = container_cleanup(Container("/usr/bin/podman", "/run/user/1000/u.cid", True))
    assert stop.text.startswith("ExecStop=-:/bin/sh ")
    assert "stop --ignore --cidfile /run/user/1000/u.cid" in stop.text
    assert "rm -f --ignore --cidfile /run/user/1000/u.cid" in post.text
    _, kept = container_cleanup(Container("/usr/bin/podman", "/run/user/1000/u.cid", False))
    assert "podman stop --ignore" in kept.text and "rm -f --ignore" not in kept.text


def test_container_cleanup_for_each_manager() -> None:
    """From 254 on `$MAINPID` tells a running podman (one shell, no process more); before,
    no ';', '$' or '"', which 252 reads back changed from its transient unit file."""
    container = Container("/usr/bin/podman", "/run/user/1000/u.cid", True)
    for version, dollar in ((None, True), (262, True), (254, True), (252, False)):
        for assignment in container_cleanup(container, version):
            ((_path, argv, _flags),) = assignment.properties[0].value  # type: ignore[misc]
            if version is not None and version < 254:
                assert not set(argv[2]) & set(';$"'), argv[2]
            if assignment.name == "ExecStop":
                assert ('"$MAINPID"' in argv[2]) is dollar, (version, argv[2])
