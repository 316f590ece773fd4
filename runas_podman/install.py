"""`runas-podman install` and `uninstall`: the files the host needs, written and removed
as their owner knows them.

What is installed, each file printed as it is written (`installed PATH`, `updated PATH`,
`up to date PATH`; with --dry-run `would install PATH`, ...):

- the PAM service file /etc/pam.d/runas (hostfiles.choose_pam_stack);
- with --broker, runas-broker.socket and runas-broker@.service in /etc/systemd/system,
  after the interpreter trust check (hostfiles.check_interpreter_trusted), then enabled
  and started over D-Bus;
- polkit action files (*.policy in the package's data/polkit/, to
  /usr/share/polkit-1/actions, the one directory polkit reads them from): the action
  org.runas_podman.run that the root broker checks for `runas --via-broker`;
- the man pages built into the wheel (data/man/man1/*.1, by hatch_build.py with
  click-man) to PREFIX/share/man/man1;
- the shell completions of runas-podman and runas for bash, zsh and fish under
  PREFIX/share (completion.completion_paths);
- with --empower, what the host lacks of runas --empower's group and polkit rule
  (empower.py): /etc/sysusers.d/runas-empower.conf (then systemd-sysusers creates the
  group; uninstall deletes it) and /etc/polkit-1/rules.d/49-runas-empower.rules.

Nothing is overwritten silently. The manifest, /var/lib/runas-podman/installed, records
every file written (with the SHA-256 of what was written) and every directory created.
A file is replaced when it is missing, when its content is what it would become, when it
still is what the manifest says was written, or when it is one that runas-podman wrote
before the manifest existed (its own header). Anything else (a file somebody else wrote,
or one changed since) is refused, one line naming it, unless --force; and nothing at all
is written while anything is refused. `uninstall` removes exactly what the manifest
lists, refusing (again unless --force) files changed since, then the directories install
created if they are empty. --root DIR does all of it inside DIR (staging, packaging):
paths in the manifest are the target's, and no service is touched.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import stat as statmod
import sys
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import click

from .empower import SYSUSERS_FILE
from .errors import (
    EXIT_CANNOT_EXECUTE,
    EXIT_LAUNCHER,
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    RunasError,
    UsageError,
)

if TYPE_CHECKING:
    from .systemd_bus import SystemdBus

MANIFEST = "/var/lib/runas-podman/installed"
DEFAULT_PREFIX = "/usr/local"
PAM_FILE = "/etc/pam.d/runas"
UNIT_DIR = "/etc/systemd/system"
BROKER_SOCKET = "runas-broker.socket"
BROKER_UNITS = (BROKER_SOCKET, "runas-broker@.service")
# polkit reads action files from this one directory (no /usr/local, no /etc): the
# package's runas_podman/data/polkit/*.policy are installed here.
POLKIT_ACTIONS = "/usr/share/polkit-1/actions"
PROGS = ("runas-podman", "runas")


# Components: each file in the manifest belongs to one.
PAM, BROKER, POLKIT, MAN, COMPLETION, STATE, EMPOWER = (
    "pam",
    "broker",
    "polkit",
    "man",
    "completion",
    "state",
    "empower",
)
COMPONENTS = (PAM, BROKER, POLKIT, MAN, COMPLETION, STATE, EMPOWER)

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
        if not root.startswith("/") or not _plain(root):
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
            if force and not_a_file.kind != "a directory":
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
                write_file(target.host(action.path), action.artifact.data)
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


# --- what is installed ----------------------------------------------------------------------


def pam_artifact(dest: str = PAM_FILE, target: Target | None = None) -> Artifact:
    """/etc/pam.d/runas for the target's distribution (its os-release and pam.d; with
    --root, this machine's when the staging root has neither yet)."""
    from .hostfiles import choose_pam_stack, parse_os_release

    target = target or Target()
    if not any(os.path.exists(target.host(p)) for p in ("/etc/os-release", "/etc/pam.d")):
        target = Target()
    os_release: dict[str, str] = {}
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        with contextlib.suppress(OSError):
            with open(target.host(path)) as release:
                os_release = parse_os_release(release.read())
            break
    entries: set[str] = set()
    for directory in ("/etc/pam.d", "/usr/lib/pam.d"):
        with contextlib.suppress(OSError):
            entries.update(os.listdir(target.host(directory)))
    choice = choose_pam_stack(os_release, entries)
    return Artifact(PAM, dest, choice.text, choice.summary())


