"""What install owns on a host and how a change is made: the manifest of files written
(/var/lib/runas-podman/installed), the target root, the plan of an install or uninstall
(each file current, new, updated, refused or removed), and carrying a plan out."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import stat as statmod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import click

from runas_podman.core.errors import (
    RunasError,
    UsageError,
)

MANIFEST = "/var/lib/runas-podman/installed"
DEFAULT_PREFIX = "/usr/local"
UNIT_DIR = "/etc/systemd/system"
BROKER_SOCKET_UNIT = "runas-broker.socket"
BROKER_UNITS = (BROKER_SOCKET_UNIT, "runas-broker@.service")
LAUNCH_SOCKET_UNIT = "runas-podman-launch.socket"
LAUNCH_UNITS = (LAUNCH_SOCKET_UNIT, "runas-podman-launch.service")
# polkit reads action files from this one directory (no /usr/local, no /etc): the
# package's runas_podman/data/polkit/*.policy are installed here.
POLKIT_ACTIONS = "/usr/share/polkit-1/actions"


# Components: each file in the manifest belongs to one.
PAM, BROKER, POLKIT, MAN, COMPLETION, STATE, EMPOWER, LAUNCH, COMMANDS = (
    "pam",
    "broker",
    "polkit",
    "man",
    "completion",
    "state",
    "empower",
    "launch",
    "commands",
)
COMPONENTS = (PAM, BROKER, POLKIT, MAN, COMPLETION, STATE, EMPOWER, LAUNCH, COMMANDS)

# Files runas-podman wrote before the manifest existed carry these first lines: such a
# file is ours to update even without a manifest entry.
LEGACY_HEADERS = {
    PAM: ('# PAM service "runas" (runas-podman',),
    BROKER: (
        "# The root broker of runas's wheel+PAM path (runas-podman)",
        "# One connection of runas-broker.socket",
    ),
}


@dataclass(frozen=True)
class Artifact:
    """One file to install: where (a path on the target), its text, and for the report
    what it is (e.g. the PAM stack chosen)."""

    component: str
    path: str
    text: str
    detail: str = ""
    mode: int = 0o644
    # A symbolic link there to this file is ours to replace (the console script a README
    # step linked into PREFIX/bin, which the command written there takes over).
    replaces_link_to: str = ""

    @property
    def data(self) -> bytes:
        return self.text.encode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- the manifest ---------------------------------------------------------------------------

_MANIFEST_HEADER = (
    "# What `runas-podman install` wrote: `runas-podman uninstall` removes exactly this.",
    "# COMPONENT SHA256 PATH for a file (removed only while it still has that SHA-256),",
    "# COMPONENT dir PATH for a directory install created (removed if empty). Paths are",
    "# the target's (without --root). Written by runas-podman; do not edit.",
)


@dataclass
class Manifest:
    """The files (path -> (component, sha256)) and directories (path -> component)."""

    files: dict[str, tuple[str, str]] = field(default_factory=dict)
    dirs: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Manifest:
        manifest = cls()
        for line in text.splitlines():
            if not line.strip() or line.startswith("#"):
                continue
            parts = line.split(" ", 2)
            if len(parts) != 3 or parts[0] not in COMPONENTS or not parts[2].startswith("/"):
                raise ValueError(f"not a manifest line: {line[:80]!r}")
            component, digest, path = parts
            if digest == "dir":
                manifest.dirs[path] = component
            elif len(digest) == 64 and all(c in "0123456789abcdef" for c in digest):
                manifest.files[path] = (component, digest)
            else:
                raise ValueError(f"not a manifest line: {line[:80]!r}")
        return manifest

    def render(self) -> str:
        lines = list(_MANIFEST_HEADER)
        lines += [f"{component} dir {path}" for path, component in sorted(self.dirs.items())]
        lines += [f"{c} {digest} {path}" for path, (c, digest) in sorted(self.files.items())]
        return "\n".join(lines) + "\n"

    def __bool__(self) -> bool:
        return bool(self.files or self.dirs)


class Target:
    """The system installed into: / or, with --root, a staging directory."""

    def __init__(self, root: str = "/") -> None:
        if not root.startswith("/") or not is_plain_path(root):
            raise UsageError(f"--root {root!r}: give an absolute path")
        self.root = os.path.normpath(root)

    @property
    def is_live(self) -> bool:
        """Installing onto the running system (services may be started)."""
        return self.root == "/"

    def host(self, path: str) -> str:
        """Where the target's absolute `path` is on this machine."""
        return path if self.is_live else os.path.join(self.root, path.lstrip("/"))

    def read_manifest(self) -> Manifest:
        try:
            with open(self.host(MANIFEST)) as file:
                return Manifest.parse(file.read())
        except FileNotFoundError:
            return Manifest()
        except OSError as error:
            raise RunasError(f"cannot read {self.host(MANIFEST)}: {error.strerror}") from None
        except ValueError as error:
            raise RunasError(f"{self.host(MANIFEST)} is damaged: {error}") from None

    def write_manifest(self, manifest: Manifest) -> None:
        path = self.host(MANIFEST)
        if not manifest:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            return
        write_file(path, manifest.render().encode())

    @contextlib.contextmanager
    def locked(self, manifest: Manifest | None = None) -> Iterator[None]:
        """One install or uninstall at a time: an flock on the manifest's directory,
        created if need be (and recorded in `manifest`, when given, for uninstall)."""
        directory = os.path.dirname(MANIFEST)
        if manifest is not None:
            for created in make_dirs(self, directory):
                manifest.dirs[created] = STATE
        try:
            fd = os.open(self.host(directory), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            yield  # uninstall with nothing installed: nothing to lock
            return
        except OSError as error:
            raise RunasError(f"cannot open {self.host(directory)}: {error.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


# --- files ----------------------------------------------------------------------------------


def _hint() -> str:
    return " (run as root)" if os.geteuid() != 0 else ""


def make_dirs(target: Target, path: str) -> list[str]:
    """Create the target's directory `path` and missing parents (0755); the ones created."""
    missing = []
    current = path
    while current != "/" and not os.path.isdir(target.host(current)):
        missing.append(current)
        current = os.path.dirname(current)
    for directory in reversed(missing):
        try:
            os.mkdir(target.host(directory), 0o755)
            os.chmod(target.host(directory), 0o755)  # whatever the umask
        except FileExistsError:
            pass
        except OSError as error:
            raise RunasError(
                f"cannot create {target.host(directory)}: {error.strerror}{_hint()}"
            ) from None
    return missing


def write_file(path: str, data: bytes, mode: int = 0o644) -> None:
    """Write `data` to `path` whole: a fresh file (O_EXCL, never through a planted link)
    renamed over it."""
    directory, name = os.path.split(path)
    staging = os.path.join(directory, f".{name}.runas-new")
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staging)
        fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        with os.fdopen(fd, "wb") as new:
            new.write(data)
            os.fchmod(new.fileno(), mode)
        os.replace(staging, path)
    except OSError as error:
        with contextlib.suppress(OSError):
            os.unlink(staging)
        raise RunasError(f"cannot install {path}: {error.strerror}{_hint()}") from None


class NotAFile(Exception):
    """The path exists but is no regular file (a directory, a symlink, a device)."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


def read_existing(path: str) -> bytes | None:
    """The content of regular file `path`, None if there is none; NotAFile otherwise."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise RunasError(f"cannot examine {path}: {error.strerror}") from None
    if statmod.S_ISDIR(info.st_mode):
        raise NotAFile("a directory")
    if statmod.S_ISLNK(info.st_mode):
        raise NotAFile("a symbolic link")
    if not statmod.S_ISREG(info.st_mode):
        raise NotAFile("not a regular file")
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as error:
        raise RunasError(f"cannot read {path}: {error.strerror}") from None


# --- planning -------------------------------------------------------------------------------

# verb -> (what the report says when done, with --dry-run)
WORDS = {
    "install": ("installed", "would install"),
    "update": ("updated", "would update"),
    "replace": ("replaced", "would replace"),
    "current": ("up to date", "up to date"),
    "remove": ("removed", "would remove"),
    "gone": ("already removed", "already removed"),
}


@dataclass(frozen=True)
class Action:
    verb: str  # a key of WORDS
    path: str  # the target's path
    component: str
    artifact: Artifact | None = None
    note: str = ""

    def line(self, target: Target, dry_run: bool) -> str:
        done, would = WORDS[self.verb]
        detail = self.artifact.detail if self.artifact is not None else ""
        extra = "".join(f" ({text})" for text in (detail, self.note) if text)
        return f"{would if dry_run else done} {target.host(self.path)}{extra}"


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)


