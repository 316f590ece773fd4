"""Quadlets of a service user: install, list, remove, start, stop.

Files go to ~USER/.config/containers/systemd/, written by USER itself (a forked child
that dropped to it: root never follows the user's links there). Before anything is
installed, podman's own generator validates the new files together with those already
there (`quadlet -dryrun -user`); its output also says which units each file becomes.
The user's manager is reloaded and driven over D-Bus.

On podman >= 5.6 the files are installed, listed and removed by podman's own
`podman quadlet install/list/rm`, run as the user the way `runas-podman podman` runs it
(a transient unit with User=, its output captured), after the same validation: the
generator's dry run and the OpenFile= rule come first, so a bad file reaches podman never.
podman 5.8 groups the files of one `install` call into an application (a `.NAME.app`
list) that `rm` removes whole, and leaves files installed when its own check fails:
so each file gets its own call (what others refer to first), with --replace (as the
project's installer replaces), and a failure puts back what was there before.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from runas_podman.core.errors import RunasError, one_line
from runas_podman.core.model import ServiceUser
from runas_podman.host.privileges import run_as

if TYPE_CHECKING:
    from runas_podman.bus.systemd_bus import SystemdBus

QUADLET_SINCE = (4, 4)  # podman's Quadlet generator
PODMAN_QUADLET_SINCE = (5, 6)  # podman quadlet install/list/rm
# Installed first: what other files refer to (Network=, Volume=, Image=, Pod=).
_INSTALL_ORDER = (".network", ".volume", ".image", ".build", ".pod", ".container", ".kube")
GENERATORS = ("/usr/libexec/podman/quadlet", "/usr/lib/podman/quadlet")
SUFFIXES = (".container", ".pod", ".network", ".volume", ".kube", ".image", ".build")
_UNIT_HEADER = re.compile(r"^---(?P<unit>[^\s]+)---$")
_SOURCE = re.compile(r"^SourcePath=(?P<path>.+)$")
_GENERATOR_PREFIX = re.compile(r"^quadlet-generator\[\d+\]: ")


def quadlet_dir(user: ServiceUser) -> Path:
    return Path(user.home) / ".config/containers/systemd"


def units_by_source(dryrun_output: str) -> dict[str, list[str]]:
    """{quadlet file name: [generated unit names]} from the generator's dry-run output."""
    units: dict[str, list[str]] = {}
    current: str | None = None
    for line in dryrun_output.splitlines():
        header = _UNIT_HEADER.match(line)
        if header:
            current = header.group("unit")
            continue
        source = _SOURCE.match(line)
        if source and current is not None:
            units.setdefault(os.path.basename(source.group("path")), []).append(current)
            current = None
    return units


def generator_error(stderr: str) -> str:
    """The generator's own complaint, without its log prefix and the 'Loading' chatter."""
    lines = [_GENERATOR_PREFIX.sub("", line) for line in stderr.splitlines()]
    complaints = [
        line for line in lines
        if line and not line.startswith("Loading source unit")
        # podman >= 5.6 ends with a summary line: the complaint itself comes before it
        and not line.startswith("processing encountered some errors")
    ]  # fmt: skip
    return complaints[-1] if complaints else "the quadlet generator failed"


def podman_version() -> tuple[tuple[int, int], str] | None:
    """(major, minor) and the text of `podman --version`, or None without podman."""
    podman = shutil.which("podman", path="/usr/local/bin:/usr/bin:/bin")
    if podman is None:
        return None
    text = subprocess.run([podman, "--version"], capture_output=True, text=True).stdout
    found = re.search(r"([0-9]+)\.([0-9]+)", text)
    if found is None:
        return None
    return (int(found.group(1)), int(found.group(2))), text.strip()


def podman_manages_quadlets() -> bool:
    """Whether this podman has `podman quadlet install/list/rm` (5.6 and newer)."""
    found = podman_version()
    return found is not None and found[0] >= PODMAN_QUADLET_SINCE