def check_broker_interpreter() -> None:
    """Refuse a broker interpreter anyone but root could change (hostfiles)."""
    import subprocess

    from .hostfiles import check_interpreter_trusted

    # The broker runs `python -m runas_podman.broker` as root from /, with no PYTHONPATH:
    # ask that interpreter, started the same way, where it imports from.
    probe = subprocess.run(
        [sys.executable, "-c", "import sys; print(*sys.path[1:], sep='\\n')"],
        cwd="/", env={}, capture_output=True, text=True, check=False,
    )  # fmt: skip
    package_dir = os.path.dirname(os.path.abspath(__file__))
    check_interpreter_trusted(sys.executable, package_dir, probe.stdout.splitlines())


def broker_artifacts(dest: str = UNIT_DIR) -> list[Artifact]:
    """runas-broker.socket and runas-broker@.service, running this interpreter."""
    from importlib.resources import files

    artifacts = []
    for name in BROKER_UNITS:
        text = files("runas_podman").joinpath(f"data/systemd/{name}").read_text()
        path = os.path.join(dest, name)
        artifacts.append(Artifact(BROKER, path, text.replace("{python}", sys.executable)))
    return artifacts


def check_empower_polkit() -> None:
    """Refuse --empower where polkit ignores a process's own groups (empower.py)."""
    from .empower import POLKIT_GROUPS_OF_PROCESS_SINCE, polkit_version

    version = polkit_version()
    if version is not None and version < POLKIT_GROUPS_OF_PROCESS_SINCE:
        raise RunasError(
            f"--empower: polkit {version} judges a process by its user's groups, not by its "
            f"own, so the group empower cannot give a runas --empower command polkit's rights "
            f"here: that needs polkit >= {POLKIT_GROUPS_OF_PROCESS_SINCE} (runas --empower "
            "still gives every capability); nothing was written"
        )


def empower_artifacts(target: Target, manifest: Manifest) -> list[Artifact]:
    """The sysusers.d file when the group is missing, the rule when systemd's is: each also
    when an earlier install wrote it (it stays ours)."""
    from . import empower

    artifacts = []
    group_missing = not _group_on_target(target, empower.GROUP)
    if group_missing or empower.SYSUSERS_FILE in manifest.files:
        artifacts.append(Artifact(EMPOWER, empower.SYSUSERS_FILE, empower.SYSUSERS_TEXT,
                                  f"group {empower.GROUP}"))  # fmt: skip
    if empower.systemd_rule(target.host) is None or empower.RULE_FILE in manifest.files:
        artifacts.append(Artifact(EMPOWER, empower.RULE_FILE, empower.RULE_TEXT,
                                  f"polkit: every action for group {empower.GROUP}"))  # fmt: skip
    return artifacts


def _group_on_target(target: Target, name: str) -> bool:
    if target.is_live:
        from .lookup import group_exists

        return group_exists(name)
    try:
        with open(target.host("/etc/group")) as groups:
            return any(line.split(":", 1)[0] == name for line in groups)
    except OSError:
        return False


def _create_empower_group(target: Target, dry_run: bool) -> None:
    """systemd-sysusers on our file: the group exists before install returns."""
    import subprocess

    from . import empower
    from .lookup import executable, group_exists

    if not target.is_live:
        click.echo(f"not created (--root): on the target, systemd-sysusers {empower.SYSUSERS_FILE}")
        return
    if group_exists(empower.GROUP):
        return
    if dry_run:
        click.echo(f"would create group {empower.GROUP} (systemd-sysusers)")
        return
    sysusers = executable("systemd-sysusers", "systemd")
    done = subprocess.run([sysusers, empower.SYSUSERS_FILE], capture_output=True, text=True)
    if done.returncode != 0 or not group_exists(empower.GROUP):
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise RunasError(
            f"systemd-sysusers {empower.SYSUSERS_FILE} did not create group {empower.GROUP} "
            f"({last}): create it with groupadd --system {empower.GROUP}"
        )
    click.echo(f"created group {empower.GROUP}")