def plan_install(
    artifacts: Sequence[Artifact],
    manifest: Manifest,
    target: Target,
    force: bool,
    stale_scope: Callable[[str, str], bool] = lambda path, component: False,
) -> Plan:
    """What installing `artifacts` does to each file, and what it must refuse.

    `stale_scope(path, component)` says which manifest files no longer shipped are to be
    removed (e.g. the man page of a command that is gone, under the same prefix).
    """
    plan = Plan()
    planned = set()
    for artifact in artifacts:
        planned.add(artifact.path)
        host_path = target.host(artifact.path)
        try:
            current = read_existing(host_path)
        except NotAFile as not_a_file:
            if artifact.replaces_link_to and _links_to(host_path, artifact.replaces_link_to):
                plan.actions.append(Action("replace", artifact.path, artifact.component, artifact,
                                           note="was a link to the console script"))  # fmt: skip
            elif force and not_a_file.kind != "a directory":
                plan.actions.append(Action("replace", artifact.path, artifact.component, artifact))
            else:
                plan.refusals.append(
                    f"{host_path} is {not_a_file.kind}, not a file runas-podman installed"
                    + ("" if not_a_file.kind == "a directory" else ": --force to replace it")
                )
            continue
        recorded = manifest.files.get(artifact.path)
        if current is None:
            verb = "install"
        elif current == artifact.data:
            verb = "current"
        elif _ours(recorded, artifact.component, current):
            verb = "update"
        elif force:
            verb = "replace"
        elif recorded is not None:
            plan.refusals.append(
                f"{host_path} was changed since runas-podman installed it: --force to replace it"
            )
            continue
        else:
            plan.refusals.append(
                f"{host_path} exists and was not installed by runas-podman: --force to replace it"
            )
            continue
        plan.actions.append(Action(verb, artifact.path, artifact.component, artifact))
    for path, (component, digest) in sorted(manifest.files.items()):
        if path in planned or not stale_scope(path, component):
            continue
        removal = _plan_removal(path, component, digest, target, force=False)
        if isinstance(removal, Action):
            plan.actions.append(Action(removal.verb, path, component, note="no longer shipped"))
        # A stale file changed since it was installed is left alone (uninstall names it).
    return plan


