"""Quadlets of a service user: install, list, remove, start, stop.

Files go to ~USER/.config/containers/systemd/, written by USER itself (a forked child
that dropped to it: root never follows the user's links there). Before anything is
installed, podman's own generator validates the new files together with those already
there (`quadlet -dryrun -user`); its output also says which units each file becomes.
The user's manager is reloaded and driven over D-Bus.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from .errors import RunasError
from .model import ServiceUser
from .privileges import run_as

QUADLET_SINCE = (4, 4)  # podman's Quadlet generator
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


def _generator() -> str:
    for path in GENERATORS:
        if os.access(path, os.X_OK):
            return path
    from .hints import install_hint

    podman = shutil.which("podman", path="/usr/local/bin:/usr/bin:/bin")
    if podman is not None:
        version = subprocess.run([podman, "--version"], capture_output=True, text=True).stdout
        found = re.search(r"([0-9]+)\.([0-9]+)", version)
        if found and (int(found.group(1)), int(found.group(2))) < QUADLET_SINCE:
            raise RunasError(
                f"Quadlets need podman {QUADLET_SINCE[0]}.{QUADLET_SINCE[1]} or newer; this "
                f"host has {version.strip()} (run containers with runas-podman podman instead)"
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
        check_open_files(user, name, text)
    units = generate({**installed(user), **new})
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
    from .safepath import find_untrusted

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


def remove(user: ServiceUser, names: Sequence[str]) -> None:
    directory = quadlet_dir(user)

    def unlink() -> bytes:
        for name in names:
            (directory / name).unlink(missing_ok=True)
        return b""

    run_as(user, unlink, f"removing from {directory}")


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
