"""Two testbed machines up at once, each with its own systemd, podman and sshd, for Ansible.

Each machine is a Testbed (tests/testbed) with its own cache dir, so its own tree and
state file. What two at once need beyond the driver, handled here:

- cgroups: `systemd-nspawn --keep-unit` puts the container into <its own cgroup>/payload.
  Two started from the same process would share every cgroup (init.scope, user.slice, ...)
  and each systemd would manage the other's. So each machine boots from a helper process
  that first moves into a cgroup of its own, a child of ours, in the two hierarchies nspawn
  uses (name=systemd and the unified one; or the one cgroup2 tree). (The driver now also
  gives each testbed dir a cgroup of its own, inside this one.)
- the machine name: the driver gives every testbed the same one, and nspawn keeps state
  on the host by that name; each fleet machine boots as runas-fleetN instead.
- the network: nspawn without --private-network shares the host's, so each sshd listens on
  127.0.0.1 on a port that is free at the time; ssh.service is disabled in the tree, so no
  sshd ever listens on port 22 of the host.
- the tree: openssh-server is not in the recipe; it is installed into the first tree once
  (apt-get in `systemd-nspawn -D`, from the host's Debian mirror), and the second machine's
  tree is a copy of the first (`cp -a`), made while neither runs, with fresh host keys.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.testbed.testbed import REPO, Testbed, TestbedError, _own_cgroups, log

DEFAULT_CACHES = "/var/cache/runas-podman-testbed-fleet1:/var/cache/runas-podman-testbed-fleet2"
SSHD_STAMP = "var/lib/runas-fleet/openssh-server"
SSHD_CONFIG = "/etc/ssh/sshd_config.d/10-runas-fleet.conf"

BOOT = """
import sys
from pathlib import Path
from tests.testbed import testbed
from tests.testbed.testbed import Testbed, TestbedError


class FleetBed(Testbed):
    # Its own machine name (and so hostname): the driver names every testbed of a suite
    # alike, and nspawn keeps host state by that name (/run/systemd/nspawn/propagate/NAME,
    # removed when any container of that name stops).
    @property
    def machine(self):
        return sys.argv[2]


if isinstance(getattr(Testbed, "machine", None), property):
    bed = FleetBed(cache=Path(sys.argv[1]))
else:  # a driver with one module-wide name
    testbed.MACHINE = sys.argv[2]
    bed = Testbed(cache=Path(sys.argv[1]))
try:
    booted = bed.up()
    if not booted:
        bed.install_project()  # the checkout may have changed since it booted
except TestbedError as error:
    sys.exit(f"testbed {sys.argv[1]}: {error}")
