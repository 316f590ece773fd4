"""The Ansible controller of the fleet tests: ansible-playbook on the host, over SSH.

Everything Ansible writes on the controller (config, inventory, known_hosts, control
sockets, ~/.ansible) stays in the test's work directory; the collection is found through
a link ansible_collections/runas_podman/podman_users -> ansible/ of this checkout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.fleet.machines import Machine
from tests.testbed.testbed import REPO, VENV

HERE = Path(__file__).resolve().parent
PLAYBOOKS = HERE / "playbooks"
COLLECTION = REPO / "ansible"
INTERPRETER = f"{VENV}/bin/python"  # the testbed's venv, where runas_podman is installed


def ansible_bin(name: str) -> Path:
    return Path(sys.executable).parent / name


@dataclass
class PlaybookRun:
    rc: int
    output: str
    records: list[dict[str, Any]]
    seconds: float
    stats: dict[str, dict[str, int]] = field(default_factory=dict)

    def results(self, task: str, host: str | None = None) -> list[dict[str, Any]]:
        return [
            r for r in self.records
            if r.get("task") == task and (host is None or r.get("host") == host)
        ]  # fmt: skip

    def result(self, task: str, host: str) -> dict[str, Any]:
        found = self.results(task, host)
        assert found, f"no result of {task!r} on {host}:\n{self.output[-3000:]}"
        return found[-1]

    def changed(self, host: str) -> int:
        return self.stats[host]["changed"]

    def failed(self, host: str) -> int:
        return self.stats[host]["failures"]


class Controller:
    def __init__(self, workdir: Path, machines: Sequence[Machine], private_key: Path) -> None:
        self.workdir = workdir
        self.machines = list(machines)
        collections = workdir / "collections/ansible_collections/runas_podman"
        collections.mkdir(parents=True, exist_ok=True)
        (collections / "podman_users").symlink_to(COLLECTION, target_is_directory=True)
        (workdir / "home").mkdir()
        (workdir / "cp").mkdir()
        hosts = "\n".join(
            f"{m.name} ansible_host=127.0.0.1 ansible_port={m.port}" for m in machines
        )
        (workdir / "inventory.ini").write_text(
            f"[fleet]\n{hosts}\n\n[fleet:vars]\nansible_user=root\n"
            f"ansible_ssh_private_key_file={private_key}\n"
            f"ansible_python_interpreter={INTERPRETER}\n"
        )
        ssh_args = (
            "-o ControlMaster=auto -o ControlPersist=120s -o BatchMode=yes "
            f"-o UserKnownHostsFile={workdir}/known_hosts -o StrictHostKeyChecking=accept-new"
        )
        (workdir / "ansible.cfg").write_text(
            "[defaults]\n"
            f"inventory = {workdir}/inventory.ini\n"
            f"collections_path = {workdir}/collections\n"
            f"callback_plugins = {HERE}/callback_plugins\n"
            "callbacks_enabled = fleet_record\n"
            "stdout_callback = default\n"
            "retry_files_enabled = False\n"
            "nocolor = True\n"
            "forks = 5\n"
            f"local_tmp = {workdir}/home/tmp\n"
            "\n[connection]\npipelining = True\n"
            f"\n[ssh_connection]\ncontrol_path_dir = {workdir}/cp\nssh_args = {ssh_args}\n"
        )

    def environment(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
        env.update(
            ANSIBLE_CONFIG=str(self.workdir / "ansible.cfg"),
            ANSIBLE_HOME=str(self.workdir / "home"),
            ANSIBLE_FORCE_COLOR="0",
            PYTHONUNBUFFERED="1",
        )
        env.update(extra or {})
        return env

    def playbook(
        self,
        name: str,
        *arguments: str,
        extra_vars: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 600,
    ) -> PlaybookRun:
        record = self.workdir / f"record-{time.monotonic_ns()}.jsonl"
        command = [str(ansible_bin("ansible-playbook")), str(PLAYBOOKS / name), *arguments]
        if extra_vars:
            # A file on the controller, not the command line (seen by every process).
            variables = self.workdir / f"vars-{time.monotonic_ns()}.json"
            with open(os.open(variables, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
                json.dump(dict(extra_vars), out)
            command += ["--extra-vars", f"@{variables}"]
        started = time.monotonic()
        try:
            done = self._run(command, record, env, timeout)
        finally:
            if extra_vars:
                variables.unlink()  # the secrets: only for the run's duration
        seconds = time.monotonic() - started
        lines = record.read_text().splitlines() if record.exists() else []
        records = [json.loads(line) for line in lines]
        run = PlaybookRun(done.returncode, done.stdout, records, seconds)
        for entry in records:
            if "stats" in entry:
                run.stats = entry["stats"]
        (self.workdir / f"{name}-{time.monotonic_ns()}.log").write_text(done.stdout)
        return run

    def _run(
        self, command: list[str], record: Path, env: Mapping[str, str] | None, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command, cwd=self.workdir,
            env=self.environment({**(env or {}), "RUNAS_FLEET_RECORD": str(record)}),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, timeout=timeout,
        )  # fmt: skip
