"""A container of a testbed tree WITHOUT systemd as PID 1: where the native backend runs.

`systemd-nspawn --as-pid2 --volatile=overlay` on the suite's tree (the same tree the
booted testbed uses, built the same way): nspawn's stub init is PID 1, a `sleep
infinity` is PID 2, and commands enter through nsenter as they do in the booted testbed
(Testbed.command). Nothing of systemd runs inside: no manager, no logind, no journal, no
/run/systemd/system. Every write goes to a tmpfs overlay, so the tree stays as it was
and every start is fresh. Prepared on each start: the project's wheel installed into the
venv, /etc/pam.d/runas, /dev/net/tun usable by rootless pasta (what the booted tree's
tmpfiles.d line does), and /dev/fuse for fuse-overlayfs (see _fuse_node).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .testbed import (
    VENV,
    Testbed,
    TestbedError,
    _comm,
    _own_cgroups,
    _remove_cgroups,
    _running_state,
    _stop,
    log,
)


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


@dataclass
class NativeContainer(Testbed):
    """The suite's tree in a container whose PID 1 is not systemd."""

    __test__ = False

    @property
    def state_file(self) -> Path:
        return self.dir / "native-state.json"

    @property
    def machine(self) -> str:
        return f"runas-native-{self.suite.name}"

    def up(self) -> bool:
        """Build the tree if needed, start the container, install the project."""
        with self.locked():
            if self.is_up():
                return False
            _stop(self.state_file)
            self.build()
            self._start()
        self.install_project()
        return True

    def down(self) -> None:
        with self.locked():
            if _stop(self.state_file):
                log(f"{self.machine} stopped")

    def _cgroup_dirs(self) -> list[str]:
        """Its own host cgroups, as the booted testbed has (never another's /payload)."""
        key = hashlib.sha256(str(self.dir.resolve()).encode()).hexdigest()[:8]
        name = f"runas-native-{self.suite.name}-{key}"
        return [os.path.join(m, p.lstrip("/"), name) for m, p in _own_cgroups().items()]

    def _fuse_node(self) -> Path:
        """A /dev/fuse node for the container only, mode 0666, in a root-only directory.

        nspawn's --bind=/dev/fuse binds the host's node (0600 here): rootless
        fuse-overlayfs cannot open it, and a chmod inside would change the host's node.
        """
        directory = self.dir / "native-dev"
        directory.mkdir(mode=0o700, exist_ok=True)
        node = directory / "fuse"
        if not node.exists():
            os.mknod(node, 0o666 | 0o020000, os.makedev(10, 229))
        os.chmod(node, 0o666)
        return node

    def _start(self) -> None:
        started = time.monotonic()
        # The booted testbed of the suite may run on the same tree: nspawn locks a tree
        # it runs, but this container writes only to its overlay (SYSTEMD_NSPAWN_LOCK=0).
        env = {**os.environ, "SYSTEMD_NSPAWN_API_VFS_WRITABLE": "1", "SYSTEMD_NSPAWN_LOCK": "0"}
        env.pop("SYSTEMD_NSPAWN_UNIFIED_HIERARCHY", None)
        if self.suite.unified_cgroup_hierarchy:
            env["SYSTEMD_NSPAWN_UNIFIED_HIERARCHY"] = "1"
        argv = [
            "systemd-nspawn", "--quiet", "-D", str(self.tree), "--as-pid2",
            "--volatile=overlay", f"--machine={self.machine}", "--register=no", "--keep-unit",
            "--capability=all", "--system-call-filter=@keyring @privileged @mount",
            f"--bind={self._fuse_node()}:/dev/fuse", f"--bind-ro={self.repo}:/src",
            "/bin/sleep", "infinity",
        ]  # fmt: skip
        cgroups = self._cgroup_dirs()
        _remove_cgroups(cgroups)
        for directory in cgroups:
            os.makedirs(directory, exist_ok=True)

        def enter_own_cgroups() -> None:
            for directory in cgroups:
                Path(directory, "cgroup.procs").write_text("0")

        with open(self.dir / "native.log", "wb") as out:
            nspawn = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                start_new_session=True, preexec_fn=enter_own_cgroups,
            )  # fmt: skip
        payload = None
        deadline = time.monotonic() + 30
        while payload is None and time.monotonic() < deadline:
            if nspawn.poll() is not None:
                raise TestbedError(f"systemd-nspawn --as-pid2 exited ({nspawn.returncode})")
            payload = next(
                (c for s in _children(nspawn.pid) for c in _children(s) if _comm(c) == "sleep"),
                None,
            )
            time.sleep(0.05)
        if payload is None:
            nspawn.kill()
            raise TestbedError(f"the container's payload did not start: see {self.dir}/native.log")
        self.state_file.write_text(json.dumps({
            "suite": self.suite.name, "nspawn_pid": nspawn.pid, "cgroups": cgroups,
            "init_pid": payload, "tree": str(self.tree), "src": str(self.repo),
        }))  # fmt: skip
        log(f"{self.machine} started in {time.monotonic() - started:.1f} s (PID 1 not systemd)")

    def install_project(self) -> None:
        """The checkout's wheel into the venv, /etc/pam.d/runas, /dev/net/tun for pasta."""
        started = time.monotonic()
        self.check(
            ["sh", "-ec",
             "chmod 0666 /dev/net/tun; "
             f"{VENV}/bin/pip install --quiet --no-index --no-deps --no-build-isolation "
             "--force-reinstall /src; "
             f"ln -sf {VENV}/bin/runas-podman {VENV}/bin/runas /usr/local/bin/; "
             "runas-podman install-pam >/dev/null"],
            timeout=300,
        )  # fmt: skip
        log(f"{self.machine}: project installed in {time.monotonic() - started:.1f} s")

    def state(self) -> dict[str, object] | None:
        return _running_state(self.state_file)
