"""The fleet: two testbed machines, each with its own systemd, podman and sshd, driven by
ansible-playbook on the host over SSH (see machines.py and controller.py)."""

from __future__ import annotations

import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.conftest import IN_CI
from tests.fleet import machines as fleet_machines
from tests.fleet.controller import Controller, ansible_bin
from tests.fleet.machines import Machine
from tests.testbed.testbed import TestbedError, unavailable_reason

APP_USER = "fleetapp"
CHECK_USER = "fleetcheck"
FAIL_USER = "fleetfail"

# What a former run (or a kept machine) left: the users, their files, the secret.
RESET = f"""
for user in {APP_USER} {CHECK_USER} {FAIL_USER}; do
    id "$user" >/dev/null 2>&1 || continue
    uid=$(id -u "$user")
    loginctl disable-linger "$user" 2>/dev/null || true
    systemctl stop "user@$uid.service" "user-runtime-dir@$uid.service" 2>/dev/null || true
    userdel --remove --force "$user" 2>/dev/null || true
    sed -i "/^$user:/d" /etc/subuid /etc/subgid
done
rm -rf /etc/runas-podman/secrets /var/tmp/fleet-busybox.tar /root/.ansible
"""


@dataclass
class Fleet:
    machines: list[Machine]
    controller: Controller
    db_password: str
    quadlet_secret: str

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.machines]

    def machine(self, name: str) -> Machine:
        return next(m for m in self.machines if m.name == name)

    @property
    def secret_vars(self) -> dict[str, str]:
        return {"db_password": self.db_password, "quadlet_secret": self.quadlet_secret}


def _unavailable() -> str | None:
    reason = unavailable_reason()
    if reason:
        return reason
    if not ansible_bin("ansible-playbook").exists():
        return "ansible-core is not installed in this venv (pip install -e '.[dev]')"
    missing = [tool for tool in ("ssh", "ssh-keygen") if shutil.which(tool) is None]
    if missing:
        return f"{', '.join(missing)} missing on the host: apt-get install openssh-client"
    return None


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    reason = _unavailable()
    if reason:
        if IN_CI:
            pytest.fail(f"the fleet tests cannot run here, and CI needs them: {reason}")
        pytest.skip(f"fleet unavailable: {reason}")
    fleet = fleet_machines.machines()
    workdir = tmp_path_factory.mktemp("fleet")
    key = workdir / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "fleet-test", "-f",
                    str(key)], check=True)  # fmt: skip
    try:
        fleet_machines.prepare_trees([m.bed for m in fleet])
        fleet_machines.boot(fleet)
        for machine in fleet:
            machine.check(RESET, timeout=120)
            fleet_machines.start_sshd(machine, key.with_suffix(".pub").read_text())
    except TestbedError as error:
        for machine in fleet:
            fleet_machines.shut_down(machine)
        pytest.fail(f"fleet: {error}")
    yield Fleet(
        fleet,
        Controller(workdir, fleet, key),
        db_password=f"fleet-db-{secrets.token_hex(16)}",
        quadlet_secret=f"fleet-quadlet-{secrets.token_hex(16)}",
    )
    for machine in fleet:
        fleet_machines.shut_down(machine)
