"""The project's testbed: a Debian tree booted with systemd-nspawn, real systemd and podman.

Lifecycle: build (debootstrap + wheelhouse, cached by recipe hash) -> up (boot in the
background, wait for the manager, provision once) -> run commands inside via nsenter
-> down. One testbed per Debian suite (bookworm, trixie, sid: tests/testbed/recipe/<suite>/
plus recipe/common/), each with its own tree, state file and lock in
$RUNAS_PODMAN_TESTBED_CACHE/<suite>/ (default /var/cache/runas-podman-testbed), so several
can be up at once. A change to the files a suite uses rebuilds that suite's tree only.
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
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RECIPE = Path(__file__).resolve().parent / "recipe"
CACHE = Path(os.environ.get("RUNAS_PODMAN_TESTBED_CACHE", "/var/cache/runas-podman-testbed"))
DEFAULT_SUITE = "trixie"
VENV = "/opt/runas-podman/venv"
INSIDE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HOST_TOOLS = {"debootstrap": "debootstrap", "systemd-nspawn": "systemd-container"}


class TestbedError(RuntimeError):
    """The testbed cannot be built, booted or reached; the message says what to do."""


def log(message: str) -> None:
    print(f"testbed: {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Suite:
    """One Debian suite of the testbed: recipe/common/ plus recipe/<name>/.

    recipe/<name>/suite.toml holds `codename` (what debootstrap fetches) and the boot
    settings (`unified_cgroup_hierarchy`); optional `packages`, `requirements.txt` and
    `provision.sh` in the suite's folder add to the common ones (its provision.sh runs
    before the common one).
    """

    name: str
    recipe: Path = RECIPE

    @property
    def folder(self) -> Path:
        return self.recipe / self.name

    @property
    def settings(self) -> dict[str, object]:
        return tomllib.loads((self.folder / "suite.toml").read_text())

    @property
    def codename(self) -> str:
        return str(self.settings.get("codename", self.name))

    @property
    def unified_cgroup_hierarchy(self) -> bool:
        return bool(self.settings.get("unified_cgroup_hierarchy", False))

    def parts(self, name: str) -> list[Path]:
        """recipe/common/NAME then recipe/<suite>/NAME, those that exist."""
        return [p for p in (self.recipe / "common" / name, self.folder / name) if p.is_file()]

    def files(self) -> list[Path]:
        """Every file this suite's tree is made from (and nothing another suite alone uses)."""
        folders = (self.recipe / "common", self.folder)
        return sorted(p for folder in folders for p in folder.rglob("*") if p.is_file())

    def recipe_hash(self) -> str:
        digest = hashlib.sha256()
        for path in self.files():
            digest.update(path.relative_to(self.recipe).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
        return digest.hexdigest()[:16]

    def packages(self) -> list[str]:
        lines = [line for part in self.parts("packages") for line in part.read_text().splitlines()]
        return [line.strip() for line in lines if line.strip() and not line.startswith("#")]

    def requirements(self) -> str:
        return "".join(part.read_text() for part in self.parts("requirements.txt"))

    def provision_scripts(self) -> list[Path]:
        """The suite's own provision.sh first (it readies what the common one needs)."""
        return list(reversed(self.parts("provision.sh")))


def suite_names(recipe: Path = RECIPE) -> list[str]:
    """The suites there are (folders of recipe/ with a suite.toml), the default first."""
    names = [p.parent.name for p in recipe.glob("*/suite.toml")]
    return sorted(names, key=lambda name: (name != DEFAULT_SUITE, name))


def selected_suites(value: str | None = None) -> list[Suite]:
    """Suites named by VALUE or $RUNAS_PODMAN_TESTBED_SUITE: a name, NAME,NAME or `all`."""
    if value is None:
        value = os.environ.get("RUNAS_PODMAN_TESTBED_SUITE") or DEFAULT_SUITE
    known = suite_names()
    names = known if value == "all" else [n.strip() for n in value.split(",") if n.strip()]
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise TestbedError(
            f"unknown testbed suite '{value}': choose from {', '.join(known)}, or all"
        )
    return [Suite(name) for name in dict.fromkeys(names)]


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

    suite: Suite = field(default_factory=lambda: Suite(DEFAULT_SUITE))
    cache: Path = CACHE
    repo: Path = REPO
    # Added to every command's environment (e.g. RUNAS_PODMAN_SERVER=0: the in-process path).
    launch_env: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def dir(self) -> Path:
        """This suite's own folder of the cache: tree, state file, lock, boot log."""
        return self.cache / self.suite.name

    @property
    def tree(self) -> Path:
        return self.dir / f"tree-{self.suite.recipe_hash()}"

    @property
    def state_file(self) -> Path:
        return self.dir / "state.json"

    @property
    def boot_log(self) -> Path:
        return self.dir / "boot.log"

    @property
    def machine(self) -> str:
        return f"runas-testbed-{self.suite.name}"

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """One process at a time builds, boots or stops this suite's testbed."""
        with _flock(self.dir / "lock"):
            yield

    # --- build ---------------------------------------------------------------

    def build(self) -> None:
        if (self.tree / ".testbed-built").exists():
            return
        reason = unavailable_reason()
        if reason:
            raise TestbedError(reason)
        for stale in self.dir.glob("tree-*"):
            if stale != self.tree:
                log(f"removing a {self.suite.name} tree built from another recipe: {stale}")
                self._remove_tree(stale)
        staging = self.dir / "tree.staging"
        self._remove_tree(staging)
        started = time.monotonic()
        log(f"debootstrap {self.suite.codename} into {staging} (about 90 s)")
        self._check(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=" + ",".join(self.suite.packages()),
                self.suite.codename,
                str(staging),
                host_mirror(),
            ],
            "debootstrap failed",
        )
        debootstrapped = time.monotonic() - started
        self._build_wheelhouse(staging)
        (staging / ".testbed-built").write_text(
            f"{self.suite.recipe_hash()} debootstrap {debootstrapped:.0f}s"
            f" total {time.monotonic() - started:.0f}s\n"
        )
        staging.rename(self.tree)
        log(
            f"built {self.tree} in {time.monotonic() - started:.0f} s"
            f" (debootstrap {debootstrapped:.0f} s)"
        )

    def remove_tree(self) -> None:
        """Remove this suite's tree (call with the lock held, the testbed down)."""
        log(f"removing {self.tree}")
        self._remove_tree(self.tree)

    @staticmethod
    def python_version(tree: Path) -> str:
        """The X.Y of the tree's python3 (its /usr/bin/python3 links to python3.X)."""
        candidates = [tree / "usr/bin/python3", *sorted(tree.glob("usr/bin/python3.[0-9]*"))]
        for candidate in candidates:
            with contextlib.suppress(OSError):
                name = os.readlink(candidate) if candidate.is_symlink() else candidate.name
                match = re.fullmatch(r"(?:.*/)?python(3\.\d+)", name)
                if match:
                    return match.group(1)
        raise TestbedError(f"no python3 found in {tree}/usr/bin")

    def _build_wheelhouse(self, tree: Path) -> None:
        """Wheels for the tree's Python, fetched on the host (pip inside cannot verify TLS)."""
        version = self.python_version(tree)
        wheelhouse = tree / "opt/wheelhouse"
        wheelhouse.mkdir(parents=True, exist_ok=True)
        requirements = wheelhouse / "requirements.txt"
        requirements.write_text(self.suite.requirements())
        abi = "cp" + version.replace(".", "")
        log(f"wheelhouse for the tree's Python {version}")
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
                str(requirements),
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
        return _running_state(self.state_file)

    def is_up(self) -> bool:
        state = self.state()
        return bool(
            state and state.get("tree") == str(self.tree) and state.get("src") == str(self.repo)
        )

    def up(self) -> bool:
        """Build and boot if needed; returns True if this call booted it."""
        _retire_single_suite_layout(self.cache)
        with self.locked():
            if self.is_up():
                return False
            if self.state():
                log(f"a {self.suite.name} testbed of another tree or checkout runs: stopping it")
                _stop(self.state_file)
            _kill_orphaned_init(self.state_file)
            self.build()
            self._boot()
            self._provision()
            return True

    def _boot(self) -> None:
        started = time.monotonic()
        env = {**os.environ, "SYSTEMD_NSPAWN_API_VFS_WRITABLE": "1"}
        env.pop("SYSTEMD_NSPAWN_UNIFIED_HIERARCHY", None)  # nspawn's own choice: hybrid here
        if self.suite.unified_cgroup_hierarchy:
            env["SYSTEMD_NSPAWN_UNIFIED_HIERARCHY"] = "1"  # systemd >= 258 refuses v1/hybrid
        argv = [
            "systemd-nspawn", "--quiet", "-D", str(self.tree), "--boot",
            f"--machine={self.machine}", "--register=no", "--keep-unit", "--capability=all",
            "--system-call-filter=@keyring @privileged @mount", "--bind=/dev/fuse",
            f"--bind-ro={self.repo}:/src", "--console=read-only",
        ]  # fmt: skip
        cgroups = self._own_cgroup_dirs()
        _remove_cgroups(cgroups)  # left by a container that was killed
        for directory in cgroups:
            os.makedirs(directory, exist_ok=True)

        def enter_own_cgroups() -> None:  # in the child, before exec: nspawn starts there
            for directory in cgroups:
                Path(directory, "cgroup.procs").write_text("0")

        with open(self.boot_log, "wb") as boot_log:
            nspawn = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=boot_log, stderr=subprocess.STDOUT,
                env=env, start_new_session=True, preexec_fn=enter_own_cgroups,
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
                    "suite": self.suite.name,
                    "nspawn_pid": nspawn.pid,
                    "cgroups": cgroups,
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
        self._record_root_cgroups(init_pid)
        elapsed = time.monotonic() - started
        log(f"{self.suite.name} booted in {elapsed:.1f} s (system state: {state})")

    def _record_root_cgroups(self, init_pid: int) -> None:
        """Note the container's root cgroups: commands entered from the host join them.

        A process nsenter'd from the host stays in the host's cgroup, which the container
        sees as "/../.." (outside its cgroup namespace); logind 262 then fails the caller's
        SetUserLinger with EUNATCH ("Protocol driver not attached"). At the container's
        root cgroup ("/") it is an ordinary process of the container without a unit.
        """
        paths = {}
        for line in Path(f"/proc/{init_pid}/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            paths[controllers] = path.removesuffix("/init.scope")
        hierarchies = {"/sys/fs/cgroup/systemd": "name=systemd", "/sys/fs/cgroup/unified": ""}
        hierarchies["/sys/fs/cgroup"] = ""
        roots = [
            os.path.join(mount, paths[hierarchies[mount]].lstrip("/"), "cgroup.procs")
            for mount in _own_cgroups()
            if hierarchies.get(mount) in paths
        ]
        state = json.loads(self.state_file.read_text())
        state["enter_cgroups"] = roots
        self.state_file.write_text(json.dumps(state))

    def _own_cgroup_dirs(self) -> list[str]:
        """This testbed's own cgroup in each host tree nspawn uses (see _own_cgroups)."""
        key = hashlib.sha256(str(self.dir.resolve()).encode()).hexdigest()[:8]
        name = f"runas-testbed-{self.suite.name}-{key}"
        return [
            os.path.join(mount, path.lstrip("/"), name) for mount, path in _own_cgroups().items()
        ]

    def _provision(self) -> None:
        stamp = "/var/lib/runas-testbed/provisioned"
        recipe_hash = self.suite.recipe_hash()
        current = self.run(["cat", stamp]).stdout.strip()
        if current != recipe_hash:
            started = time.monotonic()
            log(f"provisioning {self.suite.name} (users, linger, venv, local busybox image)")
            for script in self.suite.provision_scripts():
                name = script.relative_to(self.suite.recipe).as_posix()
                self.check(["bash", "-c", script.read_text(), name], timeout=600)
            self.check(
                ["sh", "-c", f"mkdir -p {stamp.rsplit('/', 1)[0]}; echo {recipe_hash} > {stamp}"]
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
        self.install_services()

    def install_services(self) -> None:
        """What the testbed's own venv installs on the host, put back after tests that
        uninstall: the PAM file, the broker, root's launch server."""
        # The console scripts first (an uninstall removed the commands install-commands
        # wrote there), which install-commands then replaces with its own.
        self.check(["sh", "-c", f"ln -sf {VENV}/bin/runas-podman {VENV}/bin/runas /usr/local/bin/"])
        self.check(["runas-podman", "install-pam"])  # /etc/pam.d/runas for runas sessions
        self.check(["runas-podman", "install-broker"])  # runas's wheel+PAM path
        self.check(["runas-podman", "install-launch-server"])  # root's fast path
        self.check(["runas-podman", "install-commands"])  # its client, in /usr/local/bin
        # A server of an earlier install still running retires itself once its files have
        # changed (cli/server.py); one from before that check existed must be told.
        self.check(["systemctl", "stop", "runas-podman-launch.service"])

    def down(self) -> None:
        with self.locked():
            if _stop(self.state_file):
                log(f"{self.suite.name} stopped")

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
        merged = {**base_env, **self.launch_env, **(env or {})}
        assignments = [f"{k}={v}" for k, v in merged.items()]
        enter = [
            "nsenter", "-t", str(state["init_pid"]), "-a",
            "env", "-i", *assignments, *prefix, *argv,
        ]  # fmt: skip
        roots = state.get("enter_cgroups")
        if not roots or not isinstance(roots, list):
            return enter
        # Join the container's root cgroups first (see _record_root_cgroups).
        join = 'for procs in "$@"; do [ "$procs" = -- ] && break; echo $$ > "$procs"; shift; done'
        return ["sh", "-ec", f'{join}; shift; exec "$@"', "testbed", *roots, "--", *enter]

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


def _own_cgroups() -> dict[str, str]:
    """Where this process sits in the host's cgroup trees that nspawn uses, mount point -> path.

    systemd-nspawn --keep-unit puts the container into <its own cgroup>/payload: two testbeds
    started from the same cgroup would share every cgroup (user@1000.service, ...), and a
    container on a pure cgroup2 tree then waits, on each stop, for the other's processes.
    """
    lines = Path("/proc/self/cgroup").read_text().splitlines()
    paths = {}
    for line in lines:
        _, controllers, path = line.split(":", 2)
        paths[controllers] = path
    if Path("/sys/fs/cgroup/cgroup.controllers").exists():  # a pure cgroup2 host
        return {"/sys/fs/cgroup": paths.get("", "/")}
    mounts = {}
    if "name=systemd" in paths and Path("/sys/fs/cgroup/systemd/cgroup.procs").exists():
        mounts["/sys/fs/cgroup/systemd"] = paths["name=systemd"]
    if "" in paths and Path("/sys/fs/cgroup/unified/cgroup.controllers").exists():
        mounts["/sys/fs/cgroup/unified"] = paths[""]
    return mounts


def _remove_cgroups(directories: Sequence[str]) -> None:
    """Remove a testbed's own cgroups, leaves first; a cgroup still in use stays."""
    for directory in directories:
        for root, _, _ in sorted(os.walk(directory), key=lambda entry: -len(entry[0])):
            with contextlib.suppress(OSError):
                os.rmdir(root)


@contextlib.contextmanager
def _flock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _running_state(state_file: Path) -> dict[str, object] | None:
    """The state a state file records, if its nspawn still runs."""
    try:
        state: dict[str, object] = json.loads(state_file.read_text())
    except (OSError, ValueError):
        return None
    pid = state.get("nspawn_pid")
    if not isinstance(pid, int) or not _alive(pid) or _comm(pid) != "systemd-nspawn":
        return None
    return state


def _stop(state_file: Path) -> bool:
    """Stop the testbed a state file records; False if none ran."""
    state = _running_state(state_file)
    if state is None:
        return False
    pid = state["nspawn_pid"]
    assert isinstance(pid, int)
    os.kill(pid, signal.SIGTERM)  # nspawn asks the container's systemd to power off
    deadline = time.monotonic() + 60
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)
    cgroups = state.get("cgroups")
    if isinstance(cgroups, list):
        _remove_cgroups([str(path) for path in cgroups])
    state_file.unlink(missing_ok=True)
    return True


def _kill_orphaned_init(state_file: Path) -> None:
    """A container whose nspawn died (e.g. SIGKILLed with a session) must not share the tree."""
    try:
        state = json.loads(state_file.read_text())
    except (OSError, ValueError):
        return
    init_pid = state.get("init_pid")
    if isinstance(init_pid, int) and _alive(init_pid) and _comm(init_pid) == "systemd":
        log(f"killing the orphaned container init {init_pid}")
        os.kill(init_pid, signal.SIGKILL)  # PID 1 of its namespace: takes the rest along
        deadline = time.monotonic() + 10
        while _alive(init_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
    cgroups = state.get("cgroups")
    if isinstance(cgroups, list):
        _remove_cgroups([str(path) for path in cgroups])
    state_file.unlink(missing_ok=True)


def _retire_single_suite_layout(cache: Path) -> None:
    """Before suites, the one (trixie) testbed lived in CACHE itself: stop it, remove its tree."""
    leftovers = [*cache.glob("tree-*"), *cache.glob("tree.staging"), cache / "state.json"]
    if not any(path.exists() for path in leftovers):
        return
    with _flock(cache / "lock"):  # the lock the single-suite driver took
        if _stop(cache / "state.json"):
            log(f"stopped the testbed of the single-suite layout in {cache}")
        _kill_orphaned_init(cache / "state.json")
        for path in [*cache.glob("tree-*"), *cache.glob("tree.staging")]:
            log(f"removing a tree of the single-suite layout: {path}")
            Testbed._remove_tree(path)
        (cache / "boot.log").unlink(missing_ok=True)


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
