"""The Click layer on the host: no bus needed for these."""

from __future__ import annotations

import subprocess
import sys

import pytest

from runas_podman.cli import choose_manager


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
    assert choose_manager(via, caller, user) == chosen


def test_version_and_help_without_a_bus() -> None:
    assert runas_podman("--version").stdout.startswith("runas-podman, version ")
    helped = runas_podman("exec", "--help")
    assert helped.returncode == 0 and "--open-file" in helped.stdout


@pytest.mark.parametrize("module", ["runas_podman.cli", "runas_podman.runas_cli"])
def test_version_imports_nothing_heavy(module: str) -> None:
    probe = (
        f"import sys, {module}; "
        "print(sorted(m for m in ('dbus_next', 'podman', 'pam', 'asyncio') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.stdout.strip() == "[]"


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
