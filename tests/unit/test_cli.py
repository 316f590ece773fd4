"""The Click layer on the host: no bus needed for these."""

from __future__ import annotations

import subprocess
import sys

import pytest

from runas_podman import __version__
from runas_podman.core.model import Manager, Via, choose_manager


def runas_podman(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runas_podman", *args], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("via", "caller", "user", "chosen"),
    [("auto", 0, 1000, "system"), ("auto", 1000, 1000, "user"), ("auto", 1001, 1000, "system"),
     ("auto", 0, 0, "system"), ("user", 0, 1000, "user"), ("system", 1000, 1000, "system")],
)  # fmt: skip
def test_via_auto_rule(via: str, caller: int, user: int, chosen: str) -> None:
    assert choose_manager(Via(via), caller, user) is Manager(chosen)


def test_version_and_help_without_a_bus() -> None:
    assert runas_podman("--version").stdout.startswith("runas-podman, version ")
    helped = runas_podman("exec", "--help")
    assert helped.returncode == 0 and "--open-file" in helped.stdout


@pytest.mark.parametrize("module", ["runas_podman.cli.runas_podman", "runas_podman.cli.runas"])
def test_version_imports_nothing_heavy(module: str) -> None:
    probe = (
        f"import sys, {module}; "
        "print(sorted(m for m in ('dbus_next', 'podman', 'pam', 'asyncio') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(("entry", "prog"), [("runas_podman", "runas-podman"), ("runas", "runas")])
def test_version_entry_imports_not_even_click(entry: str, prog: str) -> None:
    """The console scripts answer --version before the Click layer is imported."""
    probe = (
        "import atexit, sys; sys.argv[1:] = ['--version']; atexit.register(lambda: print("
        "sorted(m for m in ('click', 'dbus_next', 'asyncio', 'runas_podman.cli.runas_podman', "
        f"'runas_podman.cli.runas') if m in sys.modules))); from runas_podman import entry; "
        f"entry.{entry}()"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode == 0
    assert result.stdout == f"{prog}, version {__version__}\n[]\n"


def test_version_entry_says_what_click_says() -> None:
    fast = subprocess.run([sys.executable, "-m", "runas_podman", "--version"],
                          capture_output=True, text=True)  # fmt: skip
    probe = (
        "from runas_podman.cli.runas_podman import main; import sys; "
        "sys.argv[1:] = ['--version']; main()"
    )
    slow = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert (fast.returncode, fast.stdout, fast.stderr) == (0, slow.stdout, "")
    assert slow.returncode == 0


def test_a_launch_without_p_does_not_load_the_property_table() -> None:
    """unitprops (~380 settings) is loaded for -p text only: a plain plan makes its
    settings typed (each held equal to its parse by tests/unit/conftest.py)."""
    probe = (
        "import sys; from runas_podman.core.model import Manager, ServiceUser; "
        "from runas_podman.core.plan import build_service_plan, podman_plan; "
        "user = ServiceUser('test', 1000, 1000, 'test', '/home/test'); "
        "plan = build_service_plan(user=user, argv=['/usr/bin/podman', 'run', '--rm', 'i'], "
        "manager=Manager.SYSTEM, unit='u.service'); podman_plan(plan); "
        "print('runas_podman.core.unitprops' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.stdout == "False\n", result.stderr


def test_usage_error_is_one_line_with_status_2() -> None:
    result = runas_podman("exec", "-u", "root", "-p", "Nope=1", "--", "true")
    assert result.returncode == 2
    assert result.stderr == (
        "runas-podman: unknown property 'Nope': list them with runas-podman properties\n"
    )


def test_unknown_option_is_one_line() -> None:
    result = runas_podman("exec", "--bogus")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "No such option '--bogus'" in result.stderr


def test_dry_run_needs_no_bus() -> None:
    result = runas_podman("exec", "-u", "root", "--dry-run", "--", "true")
    assert result.returncode == 0
    assert result.stdout.startswith("systemd-run --unit=runas-podman-")
    assert "--property=User=root" in result.stdout


def test_pass_fd_with_systemd_run_backend_is_refused() -> None:
    result = runas_podman("exec", "-u", "root", "--backend", "systemd-run", "--pass-fd", "3", "--",
                          "true")  # fmt: skip
    assert result.returncode == 2 and "--pass-fd needs --backend dbus" in result.stderr


def test_pty_late_is_the_pty() -> None:
    for flag in ("-T", "--pty-late", "-t"):
        result = runas_podman("exec", "-u", "root", flag, "--dry-run", "--", "true")
        assert result.returncode == 0 and " --wait --pty " in result.stdout, result.stderr


def test_runas_takes_run0s_short_version_option() -> None:
    result = subprocess.run([sys.executable, "-c", "import sys; sys.argv[0] = 'runas'; "
                             "from runas_podman.entry import runas; runas()", "-V"],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert (result.returncode, result.stdout) == (0, f"runas, version {__version__}\n")