def _generator() -> str:
    for path in GENERATORS:
        if os.access(path, os.X_OK):
            return path
    from runas_podman.host.hints import install_hint

    found = podman_version()
    if found is not None and found[0] < QUADLET_SINCE:
        raise RunasError(
            f"Quadlets need podman {QUADLET_SINCE[0]}.{QUADLET_SINCE[1]} or newer; this "
            f"host has {found[1]} (run containers with runas-podman podman instead)"
        )
    raise RunasError(f"podman's quadlet generator is not installed: {install_hint('podman')}")


def generate(files: Mapping[str, str]) -> dict[str, list[str]]:
    """Validate quadlet files ({name: text}) together with podman's generator (dry run).

    Root's own copies in a private directory: nothing of the user's is followed.
    """
    with tempfile.TemporaryDirectory(prefix="runas-quadlet-") as staging:
        for name, text in files.items():
            Path(staging, name).write_text(text)
        result = subprocess.run(
            [_generator(), "-dryrun", "-user"],
            env={"QUADLET_UNIT_DIRS": staging, "PATH": "/usr/bin:/bin"},
            capture_output=True, text=True,
        )  # fmt: skip
    if result.returncode != 0:
        raise RunasError(
            f"rejected by podman's quadlet generator: {generator_error(result.stderr)}"
        )
    return units_by_source(result.stdout)


def installed(user: ServiceUser) -> dict[str, str]:
    """The user's quadlet files {name: text}, read as the user."""
    directory = quadlet_dir(user)

    def read() -> bytes:
        files = {}
        if directory.is_dir():
            for path in sorted(directory.iterdir()):
                if path.suffix in SUFFIXES and path.is_file():
                    files[path.name] = path.read_text()
        return json.dumps(files).encode()

    found: dict[str, str] = json.loads(run_as(user, read, f"reading {directory}"))
    return found


def install(user: ServiceUser, files: Sequence[Path]) -> dict[str, list[str]]:
    """Validate, then install all of `files` (or none). Returns their generated units."""
    new: dict[str, str] = {}
    for file in files:
        if file.suffix not in SUFFIXES:
            raise RunasError(f"{file}: not a quadlet file (one of {', '.join(SUFFIXES)})")
        try:
            new[file.name] = file.read_text()
        except OSError as error:
            raise RunasError(f"{file}: {error.strerror}") from None
    for name, text in new.items():
        check_sections(name, text)
        check_cgroup_trap(user, name, text)
        check_open_files(user, name, text)
    before = installed(user)
    units = generate({**before, **new})
    if podman_manages_quadlets():
        _podman_install(user, new, before)
        return {name: units.get(name, []) for name in new}
    directory = quadlet_dir(user)

    def write() -> bytes:
        directory.mkdir(parents=True, exist_ok=True)
        for name, text in new.items():
            staging = directory / f".{name}.runas-new"
            staging.unlink(missing_ok=True)
            with open(staging, "x") as out:  # O_EXCL: never through a planted link
                out.write(text)
            os.replace(staging, directory / name)  # whole or not at all
        return b""

    run_as(user, write, f"installing into {directory}")
    return {name: units.get(name, []) for name in new}


def podman_as(user: ServiceUser, args: Sequence[str]) -> tuple[int, str, str]:
    """podman_as_async() in a loop of its own, for callers that have none."""
    return asyncio.run(podman_as_async(user, args))


