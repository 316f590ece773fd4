"""The project's testbed: a Debian tree booted with systemd-nspawn, real systemd and podman.

Lifecycle: build (debootstrap + wheelhouse, cached by recipe hash) -> up (boot in the
background, wait for the manager, provision once) -> run commands inside via nsenter
-> down. The tree lives outside git, in $RUNAS_PODMAN_TESTBED_CACHE (default
/var/cache/runas-podman-testbed); a change to tests/testbed/recipe/ rebuilds it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RECIPE = Path(__file__).resolve().parent / "recipe"
CACHE = Path(os.environ.get("RUNAS_PODMAN_TESTBED_CACHE", "/var/cache/runas-podman-testbed"))
MACHINE = "runas-testbed"
VENV = "/opt/runas-podman/venv"
INSIDE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HOST_TOOLS = {"debootstrap": "debootstrap", "systemd-nspawn": "systemd-container"}


class TestbedError(RuntimeError):
    """The testbed cannot be built, booted or reached; the message says what to do."""


def log(message: str) -> None:
    print(f"testbed: {message}", file=sys.stderr, flush=True)


def recipe_hash() -> str:
    digest = hashlib.sha256()
    for path in sorted(RECIPE.rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(RECIPE).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def recipe_packages() -> list[str]:
    lines = (RECIPE / "packages").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def host_mirror() -> str:
    """The Debian mirror the host itself uses (the only registry reachable here)."""
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.exists():
        match = re.search(r"^URIs:\s*(\S+)", sources.read_text(), re.MULTILINE)
        if match:
            return match.group(1)
    sources_list = Path("/etc/apt/sources.list")
    if sources_list.exists():
        match = re.search(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)", sources_list.read_text(), re.MULTILINE)
        if match:
            return match.group(1)
    return "http://deb.debian.org/debian"


def missing_host_tools() -> list[str]:
    return [package for tool, package in HOST_TOOLS.items() if shutil.which(tool) is None]


def unavailable_reason() -> str | None:
    """Why this machine cannot run the testbed, or None if it can."""
    if sys.platform != "linux":
        return "the testbed needs Linux"
    if os.geteuid() != 0:
        return "the testbed needs root (debootstrap, systemd-nspawn)"
    missing = missing_host_tools()
    if missing:
        return f"missing host packages: apt-get install {' '.join(missing)}"
    return None


@dataclass
class Testbed:
    __test__ = False  # not a pytest test class, despite the name

    cache: Path = CACHE
    repo: Path = REPO

    @property
    def tree(self) -> Path:
        return self.cache / f"tree-{recipe_hash()}"

    @property
    def state_file(self) -> Path:
        return self.cache / "state.json"

    @property
    def boot_log(self) -> Path:
        return self.cache / "boot.log"

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """One process at a time builds, boots or stops the testbed."""
        self.cache.mkdir(parents=True, exist_ok=True)
        with open(self.cache / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    # --- build ---------------------------------------------------------------

    def build(self) -> None:
        if (self.tree / ".testbed-built").exists():
            return
        reason = unavailable_reason()
        if reason:
            raise TestbedError(reason)
        for stale in self.cache.glob("tree-*"):
            if stale != self.tree:
                log(f"removing a tree built from another recipe: {stale}")
                self._remove_tree(stale)
        staging = self.cache / "tree.staging"
        self._remove_tree(staging)
        suite = (RECIPE / "suite").read_text().strip()
        started = time.monotonic()
        log(f"debootstrap {suite} into {staging} (about 90 s)")
        self._check(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=" + ",".join(recipe_packages()),
                suite,
                str(staging),
                host_mirror(),
            ],
            "debootstrap failed",
        )
        self._build_wheelhouse(staging)
        (staging / ".testbed-built").write_text(
            f"{recipe_hash()} {time.monotonic() - started:.0f}s\n"
        )
        staging.rename(self.tree)
        log(f"built {self.tree} in {time.monotonic() - started:.0f} s")

    def _build_wheelhouse(self, tree: Path) -> None:
        """Wheels for the tree's Python, fetched on the host (pip inside cannot verify TLS)."""
        pythons = sorted(tree.glob("usr/bin/python3.[0-9]*"))
        version = next(
            (m.group(1) for p in pythons if (m := re.fullmatch(r"python(3\.\d+)", p.name))), None
        )
        if version is None:
            raise TestbedError(f"no python3 found in {tree}/usr/bin")
        wheelhouse = tree / "opt/wheelhouse"
        wheelhouse.mkdir(parents=True, exist_ok=True)
        shutil.copy(RECIPE / "requirements.txt", wheelhouse / "requirements.txt")
        abi = "cp" + version.replace(".", "")
        self._check(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--dest",
                str(wheelhouse),
                "--only-binary=:all:",
                "--python-version",
                version,
                "--implementation",
                "cp",
                "--abi",
                abi,
                "--platform",
                "manylinux_2_17_x86_64",
                "--platform",
                "manylinux2014_x86_64",
                "--platform",
                "any",
                "-r",
                str(RECIPE / "requirements.txt"),
            ],
            "pip download of the testbed's wheels failed",
        )

    @staticmethod
    def _remove_tree(path: Path) -> None:
        if path.exists():
            subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=True)

    @staticmethod
    def _check(argv: Sequence[str], what: str) -> None:
        result = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if result.returncode != 0:
            raise TestbedError(f"{what} (exit {result.returncode}):\n{result.stdout[-4000:]}")

    # --- boot ----------------------------------------------------------------

    def state(self) -> dict[str, object] | None:
        """The running testbed's state, or None if none runs."""
        try:
            state: dict[str, object] = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return None
        pid = state.get("nspawn_pid")
        if not isinstance(pid, int) or not _alive(pid) or _comm(pid) != "systemd-nspawn":
            return None
        return state

    def is_up(self) -> bool:
        state = self.state()
        return bool(
            state and state.get("tree") == str(self.tree) and state.get("src") == str(self.repo)
        )

    def up(self) -> bool:
        """Build and boot if needed; returns True if this call booted it."""
        with self.locked():
            if self.is_up():
                return False
            if self.state():
                log("a testbed of another tree or checkout is running: stopping it")
                self._down_locked()
            self._kill_orphaned_init()
            self.build()
            self._boot()
            self._provision()
            return True

    def _kill_orphaned_init(self) -> None:
        """A container whose nspawn died (e.g. SIGKILLed with a session) must not share the tree."""
        try:
            state = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return
        init_pid = state.get("init_pid")
        if isinstance(init_pid, int) and _alive(init_pid) and _comm(init_pid) == "systemd":
            log(f"killing the orphaned container init {init_pid}")
            os.kill(init_pid, signal.SIGKILL)  # PID 1 of its namespace: takes the rest along
            deadline = time.monotonic() + 10
            while _alive(init_pid) and time.monotonic() < deadline:
                time.sleep(0.1)
        self.state_file.unlink(missing_ok=True)

    def _boot(self) -> None:
        started = time.monotonic()
        env = {**os.environ, "SYSTEMD_NSPAWN_API_VFS_WRITABLE": "1"}
        argv = [
            "systemd-nspawn", "--quiet", "-D", str(self.tree), "--boot",
            f"--machine={MACHINE}", "--register=no", "--keep-unit", "--capability=all",
            "--system-call-filter=@keyring @privileged @mount", "--bind=/dev/fuse",
            f"--bind-ro={self.repo}:/src", "--console=read-only",
        ]  # fmt: skip
        with open(self.boot_log, "wb") as boot_log:
            nspawn = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=boot_log, stderr=subprocess.STDOUT,
                env=env, start_new_session=True,
            )  # fmt: skip
        init_pid = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and init_pid is None:
            if nspawn.poll() is not None:
                raise TestbedError(
                    f"systemd-nspawn exited ({nspawn.returncode}): see {self.boot_log}"
                )
            init_pid = _child_named(nspawn.pid, "systemd")
            time.sleep(0.1)
        if init_pid is None:
            nspawn.kill()
            raise TestbedError(f"the testbed's systemd did not start: see {self.boot_log}")
        self.state_file.write_text(
            json.dumps(
                {
                    "nspawn_pid": nspawn.pid,
                    "init_pid": init_pid,
                    "tree": str(self.tree),
                    "src": str(self.repo),
                }
            )
        )
        # Until PID 1 has its socket, systemctl prints nothing: ask again until it answers.
        state = ""
        while not state and time.monotonic() < deadline + 60:
            result = self.run(["systemctl", "is-system-running", "--wait"], timeout=120)
            state = result.stdout.strip()
            if not state:
                time.sleep(0.2)
        if state not in ("running", "degraded"):
            raise TestbedError(f"the testbed's manager is '{state}': see {self.boot_log}")
        log(f"booted in {time.monotonic() - started:.1f} s (system state: {state})")

    def _provision(self) -> None:
        stamp = "/var/lib/runas-testbed/provisioned"
        current = self.run(["cat", stamp]).stdout.strip()
        if current != recipe_hash():
            started = time.monotonic()
            log("provisioning (users, linger, venv, local busybox image)")
            script = (RECIPE / "provision.sh").read_text()
            self.check(["bash", "-c", script, "provision"], timeout=600)
            self.check(
                ["sh", "-c", f"mkdir -p {stamp.rsplit('/', 1)[0]}; echo {recipe_hash()} > {stamp}"]
            )
            log(f"provisioned in {time.monotonic() - started:.1f} s")
        self.install_project()

    def install_project(self) -> None:
        """Install /src (the bind-mounted checkout) into the testbed's venv as a real wheel.

        Not editable: /src is read-only inside, so an editable install would recompile
        every module on every run, and a wheel also proves the packaging.
        """
        self.check(
            [f"{VENV}/bin/pip", "install", "--quiet", "--no-index", "--no-deps",
             "--no-build-isolation", "--force-reinstall", "/src"],
            timeout=300,
        )  # fmt: skip
        self.check(["sh", "-c", f"ln -sf {VENV}/bin/runas-podman {VENV}/bin/runas /usr/local/bin/"])
        self.check(["runas-podman", "install-pam"])  # /etc/pam.d/runas for runas sessions
        self.check(["runas-podman", "install-broker"])  # runas's wheel+PAM path

    def down(self) -> None:
        with self.locked():
            self._down_locked()

    def _down_locked(self) -> None:
        state = self.state()
        if state is None:
            return
        pid = state["nspawn_pid"]
        assert isinstance(pid, int)
        os.kill(pid, signal.SIGTERM)  # nspawn asks the container's systemd to power off
        deadline = time.monotonic() + 60
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        self.state_file.unlink(missing_ok=True)
        log("stopped")

    # --- running commands inside ---------------------------------------------

    def command(
        self, argv: Sequence[str], user: str | None = None, env: Mapping[str, str] | None = None
    ) -> list[str]:
        """The host argv that runs `argv` inside, with a clean environment, as root or `user`."""
        state = self.state()
        if state is None:
            raise TestbedError("the testbed is not running: run `./dev up` (or `./dev demo`)")
        base_env = {"PATH": INSIDE_PATH, "LANG": "C.UTF-8", "TERM": os.environ.get("TERM", "dumb")}
        if user is None:
            base_env["HOME"] = "/root"
            prefix: list[str] = []
        else:
            home = "/root" if user == "root" else f"/home/{user}"
            base_env.update(HOME=home, USER=user, LOGNAME=user)
            prefix = ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups"]
        assignments = [f"{k}={v}" for k, v in {**base_env, **(env or {})}.items()]
        return [
            "nsenter", "-t", str(state["init_pid"]), "-a",
            "env", "-i", *assignments, *prefix, *argv,
        ]  # fmt: skip

    def run(
        self,
        argv: Sequence[str],
        *,
        user: str | None = None,
        env: Mapping[str, str] | None = None,
        input: str | bytes | None = None,
        timeout: float = 120,
        text: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        data = input.encode() if isinstance(input, str) and not text else input
        return subprocess.run(
            self.command(argv, user=user, env=env),
            input=data, capture_output=True, text=text, timeout=timeout,
            stdin=None if data is not None else subprocess.DEVNULL,
        )  # fmt: skip

    def check(self, argv: Sequence[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        result = self.run(argv, **kwargs)  # type: ignore[arg-type]
        if result.returncode != 0:
            raise TestbedError(
                f"inside the testbed, {' '.join(argv)[:200]} exited {result.returncode}:\n"
                f"{result.stdout[-2000:]}{result.stderr[-2000:]}"
            )
        return result


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return Path(f"/proc/{pid}").exists() and _state(pid) != "Z"


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "?"


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _child_named(parent: int, name: str) -> int | None:
    for task in Path(f"/proc/{parent}/task").glob("*"):
        with contextlib.suppress(OSError):
            for child in (task / "children").read_text().split():
                if _comm(int(child)) == name:
                    return int(child)
    return None