def _links_to(path: str, wanted: str) -> bool:
    return os.path.islink(path) and os.path.realpath(path) == os.path.realpath(wanted)


def _ours(recorded: tuple[str, str] | None, component: str, current: bytes) -> bool:
    """Whether runas-podman wrote `current`: what the manifest recorded, or (before the
    manifest existed) a file with runas-podman's own header."""
    if recorded is not None:
        return sha256(current) == recorded[1]
    first = current.split(b"\n", 1)[0].decode("utf-8", "replace")
    return any(first.startswith(header) for header in LEGACY_HEADERS.get(component, ()))


def _plan_removal(
    path: str, component: str, digest: str, target: Target, force: bool
) -> Action | str:
    """The removal of one manifest file, or why it is refused."""
    host_path = target.host(path)
    try:
        current = read_existing(host_path)
    except NotAFile as not_a_file:
        return f"{host_path} is {not_a_file.kind} now, not the file runas-podman installed"
    if current is None:
        return Action("gone", path, component)
    if sha256(current) == digest or force:
        return Action("remove", path, component)
    return f"{host_path} was changed since runas-podman installed it: --force to remove it"


def plan_uninstall(manifest: Manifest, target: Target, force: bool) -> Plan:
    plan = Plan()
    for path, (component, digest) in sorted(manifest.files.items()):
        removal = _plan_removal(path, component, digest, target, force)
        if isinstance(removal, Action):
            plan.actions.append(removal)
        else:
            plan.refusals.append(removal)
    return plan