async def podman_as_async(user: ServiceUser, args: Sequence[str]) -> tuple[int, str, str]:
    """`podman ARGS` as USER, as `runas-podman podman -u USER` runs it (a transient unit
    on PID 1 with User=, or the user's own manager when the user runs this), with its
    stdout and stderr captured: (status, stdout, stderr)."""
    from runas_podman.bus.systemd_bus import connected
    from runas_podman.core.model import Via, choose_manager
    from runas_podman.core.plan import build_service_plan, service_unit_name
    from runas_podman.host import lookup
    from runas_podman.run.launcher import run_plan
    from runas_podman.run.session import connect_manager

    manager = choose_manager(Via.AUTO, os.geteuid(), user.uid)
    plan = build_service_plan(
        user=user,
        argv=[lookup.executable("podman", "podman"), *args],
        manager=manager,
        unit=service_unit_name(None),
    )
    null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    out = os.memfd_create("podman-stdout")
    err = os.memfd_create("podman-stderr")
    try:
        async with connected(connect_manager(plan)) as bus:
            status = await run_plan(plan, bus, stdio_fds=(null, out, err))
        texts = []
        for fd in (out, err):
            os.lseek(fd, 0, os.SEEK_SET)
            with os.fdopen(os.dup(fd), "rb") as captured:
                texts.append(captured.read().decode(errors="replace"))
    finally:
        for fd in (null, out, err):
            os.close(fd)
    return status, texts[0], texts[1]


def _why(status: int, stderr: str) -> str:
    """podman's own complaint (not its closing summary line), or its exit status."""
    lines = [line.removeprefix("Error: ").strip() for line in stderr.splitlines() if line.strip()]
    complaints = [
        line for line in lines if not line.startswith(("errors occurred", "some quadlets"))
    ]
    return (complaints or lines or [f"exit status {status}"])[0]


def _podman_install(user: ServiceUser, new: Mapping[str, str], before: Mapping[str, str]) -> None:
    """`podman quadlet install --replace` as USER, one call per file (see the module's
    doc), from copies the user writes in its runtime directory; on a failure, what was
    there before is put back and nothing new stays."""
    runtime = user.runtime_dir

    def stage() -> bytes:
        staging = tempfile.mkdtemp(prefix="runas-quadlet-", dir=runtime)
        for name, text in new.items():
            Path(staging, name).write_text(text)
        return staging.encode()

    staging = run_as(user, stage, f"staging the files in {runtime}").decode()
    order = sorted(new, key=lambda name: _INSTALL_ORDER.index(Path(name).suffix))
    done: list[str] = []
    try:
        for index, name in enumerate(order):
            last = index == len(order) - 1
            status, _out, err = podman_as(
                user, ["quadlet", "install", "--replace",
                       f"--reload-systemd={'true' if last else 'false'}", f"{staging}/{name}"],
            )  # fmt: skip
            done.append(name)
            if status != 0:
                raise RunasError(
                    f"podman quadlet install {name} failed as {user.name}: "
                    f"{_why(status, err)}; nothing was installed"
                )
    except BaseException:
        _restore(user, done, before)
        raise
    finally:

        def clean() -> bytes:
            shutil.rmtree(staging, ignore_errors=True)
            return b""

        run_as(user, clean, f"removing {staging}")


def _restore(user: ServiceUser, names: Sequence[str], before: Mapping[str, str]) -> None:
    """Put back the files `names` had before an install (or remove them), as the user."""
    directory = quadlet_dir(user)

    def put_back() -> bytes:
        for name in names:
            (directory / f".{name}.app").unlink(missing_ok=True)
            if name in before:
                staging = directory / f".{name}.runas-old"
                staging.unlink(missing_ok=True)
                with open(staging, "x") as out:
                    out.write(before[name])
                os.replace(staging, directory / name)
            else:
                (directory / name).unlink(missing_ok=True)
        return b""

    run_as(user, put_back, f"restoring {directory}")
    with contextlib.suppress(RunasError, OSError):
        asyncio.run(_reload(user))  # podman may have reloaded with a file now gone


async def _reload(user: ServiceUser) -> None:
    from runas_podman.bus.systemd_bus import connected
    from runas_podman.bus.user_bus import connect_user_manager

    async with connected(connect_user_manager(user, launch=False)) as bus:
        await bus.reload()


# --- traps of the host that make a valid Quadlet fail -------------------------------

CGROUP_DROP_IN = "/etc/containers/systemd/users/{uid}/container.d/10-cgroup-v1.conf"
_CGROUPS_ARG = re.compile(r"^\s*PodmanArgs\s*=.*--cgroups[= ](enabled|disabled|no-conmon)",
                          re.MULTILINE)  # fmt: skip


