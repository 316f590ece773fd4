"""runas-podman installed on a host the way docs/install.md says: a wheel built from this
checkout, a root-owned venv, `runas-podman install`; then its man pages and its shell
completion as an administrator meets them, and `runas-podman uninstall`.

The testbed is shared with the other tests: the wheel goes into its own venv
(/opt/runas-podman-wheel, beside the testbed's /opt/runas-podman/venv), and after
uninstall (which also removes the PAM file and broker units the testbed's own
install-pam/install-broker recorded) those are put back.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.testbed.testbed import REPO, Testbed

VENV = "/opt/runas-podman-wheel"
BIN = f"{VENV}/bin/runas-podman"
MAN1 = "/usr/local/share/man/man1"
BASH_COMPLETION = "/usr/local/share/bash-completion/completions/runas-podman"
PATH = f"{VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def sh(tb: Testbed, script: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return tb.run(["bash", "-c", script], **kwargs)  # type: ignore[arg-type]


def build_wheel(directory: str) -> Path:
    """The README's build: pip wheel of the checkout, with build isolation (so with the
    build requirements of pyproject.toml, click-man included)."""
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", directory, str(REPO)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (wheel,) = Path(directory).glob("runas_podman-*-py3-none-any.whl")
    return wheel


@pytest.fixture(scope="module")
def installed(testbed: Testbed) -> Iterator[Testbed]:
    """The wheel installed into its own venv in the testbed (dependencies from the
    testbed's wheelhouse: no index is reachable from inside), then `runas-podman install`."""
    tb = testbed
    with tempfile.TemporaryDirectory(prefix="runas-podman-wheel-") as directory:
        wheel = build_wheel(directory)
        inside = Path("/var/tmp/runas-podman-wheel") / wheel.name
        staged = tb.tree / inside.relative_to("/")
        staged.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(wheel, staged)
    result = sh(
        tb,
        f"rm -rf {VENV} && python3 -m venv {VENV} && {VENV}/bin/pip install --quiet "
        f"--no-index --find-links /opt/wheelhouse {inside}",
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    yield tb
    # Leave the testbed as the other tests expect it: nothing of this venv, and the PAM
    # file and broker of the testbed's own venv.
    tb.run([BIN, "uninstall", "--force"])
    sh(tb, f"rm -rf {VENV} {inside.parent}")
    tb.install_services()


def test_the_wheel_carries_the_man_pages(installed: Testbed) -> None:
    probe = (
        "from importlib.resources import files; "
        "print(*sorted(p.name for p in files('runas_podman').joinpath('data/man/man1').iterdir()))"
    )
    pages = installed.check([f"{VENV}/bin/python", "-c", probe]).stdout.split()
    assert {"runas.1", "runas-podman.1", "runas-podman-exec.1", "runas-podman-podman.1"} <= set(
        pages
    )
    assert "runas-podman-quadlet-install.1" in pages


def test_install_dry_run_then_install_then_up_to_date(installed: Testbed) -> None:
    tb = installed
    tb.run(["rm", "-f", f"{MAN1}/runas.1", f"{MAN1}/runas-podman-exec.1"])
    dry = tb.run([BIN, "install", "--dry-run"])
    assert dry.returncode == 0, dry.stderr
    assert f"would install {MAN1}/runas.1" in dry.stdout.splitlines()
    assert dry.stdout.splitlines()[-1] == "dry run: nothing changed"
    assert tb.run(["test", "-e", f"{MAN1}/runas.1"]).returncode == 1
    first = tb.run([BIN, "install"])
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert lines[0].startswith("up to date /etc/pam.d/runas (Debian stack")  # install-pam's
    assert f"installed {MAN1}/runas.1" in lines
    assert f"installed {MAN1}/runas-podman-exec.1" in lines
    assert f"installed {BASH_COMPLETION}" in lines
    again = tb.run([BIN, "install"])
    assert again.returncode == 0
    assert all(line.startswith("up to date ") for line in again.stdout.splitlines())
    manifest = tb.check(["cat", "/var/lib/runas-podman/installed"]).stdout
    assert f" {MAN1}/runas.1\n" in manifest


def test_broker_dry_run_checks_the_venv_and_would_update_the_units(installed: Testbed) -> None:
    result = installed.run([BIN, "install", "--broker", "--dry-run"])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    # The testbed's install-broker wrote them for its own venv's python: ours would differ.
    assert "would update /etc/systemd/system/runas-broker@.service" in lines
    assert "would enable and start runas-broker.socket" in lines


def page_name_section(text: str) -> str:
    """The NAME line of a man page, as apropos reads it."""
    lines = text.splitlines()
    return lines[lines.index(".SH NAME") + 1].replace("\\-", "-")


@pytest.mark.parametrize(
    ("page", "name"),
    [("runas", "runas - "), ("runas-podman-exec", "runas-podman-exec - Run COMMAND as USER")],
)
def test_man_pages_render(installed: Testbed, page: str, name: str) -> None:
    tb = installed
    assert tb.run([BIN, "install"]).returncode == 0
    path = f"{MAN1}/{page}.1"
    shown = tb.run(["man", "-P", "cat", page], env={"MANWIDTH": "80"})  # man-db in the recipe
    assert shown.returncode == 0, shown.stderr
    assert re.search(r"^NAME\n\s+" + re.escape(name), shown.stdout, re.MULTILINE), shown.stdout
    text = tb.check(["cat", path]).stdout
    assert text.startswith(f'.TH "{page.upper()}" "1" ')
    assert page_name_section(text).startswith(name)


def completions(tb: Testbed, line: str) -> list[str]:
    """Click's bash protocol, as the installed script speaks it: COMP_WORDS/COMP_CWORD."""
    words = line.split(" ")
    result = tb.run(
        [BIN],
        env={
            "COMP_WORDS": line,
            "COMP_CWORD": str(len(words) - 1),
            "_RUNAS_PODMAN_COMPLETE": "bash_complete",
        },
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr
    return [entry.split(",", 1)[1] for entry in result.stdout.splitlines() if "," in entry]


@pytest.mark.parametrize("command", ["exec", "podman", "doctor", "quadlet start"])
def test_user_completion_lists_the_service_user_first(installed: Testbed, command: str) -> None:
    offered = completions(installed, f"runas-podman {command} -u ")
    assert offered[:1] == ["test"], offered  # linger and subuids: a service user
    assert "alice" in offered and "root" not in offered


def test_subcommand_and_property_completion(installed: Testbed) -> None:
    assert {"exec", "install", "uninstall", "quadlet"} <= set(
        completions(installed, "runas-podman ")
    )
    assert "MemoryMax=" in completions(installed, "runas-podman exec -u test -p Memory")


def test_the_installed_bash_script_completes_in_bash(installed: Testbed) -> None:
    tb = installed
    assert tb.run([BIN, "install"]).returncode == 0
    script = (
        f"source {BASH_COMPLETION}; complete -p runas-podman; "
        'COMP_WORDS=(runas-podman doctor -u ""); COMP_CWORD=3; '
        '_runas_podman_completion runas-podman; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    result = tb.run(["bash", "-c", script], env={"PATH": PATH})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "complete -o nosort -F _runas_podman_completion runas-podman"
    assert lines[1] == "test"


def test_tab_in_an_interactive_bash(installed: Testbed) -> None:
    """A person at a terminal: bash in tmux, the installed script loaded, TAB pressed."""
    tb = installed
    assert tb.run([BIN, "install"]).returncode == 0
    tb.run(["sh", "-c", "tmux kill-session -t rpc 2>/dev/null"])
    start = tb.run(
        ["tmux", "new-session", "-d", "-s", "rpc", "-x", "120", "-y", "30",
         f"env PATH={PATH} bash --norc --noprofile -i"],
    )  # fmt: skip
    assert start.returncode == 0, start.stderr
    try:
        tb.run(["tmux", "send-keys", "-t", "rpc", f"source {BASH_COMPLETION}; clear", "Enter"])
        time.sleep(0.5)
        tb.run(["tmux", "send-keys", "-t", "rpc", "runas-podman doct", "Tab"])
        wait_for(tb, "runas-podman doctor")  # (capture-pane drops trailing blanks)
        tb.run(["tmux", "send-keys", "-t", "rpc", " -u te", "Tab"])
        wait_for(tb, "runas-podman doctor  -u test")
    finally:
        tb.run(["tmux", "kill-session", "-t", "rpc"])


def wait_for(tb: Testbed, text: str, timeout: float = 15) -> str:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = tb.run(["tmux", "capture-pane", "-t", "rpc", "-p"]).stdout
        if text in screen:
            return screen
        time.sleep(0.1)
    raise AssertionError(f"{text!r} did not appear; the screen:\n{screen}")


def test_uninstall_removes_exactly_what_install_wrote(installed: Testbed) -> None:
    tb = installed
    assert tb.run([BIN, "install"]).returncode == 0
    listed = tb.check(["cat", "/var/lib/runas-podman/installed"]).stdout.splitlines()
    written = {line.split(" ", 2)[2] for line in listed if not line.startswith("#")}
    assert "/etc/pam.d/runas" in written and f"{MAN1}/runas.1" in written
    # (Other tests install elsewhere too, e.g. install-pam --dest /root/runas.pam.)
    roots = {"/usr/local", "/etc/pam.d", "/etc/systemd/system", "/var/lib/runas-podman"}
    roots |= {os.path.dirname(path) for path in written}
    find = f"find {' '.join(sorted(roots))} 2>/dev/null | sort -u"
    before = set(tb.check(["sh", "-c", find]).stdout.splitlines())
    dry = tb.run([BIN, "uninstall", "--dry-run"])
    assert dry.returncode == 0, dry.stderr
    assert f"would remove {MAN1}/runas.1" in dry.stdout.splitlines()
    assert set(tb.check(["sh", "-c", find]).stdout.splitlines()) == before
    result = tb.run([BIN, "uninstall"])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == [
        "stopped and disabled runas-podman-launch.socket",  # install's own, then the
        "stopped and disabled runas-broker.socket",  # testbed's broker
    ]
    assert "removed /etc/pam.d/runas" in lines and f"removed {MAN1}/runas.1" in lines
    after = set(tb.run(["sh", "-c", find]).stdout.splitlines())
    assert after <= before
    # /var/lib/runas-podman goes if install created it (a "dir" line in `written`) and it
    # is empty: setup's records of service users (service-users/) keep it, and stay.
    records = tb.run(["test", "-d", "/var/lib/runas-podman/service-users"]).returncode == 0
    if records:
        written = written - {"/var/lib/runas-podman"}
    assert before - after == written | {
        "/var/lib/runas-podman/installed",
        "/etc/systemd/system/sockets.target.wants/runas-broker.socket",  # (disabled)
        "/etc/systemd/system/sockets.target.wants/runas-podman-launch.socket",
    }
    assert tb.run(["systemctl", "is-active", "runas-broker.socket"]).stdout.strip() != "active"
    launch = tb.run(["systemctl", "is-active", "runas-podman-launch.socket"]).stdout.strip()
    assert launch != "active"