# --- carrying a plan out --------------------------------------------------------------------


def refuse(refusals: Sequence[str]) -> None:
    """One line on stderr per refusal (the last through RunasError, so the status is 125)."""
    if not refusals:
        return
    prog = _prog()
    for message in refusals[:-1]:
        click.echo(f"{prog}: {message}", err=True)
    raise RunasError(refusals[-1])


def _prog() -> str:
    context = click.get_current_context(silent=True)
    root = context.find_root() if context is not None else None
    return (root.info_name if root is not None else None) or "runas-podman"


def apply(plan: Plan, manifest: Manifest, target: Target, dry_run: bool) -> bool:
    """Print and (unless dry_run) carry out each action; True if anything changed."""
    changed = False
    for action in plan.actions:
        if not dry_run:
            if action.artifact is not None and action.verb != "current":
                for created in make_dirs(target, os.path.dirname(action.path)):
                    manifest.dirs[created] = action.component
                write_file(target.host(action.path), action.artifact.data, action.artifact.mode)
            elif action.verb == "remove":
                try:
                    os.unlink(target.host(action.path))
                except FileNotFoundError:
                    pass
                except OSError as error:
                    raise RunasError(
                        f"cannot remove {target.host(action.path)}: {error.strerror}{_hint()}"
                    ) from None
            if action.artifact is not None:
                manifest.files[action.path] = (action.component, sha256(action.artifact.data))
            else:
                manifest.files.pop(action.path, None)
        changed |= action.verb not in ("current", "gone")
        click.echo(action.line(target, dry_run))
    return changed


def remove_empty_dirs(
    manifest: Manifest,
    target: Target,
    dry_run: bool,
    removed: Iterable[str] = (),
    only: Iterable[str] = (),
) -> None:
    """Remove the directories install created (deepest first) once they are empty; a
    directory that holds files of others stays, and leaves the manifest.

    With `dry_run` nothing is removed: `removed` are the paths the run would have removed
    by then, and a directory holding nothing else counts as empty."""
    gone = set(removed)
    wanted = set(only)
    for path in sorted(manifest.dirs, key=lambda p: (-p.count("/"), p)):
        if wanted and manifest.dirs[path] not in wanted:
            continue
        if any(f.startswith(path + "/") and f not in gone for f in manifest.files):
            continue  # still holds files of ours
        host_path = target.host(path)
        try:
            entries = os.listdir(host_path)
        except FileNotFoundError:
            if not dry_run:
                del manifest.dirs[path]
            continue
        except OSError:
            continue
        if any(os.path.join(path, entry) not in gone for entry in entries):
            if not dry_run:
                del manifest.dirs[path]  # others use it too: no longer ours alone
            continue
        if dry_run:
            gone.add(path)
            click.echo(f"would remove {host_path}/")
            continue
        with contextlib.suppress(OSError):
            os.rmdir(host_path)
            click.echo(f"removed {host_path}/")
        del manifest.dirs[path]


# --- the commands ---------------------------------------------------------------------------


def is_plain_path(path: str) -> bool:
    """No control characters: one manifest line, one report line per path."""
    return path.isprintable()