def cgroup_v2() -> bool:
    try:
        with open("/proc/self/mounts") as mounts:
            kinds = [line.split()[2] for line in mounts if line.split()[1:2] == ["/sys/fs/cgroup"]]
    except OSError:
        return True  # cannot tell: no trap claimed
    return kinds[-1:] == ["cgroup2"]


def cgroup_drop_in(user: ServiceUser) -> str | None:
    """A drop-in for USER's .container files that turns --cgroups=split off, or None."""
    directories = [Path(f"/etc/containers/systemd/users/{user.uid}/container.d"),
                   Path("/etc/containers/systemd/users/container.d"),
                   quadlet_dir(user) / "container.d"]  # fmt: skip
    for directory in directories:
        try:
            for path in sorted(directory.glob("*.conf")):
                if _CGROUPS_ARG.search(path.read_text()):
                    return str(path)
        except OSError:
            continue
    return None


def cgroup_trap(user: ServiceUser) -> str | None:
    """Why USER's Quadlet containers would fail on this host, or None: Quadlet runs them
    with --cgroups=split, which rootless podman cannot do on a cgroup v1 (hybrid) layout."""
    if cgroup_v2() or cgroup_drop_in(user) is not None:
        return None
    return (
        "this host has the cgroup v1 (hybrid) layout, where Quadlet's default "
        "--cgroups=split fails (podman 5: 'could not find cgroup mount in "
        '"/proc/self/cgroup"\')'
    )


def cgroup_fix(user: ServiceUser) -> str:
    """The command that installs the drop-in for USER (it works as printed, as root)."""
    path = CGROUP_DROP_IN.format(uid=user.uid)
    return (f"mkdir -p {os.path.dirname(path)} && printf '[Container]\\nPodmanArgs="
            f"--cgroups=enabled\\n' > {path}")  # fmt: skip


def check_cgroup_trap(user: ServiceUser, name: str, text: str) -> None:
    """Refuse a .container that would fail on this host, unless it says --cgroups itself."""
    if not name.endswith(".container") or _CGROUPS_ARG.search(text):
        return
    trap = cgroup_trap(user)
    if trap is not None:
        raise RunasError(
            f"{name}: {trap}; add PodmanArgs=--cgroups=enabled under [Container], or for all "
            f"of {user.name}'s Quadlets: {cgroup_fix(user)}"
        )


# The sections a Quadlet file may have (podman-systemd.unit(5)): systemd and the generator
# skip any other with a log line nobody reads, so a typo'd [Servce] silently loses its keys.
SECTIONS = ("Unit", "Install", "Service", "Quadlet", "Container", "Pod", "Network", "Volume",
            "Kube", "Image", "Build", "Artifact")  # fmt: skip
_SECTION = re.compile(r"^\s*\[(?P<name>[^\]]*)\]\s*$")


def check_sections(name: str, text: str) -> None:
    """Refuse a section neither systemd nor Quadlet knows, naming its line (and the
    section meant, when one is close)."""
    import difflib

    for number, line in enumerate(text.splitlines(), 1):
        match = _SECTION.match(line)
        if match is None or match["name"] in SECTIONS or match["name"].startswith("X-"):
            continue
        close = difflib.get_close_matches(match["name"], SECTIONS, n=1)
        meant = f": did you mean [{close[0]}]?" if close else ""
        raise RunasError(
            f"{name} line {number}: unknown section [{one_line(match['name'])}], which systemd "
            f"and Quadlet would ignore with all its keys{meant} (X-... for your own)"
        )


def open_file_paths(text: str) -> list[str]:
    """The paths of a unit file's OpenFile= lines (systemd's escaping of ':' undone)."""
    paths = []
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key.strip() == "OpenFile" and value.strip():
            field = re.split(r"(?<!\\):", value.strip(), maxsplit=1)[0]
            paths.append(field.replace("\\x3a", ":").replace("\\\\", "\\"))
    return paths


