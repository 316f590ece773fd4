"""Quadlets of a service user: install, list, remove, start, stop.

Files go to ~USER/.config/containers/systemd/, owned by USER. Before anything is
installed, podman's own generator validates the new files together with those already
there (`quadlet -dryrun -user`); its output also says which units each file becomes.
The user's manager is reloaded and driven over D-Bus.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .errors import RunasError
from .plan import ServiceUser

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
    complaints = [line for line in lines if line and not line.startswith("Loading source unit")]
    return complaints[-1] if complaints else "the quadlet generator failed"


def _generator() -> str:
    for path in GENERATORS:
        if os.access(path, os.X_OK):
            return path
    raise RunasError("podman's quadlet generator is not installed: apt-get install podman")


def generate(files: Sequence[Path]) -> dict[str, list[str]]:
    """Validate `files` together with podman's generator (dry run): their units, or the error."""
    with tempfile.TemporaryDirectory(prefix="runas-quadlet-") as staging:
        for file in files:
            shutil.copy(file, os.path.join(staging, file.name))
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


def installed(user: ServiceUser) -> list[Path]:
    directory = quadlet_dir(user)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix in SUFFIXES and p.is_file())


def install(user: ServiceUser, files: Sequence[Path]) -> dict[str, list[str]]:
    """Validate, then install all of `files` (or none). Returns their generated units."""
    for file in files:
        if file.suffix not in SUFFIXES:
            raise RunasError(f"{file}: not a quadlet file (one of {', '.join(SUFFIXES)})")
        if not file.is_file():
            raise RunasError(f"{file}: no such file")
    names = {f.name for f in files}
    others = [p for p in installed(user) if p.name not in names]
    units = generate([*others, *files])
    directory = quadlet_dir(user)
    _make_user_dirs(user, directory)
    for file in files:
        _install_file(user, file, directory / file.name)
    return {f.name: units.get(f.name, []) for f in files}


def _make_user_dirs(user: ServiceUser, directory: Path) -> None:
    """Create the directory chain under the home as the user owns it."""
    home = Path(user.home)
    path = home
    for part in directory.relative_to(home).parts:
        path = path / part
        if not path.exists():
            path.mkdir(mode=0o755)
            os.chown(path, user.uid, user.gid)


def _install_file(user: ServiceUser, source: Path, target: Path) -> None:
    staging = target.with_name(f".{target.name}.runas-new")
    try:
        shutil.copyfile(source, staging)
        os.chown(staging, user.uid, user.gid)
        os.chmod(staging, 0o644)
        os.replace(staging, target)  # whole or not at all
    except OSError as error:
        staging.unlink(missing_ok=True)
        raise RunasError(f"cannot install {target}: {error.strerror}") from None


def resolve(user: ServiceUser, names: Sequence[str]) -> list[tuple[Path, list[str]]]:
    """Installed files for NAMEs (a file name like web.container, or a unit like web.service)."""
    files = installed(user)
    units = generate(files) if files else {}
    chosen = []
    for name in names:
        match = next(
            (f for f in files if name in (f.name, f.stem) or name in units.get(f.name, [])), None
        )
        if match is None:
            raise RunasError(
                f"{user.name} has no quadlet '{name}' (runas-podman quadlet list -u {user.name})"
            )
        chosen.append((match, units.get(match.name, [])))
    return chosen