print("booted" if booted else "reused")
"""

# Installed once per tree, in the tree without booting it. policy-rc.d keeps the package's
# scripts from starting anything; ssh.service and ssh.socket are disabled: sshd is started
# by the tests only, on a loopback port of their choice.
INSTALL_SSHD = """
set -e
printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d
chmod 0755 /usr/sbin/policy-rc.d
trap 'rm -f /usr/sbin/policy-rc.d' EXIT
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends openssh-server >/dev/null
systemctl disable ssh.service >/dev/null 2>&1 || true
systemctl mask ssh.socket >/dev/null 2>&1 || true
rm -f /etc/ssh/ssh_host_*
apt-get clean
rm -rf /var/lib/apt/lists/*
mkdir -p "$(dirname "/$1")"
date > "/$1"
"""


def fleet_caches() -> list[Path]:
    caches = os.environ.get("RUNAS_PODMAN_FLEET_CACHES", DEFAULT_CACHES)
    return [Path(p) for p in caches.split(":") if p]


# --- cgroups -----------------------------------------------------------------


def cgroup_dirs(name: str) -> list[str]:
    """A cgroup `name` below ours, in each hierarchy nspawn uses."""
    return [os.path.join(mount, path.lstrip("/"), name) for mount, path in _own_cgroups().items()]


def entering(directories: Sequence[str]) -> Callable[[], None]:
    """A preexec_fn: the child (and so nspawn, its child) starts in these cgroups."""
    for directory in directories:
        os.makedirs(directory, exist_ok=True)

    def enter() -> None:
        for directory in directories:
            Path(directory, "cgroup.procs").write_text("0")

    return enter


def remove_cgroups(directories: Sequence[str]) -> None:
    """Remove the cgroups, leaves first; one still in use stays."""
    for directory in directories:
        for root, _, _ in sorted(os.walk(directory), key=lambda entry: -len(entry[0])):
            with contextlib.suppress(OSError):
                os.rmdir(root)


# --- trees ---------------------------------------------------------------------


def _has_sshd(bed: Testbed) -> bool:
    return (bed.tree / SSHD_STAMP).exists()


def _stop_if_up(bed: Testbed) -> None:
    if bed.state() is not None:
        log(f"stopping {bed.cache} to change its tree")
        bed.down()


def prepare_trees(beds: Sequence[Testbed]) -> None:
    """Every bed has a built tree with openssh-server; the later ones copies of the first."""
    first = beds[0]
    running = first.state()
    if running is not None and running.get("tree") != str(first.tree):
        _stop_if_up(first)  # a tree of another recipe: build() replaces it
    with first.locked():
        first.build()
    if not _has_sshd(first):
        _stop_if_up(first)
        started = time.monotonic()
        log(f"installing openssh-server into {first.tree} (apt-get, once per tree)")
        with first.locked():
            _in_tree(first.tree, ["bash", "-c", INSTALL_SSHD, "install-sshd", SSHD_STAMP])
        log(f"openssh-server installed in {time.monotonic() - started:.0f} s")
    for bed in beds[1:]:
        if (bed.tree / ".testbed-built").exists() and _has_sshd(bed):
            continue
        _stop_if_up(first)
        _stop_if_up(bed)
        started = time.monotonic()
        with bed.locked():
            trees = bed.tree.parent  # where the driver keeps this bed's trees
            trees.mkdir(parents=True, exist_ok=True)
            staging = trees / "copy.staging"
            stale_paths = [*trees.glob("tree-*"), staging]
            for stale in [path for path in stale_paths if path.exists()]:
                log(f"removing {stale}")
                subprocess.run(["rm", "-rf", "--one-file-system", str(stale)], check=True)
            with first.locked():
                subprocess.run(
                    ["cp", "-a", "--reflink=auto", str(first.tree), str(staging)], check=True
                )
            for key in staging.glob("etc/ssh/ssh_host_*"):
                key.unlink()  # its own host keys (ssh-keygen -A when sshd starts)
            staging.rename(bed.tree)
        log(f"copied {first.tree} to {bed.tree} in {time.monotonic() - started:.0f} s")


def _in_tree(tree: Path, argv: Sequence[str]) -> None:
    """Run argv in the tree without booting it (nspawn, in a cgroup of its own)."""
    directories = cgroup_dirs(f"runas-fleet-setup-{os.getpid()}")
    try:
        result = subprocess.run(
            [
                "systemd-nspawn",
                "--quiet",
                "-D",
                str(tree),
                "--register=no",
                "--keep-unit",
                "--pipe",
                *argv,
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=600,
            preexec_fn=entering(directories),
        )
    finally:
        remove_cgroups(directories)
    if result.returncode != 0:
        raise TestbedError(
            f"in {tree}: {' '.join(argv)[:80]} exited {result.returncode}:\n"
            f"{result.stdout[-2000:]}{result.stderr[-2000:]}"
        )


# --- machines ----------------------------------------------------------------


@dataclass
class Machine:
    """One testbed of the fleet, with the sshd the tests reach it by."""

    name: str
    bed: Testbed
    cgroups: list[str] = field(default_factory=list)
    booted: bool = False
    port: int = 0

    def sh(self, script: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return self.bed.run(["bash", "-c", script], **kwargs)  # type: ignore[arg-type]

    def check(self, script: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return self.bed.check(["bash", "-c", script], **kwargs)


def machines() -> list[Machine]:
    found = []
    for number, cache in enumerate(fleet_caches(), start=1):
        key = hashlib.sha256(str(cache.resolve()).encode()).hexdigest()[:8]
        found.append(
            Machine(f"fleet{number}", Testbed(cache=cache), cgroup_dirs(f"runas-fleet-{key}"))
        )
    return found


def boot(fleet: Sequence[Machine]) -> None:
    """Boot (or reuse) every machine, at the same time, each from its own cgroup."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    helpers = [
        subprocess.Popen(
            [sys.executable, "-c", BOOT, str(machine.bed.cache), f"runas-{machine.name}"],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=entering(machine.cgroups),
        )
        for machine in fleet
    ]
    failures = []
    for machine, helper in zip(fleet, helpers, strict=True):
        out, err = helper.communicate(timeout=900)
        if helper.returncode != 0:
            failures.append(f"{machine.name}: {err.strip()[-3000:]}")
        machine.booted = out.strip() == "booted"
    if failures:
        raise TestbedError("\n".join(failures))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_sshd(machine: Machine, public_key: str) -> None:
    """sshd on 127.0.0.1:PORT (the host's network), root by this key only."""
    machine.port = free_port()
    config = (
        f"ListenAddress 127.0.0.1:{machine.port}\n"
        "PermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "UseDNS no\n"
    )
    machine.check("umask 077; mkdir -p /root/.ssh; cat > /root/.ssh/authorized_keys",
                  input=public_key)  # fmt: skip
    machine.check(
        f"cat > {SSHD_CONFIG}; ssh-keygen -A >/dev/null; systemctl restart ssh.service",
        input=config,
    )
    deadline = time.monotonic() + 15
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            if probe.connect_ex(("127.0.0.1", machine.port)) == 0:
                return
        if time.monotonic() > deadline:
            status = machine.sh("systemctl status ssh.service --no-pager").stdout
            raise TestbedError(f"{machine.name}: sshd does not listen on {machine.port}:\n{status}")
        time.sleep(0.1)


def stop_sshd(machine: Machine) -> None:
    machine.sh(f"systemctl stop ssh.service; rm -f {SSHD_CONFIG} /root/.ssh/authorized_keys")


def shut_down(machine: Machine) -> None:
    if machine.booted and os.environ.get("RUNAS_PODMAN_TESTBED_KEEP") != "1":
        machine.bed.down()
        remove_cgroups(machine.cgroups)
    else:
        stop_sshd(machine)
