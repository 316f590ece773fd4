"""`runas-podman doctor`: what stands between a service user and rootless podman.

One check per line, ok/warn/fail, each failure with the command that fixes it. These
are the problems people hit every day running rootless podman as another user: no
subordinate ids, no lingering, no user manager or user bus, XDG_RUNTIME_DIR missing.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import stat
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from runas_podman.core.elevate import PAM_FILE
from runas_podman.core.errors import BusCallError, RunasError
from runas_podman.core.model import (
    EXTRA_FDS_SINCE,
    OPEN_FILE_SINCE,
    ServiceUser,
    parse_systemd_version,
)
from runas_podman.host.hints import install_hint
from runas_podman.host.lookup import is_executable_file, resolve_executable

RUN0_SINCE = 256
# Where a user manager's units come from (the package's dbus.socket among them).
USER_UNIT_DIRS = ("/usr/lib/systemd/user", "/lib/systemd/user", "/etc/systemd/user")
MIN_SYSTEMD = 252
SELINUX_MODULE = "runas_podman"


@dataclass(frozen=True)
class Check:
    check: str
    status: str  # ok, warn, fail
    detail: str
    fix: str = ""


def render_text(checks: Sequence[Check]) -> str:
    lines = []
    for c in checks:
        line = f"{c.status:<4} {c.check}: {c.detail}"
        if c.fix and c.status != "ok":
            line += f" -> {c.fix}"
        lines.append(line)
    return "\n".join(lines)


def render_json(checks: Sequence[Check]) -> str:
    return json.dumps([asdict(c) for c in checks], indent=2)


def failed(checks: Sequence[Check]) -> bool:
    return any(c.status == "fail" for c in checks)


def run_checks(name: str) -> list[Check]:
    from runas_podman.host import lookup
    from runas_podman.manage.service_user import LINGER_DIR, range_for, read_subids

    lookup.checked_identity(name, "user")  # bad text is a usage error, not a check
    checks: list[Check] = []
    try:
        user = lookup.service_user(name)
    except RunasError:
        return [Check("user", "fail", f"no user '{name}'",
                      f"runas-podman setup --create -u {name}")]  # fmt: skip
    checks.append(Check("user", "ok", f"{user.name} (uid {user.uid}, home {user.home})"))
    setup = f"runas-podman setup -u {user.name}"
    for kind in ("subuid", "subgid"):
        found = range_for(read_subids(f"/etc/{kind}"), user)
        checks.append(
            Check(kind, "ok", f"{found.start}-{found.end}")
            if found and found.count >= 65536
            else Check(kind, "fail", f"no range of 65536 for {user.name} in /etc/{kind}", setup)
        )
    lingering = os.path.exists(f"{LINGER_DIR}/{user.name}")
    checks.append(
        Check("linger", "ok", "enabled") if lingering else
        Check("linger", "warn", "disabled: the user's manager stops when its last session ends",
              f"loginctl enable-linger {user.name}")
    )  # fmt: skip
    systemd = asyncio.run(_systemd_checks(user, setup))
    checks += systemd
    manager_up = any(c.check == user.user_manager_unit and c.status == "ok" for c in systemd)
    if os.geteuid() not in (0, user.uid):
        # /run/user/UID is the user's alone (0700): another user cannot look inside.
        checks += [Check(name, "warn", f"{user.runtime_dir} is {user.name}'s alone: run doctor "
                         "as root (or as the user) for this check")
                   for name in ("runtime dir", "user bus", "podman API")]  # fmt: skip
        checks += _podman_checks(user, setup, api=False)
    else:
        checks += _runtime_checks(user, manager_up)
        checks += _podman_checks(user, setup)
    checks.append(_polkit_check())
    checks.append(
        Check("pam", "ok", f"{PAM_FILE} installed") if os.path.exists(PAM_FILE) else
        Check("pam", "warn", f"{PAM_FILE} missing: runas sessions will refuse to start",
              "runas-podman install-pam")
    )  # fmt: skip
    checks.append(_selinux_check())
    return checks


def _runtime_checks(user: ServiceUser, manager_up: bool) -> list[Check]:
    """/run/user/UID and the user's bus, each with the fix for what is actually wrong:
    a manager that is not running, or a bus nothing provides."""
    start = f"systemctl start {user.user_manager_unit}"
    runtime = user.runtime_dir
    checks = [
        Check("runtime dir", "ok", f"{runtime} exists") if os.path.isdir(runtime) else
        Check("runtime dir", "fail", f"{runtime} is missing (XDG_RUNTIME_DIR for rootless podman)",
              start)
    ]  # fmt: skip
    bus = f"{runtime}/bus"
    if os.path.exists(bus):
        checks.append(Check("user bus", "ok", bus))
    elif not manager_up:
        checks.append(Check("user bus", "fail", f"{bus} is missing: {user.user_manager_unit} "
                            "is not running", start))  # fmt: skip
    elif not any(os.path.exists(f"{d}/dbus.socket") for d in USER_UNIT_DIRS):
        checks.append(Check("user bus", "fail", f"{bus} is missing: nothing provides a user "
                            "bus (dbus-user-session)",
                            f"{install_hint('dbus-user-session')}, then systemctl restart "
                            f"{user.user_manager_unit}"))  # fmt: skip
    else:
        checks.append(Check("user bus", "fail", f"{bus} is missing although "
                            f"{user.user_manager_unit} runs and dbus.socket is installed",
                            f"systemctl restart {user.user_manager_unit}"))  # fmt: skip
    return checks


async def _systemd_checks(user: ServiceUser, setup: str) -> list[Check]:
    from runas_podman.bus.systemd_bus import SystemdBus, connected

    try:
        async with connected(SystemdBus.connect_system()) as bus:
            version_text = await bus.manager_version()
            state = await bus.unit_state(user.user_manager_unit)
    except RunasError as error:
        return [Check("system bus", "fail", error.message, "systemctl start dbus.socket")]
    version = parse_systemd_version(version_text)
    served = [f"{name} {'native' if version >= since else 'through the fd relay'}"
              for name, since in (("--open-file", OPEN_FILE_SINCE),
                                  ("--pass-fd", EXTRA_FDS_SINCE))]  # fmt: skip
    run0 = "run0 present" if version >= RUN0_SINCE else f"no run0 (needs {RUN0_SINCE})"
    if version < MIN_SYSTEMD:
        checks = [Check("systemd", "fail", f"{version_text}: runas-podman needs {MIN_SYSTEMD}+",
                        "upgrade systemd")]  # fmt: skip
    else:
        checks = [Check("systemd", "ok", f"{version_text}: " + ", ".join([*served, run0]))]
    checks.append(
        Check(user.user_manager_unit, "ok", "active") if state == "active" else
        Check(user.user_manager_unit, "fail", f"{state}: no service manager for {user.name}", setup)
    )  # fmt: skip
    return checks


def _podman_checks(user: ServiceUser, setup: str, api: bool = True) -> list[Check]:
    podman = resolve_executable("podman", is_executable_file)  # where launches look
    if podman is None:
        present = resolve_executable("podman", os.path.isfile)
        if present is None:
            return [Check("podman", "fail", "not installed", install_hint("podman", "uidmap"))]
        st = os.stat(present)
        return [Check("podman", "fail", f"{present} is there but cannot be executed (mode "
                      f"{stat.S_IMODE(st.st_mode):04o}, owner uid {st.st_uid})",
                      f"chmod 755 {present}")]  # fmt: skip
    result = subprocess.run([podman, "--version"], capture_output=True, text=True)
    checks = [Check("podman", "ok", f"{result.stdout.strip()} ({podman})")]
    checks.append(_network_check(parse_systemd_version(result.stdout)))  # "podman version 5.4.2"
    checks.append(_quadlet_check(result.stdout))
    checks.append(_cgroup_check(user))
    if checks[-2].status == "ok":  # Quadlet is there: the host's traps for it
        checks += _quadlet_traps(user)
    if not api:
        return checks
    from runas_podman.manage.podman_api import socket_path

    path = socket_path(user)
    masked = _socket_masked(user)
    if masked is not None:
        checks.append(masked)
        return checks
    if not os.path.exists(path):
        checks.append(Check("podman API", "warn", f"{path} is missing (podman.socket not running)",
                            setup))  # fmt: skip
        return checks
    try:
        from podman import PodmanClient

        info = PodmanClient(base_url=f"unix://{path}").info()
    except Exception as error:  # podman-py's or requests' errors
        # Not fatal: the API commands start podman.socket on demand.
        checks.append(Check("podman API", "warn",
                            f"{path} does not answer ({type(error).__name__}): "
                            "podman.socket stopped?",
                            f"systemctl --user -M {user.name}@ start podman.socket"))  # fmt: skip
        return checks
    host = info.get("host", {})
    store = info.get("store", {})
    security = host.get("security", {})
    checks.append(Check(
        "podman API", "ok",
        f"answers; rootless {security.get('rootless')}, storage {store.get('graphDriverName')}, "
        f"cgroups {host.get('cgroupVersion')} ({host.get('cgroupManager')})",
    ))  # fmt: skip
    return checks


def _socket_masked(user: ServiceUser) -> Check | None:
    """podman.socket masked in USER's manager: nothing can start it (not setup, not the API
    commands), so the fix unmasks it first. Asked over USER's bus; None when that is not
    possible here (no manager, not root) or the unit is not masked."""
    from runas_podman.bus.systemd_bus import UNIT, connected, unit_object_path
    from runas_podman.bus.user_bus import open_user_bus

    async def file_state() -> str:
        async with connected(open_user_bus(user)) as bus:
            return str(await bus.get_property(unit_object_path("podman.socket"), UNIT,
                                              "UnitFileState"))  # fmt: skip

    try:
        state = asyncio.run(file_state())  # "masked", or "masked-runtime" (under /run)
    except (RunasError, BusCallError, OSError):
        return None
    if not state.startswith("masked"):
        return None
    runtime = " --runtime" if state == "masked-runtime" else ""
    return Check(
        "podman API", "fail", f"podman.socket is {state} in {user.name}'s manager: nothing "
        "can start it, and the API commands (ps, images, logs, ...) need it",
        f"systemctl --user -M {user.name}@ unmask{runtime} podman.socket && "
        f"runas-podman setup -u {user.name}",
    )  # fmt: skip


def _quadlet_check(version_line: str) -> Check:
    """Quadlets need podman 4.4 (its systemd generator): a fact a playbook can branch on."""
    from runas_podman.manage.quadlet import QUADLET_SINCE

    match = re.search(r"(\d+)\.(\d+)", version_line)
    version = (int(match.group(1)), int(match.group(2))) if match else (0, 0)
    shown = ".".join(map(str, version))
    if version >= QUADLET_SINCE:
        return Check("quadlet", "ok", f"podman {shown} has Quadlet")
    return Check("quadlet", "warn", f"podman {shown} has no Quadlet (needs "
                 f"{'.'.join(map(str, QUADLET_SINCE))}): quadlet commands are refused",
                 install_hint("podman"))  # fmt: skip


WAIT_ONLINE = "/usr/lib/systemd/user/podman-user-wait-network-online.service"


def _quadlet_traps(user: ServiceUser) -> list[Check]:
    """What makes a valid Quadlet fail or hang on this host (docs/quadlets.md)."""
    from runas_podman.manage.quadlet import cgroup_drop_in, cgroup_fix, cgroup_trap, cgroup_v2

    trap = cgroup_trap(user)
    if trap is not None:
        # warn, not fail: a user without Quadlets is fine; quadlet install refuses.
        checks = [Check("quadlet cgroups", "warn", f"{trap}: Quadlet containers will fail",
                        cgroup_fix(user))]  # fmt: skip
    elif cgroup_v2():
        checks = [Check("quadlet cgroups", "ok", "cgroup v2: --cgroups=split works")]
    else:
        drop_in = cgroup_drop_in(user)
        checks = [
            Check("quadlet cgroups", "ok", f"cgroup v1, and {drop_in} sets --cgroups=enabled")
        ]
    if not os.path.exists(WAIT_ONLINE):
        return checks  # podman < 5: Quadlet units do not wait for the network
    state = subprocess.run(
        ["systemctl", "show", "-P", "LoadState,ActiveState", "network-online.target"],
        capture_output=True, text=True, check=False,
    ).stdout.split()  # fmt: skip
    if state == ["loaded", "active"]:
        checks.append(Check("network-online", "ok", "network-online.target is active"))
    elif state[:1] == ["masked"]:
        checks.append(Check("network-online", "fail",
                            "network-online.target is masked: every Quadlet start waits for it "
                            "until it times out (podman-user-wait-network-online.service)",
                            "systemctl unmask network-online.target"))  # fmt: skip
    else:
        checks.append(Check("network-online", "warn",
                            "network-online.target is not active: each Quadlet start waits ~90 s "
                            "for it (podman-user-wait-network-online.service); for a Quadlet "
                            "that needs no network, [Quadlet] DefaultDependencies=false",
                            "systemctl add-wants multi-user.target network-online.target && "
                            "systemctl start network-online.target"))  # fmt: skip
    return checks


def _network_check(podman_major: int) -> Check:
    """Rootless networking: pasta is podman 5's default, slirp4netns podman 4's."""
    tools = {
        tool: resolve_executable(tool, is_executable_file) for tool in ("pasta", "slirp4netns")
    }
    default, package = ("pasta", "passt") if podman_major >= 5 else ("slirp4netns", "slirp4netns")
    if tools[default]:
        return Check("rootless network", "ok", f"{default} ({tools[default]}), podman's default")
    other = next((tool for tool, path in tools.items() if path), None)
    if other is not None:
        return Check("rootless network", "warn",
                     f"{default}, podman {podman_major}'s default, is missing; {other} is there",
                     f"{install_hint(package)}, or podman run --network={other}")  # fmt: skip
    return Check("rootless network", "fail", "neither pasta nor slirp4netns is installed",
                 install_hint(package))  # fmt: skip


def _cgroup_check(user: ServiceUser) -> Check:
    """The cgroup layout, and on v2 which controllers the user's manager may hand down."""
    try:
        with open("/proc/self/mounts") as mounts:
            kinds = [line.split()[2] for line in mounts if line.split()[1:2] == ["/sys/fs/cgroup"]]
    except OSError:
        kinds = []
    if kinds[-1:] != ["cgroup2"]:
        return Check("cgroups", "warn",
                     "v1 (legacy or hybrid): podman 5 deprecates it, systemd 258+ refuses it",
                     "boot with systemd.unified_cgroup_hierarchy=1")  # fmt: skip
    path = (f"/sys/fs/cgroup/user.slice/user-{user.uid}.slice/"
            f"{user.user_manager_unit}/cgroup.controllers")  # fmt: skip
    try:
        with open(path) as controllers:
            delegated = controllers.read().split()
    except OSError:
        return Check("cgroups", "warn", f"v2, but {path} cannot be read (user manager down?)")
    missing = [name for name in ("memory", "pids") if name not in delegated]
    if missing:
        return Check("cgroups", "warn",
                     f"v2; {user.user_manager_unit} is not delegated {', '.join(missing)}: "
                     "podman cannot limit its containers",
                     "Delegate=cpu cpuset io memory pids in a user@.service drop-in")  # fmt: skip
    return Check(
        "cgroups", "ok", f"v2; delegated to {user.user_manager_unit}: {' '.join(delegated)}"
    )


