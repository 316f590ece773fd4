"""Hints that fit the host: its package manager and package names, and why a bus is
missing. Read from /etc/os-release once; nothing here changes anything."""

from __future__ import annotations

import functools
import os

# Debian's package names, and what other families call them (None: part of the base).
PACKAGES: dict[str, dict[str, str | None]] = {
    "dbus-user-session": {"fedora": "dbus-daemon", "suse": "dbus-1", "arch": None},
    "polkitd": {"fedora": "polkit", "suse": "polkit", "arch": "polkit"},
    "uidmap": {"fedora": "shadow-utils", "suse": "shadow", "arch": "shadow"},
    "systemd-container": {"arch": None, "suse": "systemd-container"},
    "coreutils": {},
    "podman": {},
    "systemd": {},
}
COMMANDS = {
    "debian": "apt-get install",
    "fedora": "dnf install",
    "suse": "zypper install",
    "arch": "pacman -S",
}


@functools.cache
def distribution_family() -> str | None:
    """debian, fedora, suse or arch, from /etc/os-release's ID and ID_LIKE; else None."""
    from runas_podman.host.hostfiles import parse_os_release

    for path in ("/etc/os-release", "/usr/lib/os-release"):
        try:
            with open(path) as release:
                fields = parse_os_release(release.read())
        except OSError:
            continue
        names = [fields.get("ID", ""), *fields.get("ID_LIKE", "").split()]
        for name in names:
            for family, members in (
                ("debian", ("debian", "ubuntu")),
                ("fedora", ("fedora", "rhel", "centos", "rocky", "almalinux")),
                ("suse", ("suse", "opensuse", "sles", "sled", "opensuse-leap")),
                ("arch", ("arch",)),
            ):
                if name in members or name.startswith(members):
                    return family
        return None
    return None


def install_hint(*debian_names: str) -> str:
    """The command that installs these packages here, e.g. `dnf install podman polkit`."""
    family = distribution_family()
    if family is None:
        return f"install {' '.join(debian_names)} with your package manager"
    names = [
        PACKAGES.get(name, {}).get(family, name) if family != "debian" else name
        for name in debian_names
    ]
    present = [name for name in names if name]
    return f"{COMMANDS[family]} {' '.join(present)}" if present else "reinstall systemd"


def no_bus_reason() -> str:
    """Why the system bus may be missing: no systemd as PID 1, or dbus not running."""
    try:
        with open("/proc/1/comm") as comm:
            init = comm.read().strip()
    except OSError:
        init = ""
    if init and init != "systemd":
        return (
            f"systemd is not running as PID 1 here (PID 1 is {init}): runas-podman starts "
            "units through systemd, so it needs a systemd host"
        )
    if not os.path.exists("/run/dbus/system_bus_socket"):
        return "is dbus running? (systemctl status dbus.socket)"
    return "is dbus running? (systemctl status dbus.socket)"