def check_open_files(user: ServiceUser, name: str, text: str) -> None:
    """The rule of --open-file for a Quadlet's OpenFile= (docs/secrets.md): an absolute
    path, without specifiers (systemd drops such a setting silently), that nobody but
    root and the service user controls, so the file opened is the one installed for."""
    from runas_podman.host.safepath import find_untrusted

    for path in open_file_paths(text):
        if not path.startswith("/") or "%" in path:
            raise RunasError(
                f"{name}: OpenFile={path}: give an absolute path without specifiers "
                "(systemd ignores an OpenFile= it cannot resolve, and the fd never arrives)"
            )
        untrusted = find_untrusted(path, {0, user.uid})
        if untrusted is not None:
            raise RunasError(
                f"{name}: OpenFile={path}: {untrusted.component} {untrusted.problem}, who could "
                f"choose which file {user.name}'s manager opens; keep the secret where only "
                f"root or {user.name} can change the path (e.g. /etc/runas-podman/secrets)"
            )


# Settings by which a Quadlet names another Quadlet file (podman-systemd.unit(5)):
# Network=db.network, Volume=data.volume:/srv, Mount=...source=data.volume, Pod=web.pod,
# Image=app.image / app.build.
_REFERRING_KEYS = frozenset({"Network", "Volume", "Mount", "Pod", "Image"})
_QUADLET_NAME = re.compile(r"[\w@.-]+\.(?:network|volume|pod|image|build)\b")


def references(text: str) -> set[str]:
    """The Quadlet files a Quadlet's text names in its settings."""
    found: set[str] = set()
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key.strip() in _REFERRING_KEYS:
            found.update(_QUADLET_NAME.findall(value))
    return found


def dependents(files: Mapping[str, str], removing: Sequence[str]) -> list[tuple[str, str]]:
    """(file that stays, file it needs) for each file being removed that another needs."""
    gone = set(removing)
    return [(name, needed) for name, text in sorted(files.items()) if name not in gone
            for needed in sorted(references(text) & gone)]  # fmt: skip


def check_dependents(user: ServiceUser, names: Sequence[str]) -> None:
    """Refuse to remove a file another of USER's Quadlets still names (its units would
    fail at their next start, with the generator's error in the journal)."""
    needed = dependents(installed(user), names)
    if needed:
        user_of, name = needed[0]
        raise RunasError(
            f"{name} is used by {user_of} of {user.name}: remove both together "
            f"(runas-podman quadlet remove -u {user.name} {user_of} {name}), or give --force"
        )


def remove(user: ServiceUser, names: Sequence[str]) -> bool:
    """remove_files() in a loop of its own, for callers that have none."""
    return asyncio.run(remove_files(user, names))


async def remove_files(user: ServiceUser, names: Sequence[str]) -> bool:
    """Delete the files `names`; True when podman did it (and reloaded the manager)."""
    if podman_manages_quadlets():
        status, _out, err = await podman_as_async(user, ["quadlet", "rm", "--force", *names])
        if status != 0:
            raise RunasError(f"podman quadlet rm failed as {user.name}: {_why(status, err)}")
        return True
    directory = quadlet_dir(user)

    def unlink() -> bytes:
        for name in names:
            (directory / name).unlink(missing_ok=True)
        return b""

    run_as(user, unlink, f"removing from {directory}")
    return False


def listed(user: ServiceUser) -> list[tuple[str, str, str]] | None:
    """(file, unit, state) of the user's own Quadlets from `podman quadlet list` (podman >=
    5.6; the files in ~/.config/containers/systemd/ only, as install and remove manage
    them), or None where podman has no such command."""
    if not podman_manages_quadlets():
        return None
    status, out, err = podman_as(user, ["quadlet", "list", "--format", "json"])
    if status != 0:
        raise RunasError(f"podman quadlet list failed as {user.name}: {_why(status, err)}")
    directory = str(quadlet_dir(user))
    rows = []
    for entry in json.loads(out or "[]"):
        if os.path.dirname(entry.get("Path", "")) != directory:
            continue
        state = str(entry.get("Status", ""))
        rows.append((str(entry["Name"]), str(entry.get("UnitName", "")),
                     state.split("/")[0] if "/" in state else "inactive"))  # fmt: skip
    return sorted(rows)


