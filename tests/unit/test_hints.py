"""Hints name the host's own package manager and packages."""

from __future__ import annotations

import pytest

from runas_podman.host import hints


@pytest.mark.parametrize(
    ("family", "expected"),
    [
        ("debian", "apt-get install podman uidmap"),
        ("fedora", "dnf install podman shadow-utils"),
        ("suse", "zypper install podman shadow"),
        ("arch", "pacman -S podman shadow"),
        (None, "install podman uidmap with your package manager"),
    ],
)
def test_install_hint_per_family(
    monkeypatch: pytest.MonkeyPatch, family: str | None, expected: str
) -> None:
    monkeypatch.setattr(hints, "distribution_family", lambda: family)
    assert hints.install_hint("podman", "uidmap") == expected


def test_this_host_is_recognised() -> None:
    hints.distribution_family.cache_clear()
    assert hints.distribution_family() == "debian"  # the project's machines run Debian


def test_no_bus_names_a_pid_1_that_is_not_systemd() -> None:
    with open("/proc/1/comm") as comm:
        init = comm.read().strip()
    reason = hints.no_bus_reason()
    if init == "systemd":
        assert reason == "is dbus running? (systemctl status dbus.socket)"
    else:  # this project's machines and CI: PID 1 is not systemd
        assert reason.startswith(f"systemd is not running as PID 1 here (PID 1 is {init})")