def _polkit_check() -> Check:
    from runas_podman.bus.polkit import polkit_installed

    agent = resolve_executable("pkttyagent", is_executable_file)
    if polkit_installed() and agent:
        return Check("polkit", "ok", f"polkitd and {agent} present")
    if polkit_installed():
        return Check("polkit", "warn", "pkttyagent missing: runas cannot ask on the terminal",
                     install_hint("polkitd"))  # fmt: skip
    return Check("polkit", "warn", "not installed: runas uses the wheel+PAM broker instead",
                 f"{install_hint('polkitd')}, or runas-podman install-broker")  # fmt: skip


def _selinux_check() -> Check:
    try:
        with open("/sys/fs/selinux/enforce") as enforce:
            mode = "enforcing" if enforce.read().strip() == "1" else "permissive"
    except OSError:
        return Check("selinux", "ok", "not enabled: no policy module needed")
    loaded = False
    semodule = resolve_executable("semodule", is_executable_file)
    if semodule:
        listing = subprocess.run([semodule, "-l"], capture_output=True, text=True).stdout
        loaded = SELINUX_MODULE in listing.split()
    if loaded:
        return Check("selinux", "ok", f"{mode}; module {SELINUX_MODULE} loaded")
    return Check("selinux", "warn", f"{mode}; module {SELINUX_MODULE} not loaded: containers may "
                 "be denied the fds passed to them",
                 "selinux/build.sh out && semodule -i out/runas_podman.pp")  # fmt: skip