def resolve(user: ServiceUser, names: Sequence[str]) -> list[tuple[str, list[str]]]:
    """Installed files for NAMEs (a file name like web.container, its stem, or a unit name)."""
    files = installed(user)
    units = generate(files) if files else {}
    chosen = []
    for name in names:
        match = next(
            (f for f in files if name in (f, Path(f).stem) or name in units.get(f, [])), None
        )
        if match is None:
            raise RunasError(
                f"{user.name} has no quadlet '{name}' (runas-podman quadlet list -u {user.name})"
            )
        chosen.append((match, units.get(match, [])))
    return chosen


# --- driving the units on the user's manager --------------------------------------


def user_journal(user: ServiceUser, unit: str) -> str:
    """The command that shows UNIT's last lines (journalctl's --user -M USER@ needs a
    machine root cannot name: `logs` reads the fields, manage/unit_logs.py)."""
    return f"runas-podman logs -u {user.name} -n 20 {unit}"


# What each job leaves a unit in when it did what was asked (a oneshot that ran to
# completion is inactive after its start; one that failed is failed).
ASKED_STATE = {"StartUnit": ("active", "inactive"), "RestartUnit": ("active", "inactive"),
               "StopUnit": ("inactive",)}  # fmt: skip


async def run_jobs(user: ServiceUser, method: str, units: list[str]) -> list[tuple[str, str]]:
    """Each unit's job on USER's manager, waited for; (unit, the state it settled in)."""
    from runas_podman.bus.systemd_bus import connected
    from runas_podman.bus.user_bus import connect_user_manager

    async with connected(connect_user_manager(user, launch=False)) as bus:
        results = []
        for unit in units:
            done = await bus.run_job(method, unit)
            if done.result != "done":
                raise RunasError(
                    f"{unit} of {user.name}: {method} {done.result}: {user_journal(user, unit)}"
                )
            state = await bus.unit_state(unit)
            if method != "StopUnit":
                state = await _settled(bus, unit, state)
            results.append((unit, state))
        return results


# A started unit must stay up this long to count as started: a Quadlet container is
# "active" once conmon has it running, and may die a moment later (issue 22).
SETTLE_SECONDS = 2.0


async def _settled(bus: SystemdBus, unit: str, state: str) -> str:
    """UNIT's state once it has stayed active for SETTLE_SECONDS, or the one it fell to."""
    deadline = asyncio.get_running_loop().time() + SETTLE_SECONDS
    while state == "active" and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.2)
        state = await bus.unit_state(unit)
    return state


async def reload_manager(user: ServiceUser) -> None:
    from runas_podman.bus.systemd_bus import connected
    from runas_podman.bus.user_bus import connect_user_manager

    async with connected(connect_user_manager(user, launch=False)) as bus:
        await bus.reload()


async def unit_states(user: ServiceUser, units: list[str]) -> dict[str, str]:
    from runas_podman.bus.systemd_bus import connected
    from runas_podman.bus.user_bus import connect_user_manager

    async with connected(connect_user_manager(user, launch=False)) as bus:
        return {unit: await bus.unit_state(unit) for unit in units}


async def drive(
    user: ServiceUser, method: str, names: Sequence[str]
) -> list[tuple[str, str, str | None]]:
    """Start or stop the main units of USER's Quadlets NAMES: (unit, state, what is wrong
    when the state is not the one asked, with where to read why)."""
    # A file's main unit is the first the generator names (a .pod's is NAME-pod.service).
    units = [us[0] for _f, us in resolve(user, names) if us]
    results = []
    for unit, state in await run_jobs(user, method, units):
        problem = None
        if state not in ASKED_STATE[method]:  # e.g. a container that died at once: failed
            problem = f"not {' or '.join(ASKED_STATE[method])}: {user_journal(user, unit)}"
        results.append((unit, state, problem))
    return results