def _delete_empower_group() -> None:
    import subprocess

    from . import empower
    from .lookup import group_exists

    if not group_exists(empower.GROUP):
        return
    done = subprocess.run(["groupdel", empower.GROUP], capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise RunasError(f"could not delete group {empower.GROUP}: {last}")
    click.echo(f"removed group {empower.GROUP}")


def polkit_artifacts() -> list[Artifact]:
    """The package's polkit action files (data/polkit/*.policy)."""
    from importlib.resources import files

    directory = files("runas_podman").joinpath("data/polkit")
    if not directory.is_dir():
        return []
    return [
        Artifact(POLKIT, f"{POLKIT_ACTIONS}/{entry.name}", entry.read_text())
        for entry in sorted(directory.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".policy")
    ]


def shipped_man_pages() -> dict[str, str]:
    """{NAME.1: roff} built into the package (data/man/man1), by hatch_build.py."""
    from importlib.resources import files

    directory = files("runas_podman").joinpath("data/man/man1")
    if not directory.is_dir():
        return {}
    return {
        entry.name: entry.read_text() for entry in directory.iterdir() if entry.name.endswith(".1")
    }


def man_artifacts(prefix: str) -> tuple[list[Artifact], str | None]:
    """The man pages for PREFIX/share/man/man1, and a note when there are none to install.

    The wheel carries them; a checkout (editable install) has none, and generates them
    here when click-man is importable."""
    pages = shipped_man_pages()
    note = None
    if not pages:
        try:
            pages = render_man_pages()
        except ImportError:
            note = (
                "no man pages: this installation was built without click-man "
                "(install from the wheel, see runas-podman-install(1))"
            )
    directory = f"{prefix}/share/man/man1"
    artifacts = [Artifact(MAN, f"{directory}/{name}", text) for name, text in sorted(pages.items())]
    return artifacts, note


def completion_artifacts(prefix: str) -> list[Artifact]:
    """The bash, zsh and fish completions of runas-podman and runas under PREFIX/share."""
    from .cli import cli
    from .completion import SHELLS, completion_paths, completion_script
    from .runas_cli import runas

    artifacts = []
    for prog, command in (("runas-podman", cli), ("runas", runas)):
        paths = completion_paths(prog)
        for shell in SHELLS:
            text = completion_script(shell, command, prog)
            artifacts.append(Artifact(COMPLETION, f"{prefix}/share/{paths[shell]}", text))
    return artifacts


# --- the man pages --------------------------------------------------------------------------


def _all_commands(
    command: click.Command, name: str, parent: click.Context | None = None
) -> Iterator[click.Context]:
    context = click.Context(command, info_name=name, parent=parent)
    yield context
    if isinstance(command, click.Group):
        for sub_name in command.list_commands(context):
            sub = command.get_command(context, sub_name)
            if sub is not None and not sub.hidden:
                yield from _all_commands(sub, sub_name, context)


def _page_name(context: click.Context) -> str:
    return context.command_path.replace(" ", "-")


def _exit_status_section(prog: str) -> list[str]:
    if prog == "runas":
        rows = [
            ("the command's", "the command's own status; 128+N when a signal N ended it"),
            ("1", "a failure of runas itself (usage, access denied, systemd refused)"),
        ]
    else:
        rows = [
            ("0", "success"),
            ("1..124", "the command's own status (128+N when a signal N ended it)"),
            (str(EXIT_USAGE), "bad usage: nothing was started"),
            (str(EXIT_LAUNCHER), "a failure of runas-podman itself; one line on stderr"),
            (str(EXIT_CANNOT_EXECUTE), "the command cannot be executed"),
            (str(EXIT_NOT_FOUND), "the command was not found"),
        ]
    lines = [".SH EXIT STATUS"]
    for value, meaning in rows:
        lines += [".TP", rf"\fB{_roff(value)}\fP", _roff(meaning)]
    return lines


def _roff(text: str) -> str:
    """Plain text for a roff line: backslashes and hyphens escaped, no leading dot."""
    escaped = text.replace("\\", r"\e").replace("-", r"\-")
    return rf"\&{escaped}" if escaped.startswith((".", "'")) else escaped


_CLICK_MAN_REQUESTS = frozenset({".TH", ".SH", ".B", ".TP", ".PP"})


def _guard_lines(page: str) -> str:
    """click-man copies help text into the page as is: a help line that starts with a dot
    or a quote would be a roff request. Such lines are made text (\\&)."""
    out = []
    for line in page.split("\n"):
        if line.startswith("'") or (
            line.startswith(".") and line.split(" ", 1)[0] not in _CLICK_MAN_REQUESTS
        ):
            line = rf"\&{line}"
        out.append(line)
    return "\n".join(out)


def render_man_pages(version: str | None = None, date: str | None = None) -> dict[str, str]:
    """{NAME.1: roff}: runas-podman(1), runas-podman-COMMAND(1) for every subcommand
    (runas-podman-quadlet-install(1), ...), and runas(1), from the Click definitions by
    click-man, with EXIT STATUS, PROPERTIES (for -p) and SEE ALSO added.

    `date` defaults to $SOURCE_DATE_EPOCH's day (reproducible builds), else today.
    Raises ImportError without click-man (a build requirement, not a runtime one)."""
    import time
    import warnings

    from click_man.core import generate_man_page  # type: ignore[import-untyped]

    from . import __version__
    from .cli import cli
    from .runas_cli import runas
    from .unitprops import KNOWN_PROPERTIES

    version = version or __version__
    if date is None:
        epoch = os.environ.get("SOURCE_DATE_EPOCH", "")
        seconds = int(epoch) if epoch.isascii() and epoch.isdigit() else int(time.time())
        date = time.strftime("%Y-%m-%d", time.gmtime(seconds))
    pages: dict[str, str] = {}
    for prog, top in (("runas-podman", cli), ("runas", runas)):
        for context in _all_commands(top, prog):
            with warnings.catch_warnings():  # click-man 0.6 on click 8.2+: deprecations
                warnings.simplefilter("ignore", DeprecationWarning)
                page = _guard_lines(generate_man_page(context, version=version, date=date))
            name = _page_name(context)
            page = _fix_header(page, name, version, date)
            # click-man names a nested group's children "runas-podman quadlet-install(1)".
            page = page.replace(rf"\fB{context.command_path}-", rf"\fB{name}-")
            extra: list[str] = []
            options = {
                opt for param in context.command.params for opt in getattr(param, "opts", [])
            }
            if "--property" in options:
                extra += [
                    ".SH PROPERTIES",
                    r"\fB\-p\fP takes \fINAME\fP\fB=\fP\fIVALUE\fP in the syntax of "
                    r"\fBsystemctl set\-property\fP; these names are known "
                    "(anything else is refused before a unit starts):",
                    ".PP",
                    ".nh",
                    ", ".join(KNOWN_PROPERTIES) + ".",
                    ".hy",
                ]
            if name in ("runas-podman", "runas-podman-exec", "runas-podman-podman", "runas"):
                extra += _exit_status_section(prog)
            extra += [".SH SEE ALSO", _see_also(context)]
            pages[f"{name}.1"] = page.rstrip("\n") + "\n" + "\n".join(extra) + "\n"
    return pages


def _fix_header(page: str, name: str, version: str, date: str) -> str:
    """The title line as man(1) shows it (the page's name, and the suite's), and the NAME
    line with the page's name as apropos(1) indexes it (click-man writes the command path
    with its spaces made hyphens, e.g. runas-podman\\-exec)."""
    lines = page.split("\n")
    lines[0] = f'.TH "{name.upper()}" "1" "{date}" "runas-podman {version}" "runas-podman Manual"'
    if len(lines) > 2 and lines[1] == ".SH NAME":
        _old, separator, summary = lines[2].partition(r" \- ")
        if separator:
            lines[2] = rf"{_roff(name)} \- {summary}"
    return "\n".join(lines)


def _see_also(context: click.Context) -> str:
    references = []
    parent = context.parent
    while parent is not None:
        references.append(f"{_page_name(parent)}(1)")
        parent = parent.parent
    name = _page_name(context)
    if name == "runas-podman":
        references += ["runas(1)", "podman(1)", "systemd-run(1)"]
    elif name == "runas":
        references += ["runas-podman(1)", "run0(1)", "systemd-run(1)", "pam(8)", "polkit(8)"]
    elif name in ("runas-podman-exec", "runas-podman-podman"):
        references += ["systemd-run(1)", "systemd.exec(5)", "systemd.resource-control(5)"]
    elif name.startswith("runas-podman-quadlet"):
        references += ["podman-systemd.unit(5)"]
    elif name.startswith("runas-podman-install") or name == "runas-podman-uninstall":
        references += ["pam.d(5)", "runas(1)"]
    return ", ".join(rf"\fB{_roff(ref.split('(')[0])}\fP({ref.split('(')[1]}" for ref in references)


# --- the commands ---------------------------------------------------------------------------


def _check_prefix(prefix: str) -> str:
    """An absolute --prefix, without its trailing slash ("" for /) for PREFIX/share."""
    if not prefix.startswith("/") or not _plain(prefix):
        raise UsageError(f"--prefix {prefix!r}: give an absolute path")
    normal = os.path.normpath(prefix).strip("/")
    return f"/{normal}" if normal else ""


def _check_dest(dest: str) -> str:
    """--dest of install-pam/install-broker as an absolute path (the manifest's key)."""
    if not _plain(dest):
        raise UsageError(f"--dest {dest!r}: give a path without control characters")
    return os.path.abspath(dest)


def _plain(path: str) -> bool:
    """No control characters: one manifest line, one report line per path."""
    return path.isprintable()


def install(
    *,
    prefix: str = DEFAULT_PREFIX,
    root: str = "/",
    broker: bool = False,
    empower: bool = False,
    force: bool = False,
    dry_run: bool = False,
) -> int:
    """`runas-podman install`: PAM, broker (if asked), polkit, man pages, completions, the
    empower group and rule (if asked)."""
    prefix = _check_prefix(prefix)
    target = Target(root)
    if broker:
        check_broker_interpreter()
    if empower and target.is_live:
        check_empower_polkit()
    artifacts = [pam_artifact(PAM_FILE, target)]
    if broker:
        artifacts += broker_artifacts(UNIT_DIR)
    if empower:
        artifacts += empower_artifacts(target, target.read_manifest())
    artifacts += polkit_artifacts()
    man, note = man_artifacts(prefix)
    artifacts += man
    artifacts += completion_artifacts(prefix)

    def stale(path: str, component: str) -> bool:
        # Our man pages and completions under this prefix that are no longer shipped.
        return component in (MAN, COMPLETION) and path.startswith(f"{prefix}/share/")

    if note is not None:
        click.echo(f"note: {note}", err=True)
    _install(artifacts, target, force, dry_run, stale)
    if broker:
        _start_broker(target, dry_run)
    if any(artifact.path == SYSUSERS_FILE for artifact in artifacts):
        _create_empower_group(target, dry_run)
    if dry_run:
        click.echo("dry run: nothing changed")
    return 0


def _install(
    artifacts: Sequence[Artifact],
    target: Target,
    force: bool,
    dry_run: bool,
    stale: Callable[[str, str], bool] = lambda path, component: False,
) -> bool:
    manifest = target.read_manifest()
    if dry_run:
        plan = plan_install(artifacts, manifest, target, force, stale)
        refuse(plan.refusals)
        return apply(plan, manifest, target, dry_run=True)
    plan = plan_install(artifacts, manifest, target, force, stale)
    refuse(plan.refusals)  # before anything is written, the state directory included
    with target.locked(manifest):
        manifest = _merge(target.read_manifest(), manifest)
        plan = plan_install(artifacts, manifest, target, force, stale)  # under the lock
        refuse(plan.refusals)
        try:
            changed = apply(plan, manifest, target, dry_run=False)
        finally:
            remove_empty_dirs(manifest, target, dry_run=False, only=(MAN, COMPLETION))
            target.write_manifest(manifest)
    return changed


def _merge(on_disk: Manifest, local: Manifest) -> Manifest:
    """The manifest read under the lock, plus the directories the lock itself created."""
    for path, component in local.dirs.items():
        on_disk.dirs.setdefault(path, component)
    return on_disk


def install_pam(dest: str = PAM_FILE, force: bool = False) -> int:
    """`runas-podman install-pam`: the PAM file alone, as before `install` existed."""
    artifact = pam_artifact(_check_dest(dest))
    _install([artifact], Target(), force, dry_run=False)
    return 0


def install_broker(dest: str = UNIT_DIR, force: bool = False) -> int:
    """`runas-podman install-broker`: the broker units, enabled and started, and the polkit
    action the broker checks for `runas --via-broker`."""
    dest = _check_dest(dest)
    check_broker_interpreter()
    _install(broker_artifacts(dest) + polkit_artifacts(), Target(), force, dry_run=False)
    _start_broker(Target(), dry_run=False)
    return 0


def _start_broker(target: Target, dry_run: bool) -> None:
    if not target.is_live:
        click.echo(f"not started (--root): on the target, systemctl enable --now {BROKER_SOCKET}")
        return
    if dry_run:
        click.echo(f"would enable and start {BROKER_SOCKET}")
        return
    import asyncio

    async def enable(bus: SystemdBus) -> None:
        await bus.reload()
        await bus.enable_unit_files([BROKER_SOCKET])
        done = await bus.run_job("StartUnit", BROKER_SOCKET)
        if done.result != "done":
            raise RunasError(
                f"{BROKER_SOCKET} failed to start ({done.result}): "
                f"see journalctl -u {BROKER_SOCKET}"
            )

    asyncio.run(_on_system_bus(enable))
    click.echo(f"enabled and started {BROKER_SOCKET}")


async def _on_system_bus(work: Callable[[SystemdBus], Awaitable[None]]) -> None:
    from .systemd_bus import SystemdBus, connected

    async with connected(SystemdBus.connect_system()) as bus:
        await work(bus)


def uninstall(*, root: str = "/", force: bool = False, dry_run: bool = False) -> int:
    """`runas-podman uninstall`: remove what the manifest lists (see the module's doc)."""
    target = Target(root)
    manifest = target.read_manifest()
    if not manifest:
        click.echo(f"nothing to remove: {target.host(MANIFEST)} lists nothing")
        return 0
    plan = plan_uninstall(manifest, target, force)
    refuse(plan.refusals)
    broker = any(component == BROKER for component, _digest in manifest.files.values())
    group = SYSUSERS_FILE in manifest.files  # install created the group
    if dry_run:
        if group and target.is_live:
            click.echo("would remove group empower")
        if broker and target.is_live:
            click.echo(f"would stop and disable {BROKER_SOCKET}")
        apply(plan, manifest, target, dry_run=True)
        click.echo(f"would remove {target.host(MANIFEST)}")
        removed = [*(a.path for a in plan.actions), MANIFEST]
        remove_empty_dirs(manifest, target, dry_run=True, removed=removed)
        click.echo("dry run: nothing changed")
        return 0
    with target.locked():
        manifest = target.read_manifest()
        plan = plan_uninstall(manifest, target, force)
        refuse(plan.refusals)
        if broker and target.is_live:
            _stop_broker()
        try:
            apply(plan, manifest, target, dry_run=False)
        finally:
            target.write_manifest(manifest)  # what is left, should a removal fail
        manifest_path = target.host(MANIFEST)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(manifest_path)
            click.echo(f"removed {manifest_path}")
        remove_empty_dirs(manifest, target, dry_run=False)
        if group and target.is_live:
            _delete_empower_group()
    if broker and target.is_live:
        _reload_manager()
    return 0


def _stop_broker() -> None:
    import asyncio

    from .errors import BusCallError

    async def stop(bus: SystemdBus) -> None:
        try:
            done = await bus.run_job("StopUnit", BROKER_SOCKET)
        except BusCallError as error:
            if not error.name.endswith("NoSuchUnit"):
                raise
        else:
            if done.result != "done":
                raise RunasError(f"{BROKER_SOCKET} did not stop ({done.result})")
        try:
            await bus.call("DisableUnitFiles", "asb", [[BROKER_SOCKET], False])
        except BusCallError as error:
            if not error.name.endswith(("NoSuchUnit", "FileNotFound")):
                raise

    asyncio.run(_on_system_bus(stop))
    click.echo(f"stopped and disabled {BROKER_SOCKET}")


def _reload_manager() -> None:
    import asyncio

    async def reload(bus: SystemdBus) -> None:
        await bus.reload()

    with contextlib.suppress(OSError, RunasError):
        asyncio.run(_on_system_bus(reload))
