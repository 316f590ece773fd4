"""`runas-podman install` and `uninstall`: the files the host needs, written and removed
as their owner knows them.

What is installed, each file printed as it is written (`installed PATH`, `updated PATH`,
`up to date PATH`; with --dry-run `would install PATH`, ...):

- the PAM service file /etc/pam.d/runas (hostfiles.choose_pam_stack);
- with --broker, runas-broker.socket and runas-broker@.service in /etc/systemd/system,
  after the interpreter trust check (hostfiles.check_interpreter_trusted), then enabled
  and started over D-Bus;
- runas-podman-launch.socket and .service (root's launch server, cli/server.py), unless
  --no-launch-server, after the same interpreter check (a note, not a failure, when it
  does not pass), then enabled and started;
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
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

import click

from runas_podman.core.elevate import PAM_FILE
from runas_podman.core.errors import (
    RunasError,
    UsageError,
)
from runas_podman.install.artifacts import (
    broker_artifacts,
    check_broker_interpreter,
    check_empower_polkit,
    command_artifacts,
    completion_artifacts,
    create_empower_group,
    delete_empower_group,
    empower_artifacts,
    launch_artifacts,
    man_artifacts,
    pam_artifact,
    polkit_artifacts,
)
from runas_podman.install.man import Programs
from runas_podman.install.manifest import (
    BROKER,
    BROKER_SOCKET_UNIT,
    COMPLETION,
    DEFAULT_PREFIX,
    LAUNCH,
    LAUNCH_SOCKET_UNIT,
    MAN,
    MANIFEST,
    UNIT_DIR,
    Artifact,
    Manifest,
    Target,
    apply,
    is_plain_path,
    plan_install,
    plan_uninstall,
    refuse,
    remove_empty_dirs,
)
from runas_podman.manage.empower import SYSUSERS_FILE

if TYPE_CHECKING:
    from runas_podman.bus.systemd_bus import SystemdBus

T = TypeVar("T")


# --- the commands ---------------------------------------------------------------------------


def _check_prefix(prefix: str) -> str:
    """An absolute --prefix, without its trailing slash ("" for /) for PREFIX/share."""
    if not prefix.startswith("/") or not is_plain_path(prefix):
        raise UsageError(f"--prefix {prefix!r}: give an absolute path")
    normal = os.path.normpath(prefix).strip("/")
    return f"/{normal}" if normal else ""


def _check_dest(dest: str) -> str:
    """--dest of install-pam/install-broker as an absolute path (the manifest's key)."""
    if not is_plain_path(dest):
        raise UsageError(f"--dest {dest!r}: give a path without control characters")
    return os.path.abspath(dest)


def install(
    *,
    prefix: str = DEFAULT_PREFIX,
    root: str = "/",
    broker: bool = False,
    empower: bool = False,
    launch_server: bool = True,
    commands: bool = True,
    force: bool = False,
    dry_run: bool = False,
    programs: Programs = (),
) -> int:
    """`runas-podman install`: PAM, broker (if asked), polkit, man pages, completions, the
    empower group and rule (if asked). PROGRAMS: the Click commands whose man pages and
    completions are written, handed in by the CLI (nothing here imports it)."""
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
    if launch_server:
        launch_server = _launch_server_trusted()
    if launch_server:
        artifacts += launch_artifacts(UNIT_DIR)
    if commands:
        artifacts += command_artifacts(prefix)
    artifacts += polkit_artifacts()
    man, note = man_artifacts(prefix, programs)
    artifacts += man
    artifacts += completion_artifacts(prefix, programs)

    def stale(path: str, component: str) -> bool:
        # Our man pages and completions under this prefix that are no longer shipped.
        return component in (MAN, COMPLETION) and path.startswith(f"{prefix}/share/")

    if note is not None:
        click.echo(f"note: {note}", err=True)
    changed = _install(artifacts, target, force, dry_run, stale)
    if broker:
        _start_socket(BROKER_SOCKET_UNIT, target, dry_run)
    if launch_server and (target.is_live or changed):
        _start_socket(LAUNCH_SOCKET_UNIT, target, dry_run, quiet_when_running=True)
    if any(artifact.path == SYSUSERS_FILE for artifact in artifacts):
        create_empower_group(target, dry_run)
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
    _start_socket(BROKER_SOCKET_UNIT, Target(), dry_run=False)
    return 0


def install_commands(prefix: str = DEFAULT_PREFIX, force: bool = False) -> int:
    _install(command_artifacts(_check_prefix(prefix)), Target(), force, dry_run=False)
    return 0


def install_launch_server(dest: str = UNIT_DIR, force: bool = False) -> int:
    """`runas-podman install-launch-server`: root's launch server alone, enabled and started."""
    dest = _check_dest(dest)
    check_broker_interpreter()
    _install(launch_artifacts(dest), Target(), force, dry_run=False)
    _start_socket(LAUNCH_SOCKET_UNIT, Target(), dry_run=False, quiet_when_running=True)
    return 0


def _launch_server_trusted() -> bool:
    """The launch server runs this interpreter as root, as the broker does: only when
    nobody but root could change it (else a note, and install goes on without it)."""
    try:
        check_broker_interpreter()
    except RunasError as error:
        click.echo(f"note: not installing the launch server: {error.message}", err=True)
        return False
    return True


def _start_socket(
    unit: str, target: Target, dry_run: bool, quiet_when_running: bool = False
) -> None:
    """Enable and start a socket unit install wrote (reloading the manager first)."""
    if not target.is_live:
        click.echo(f"not started (--root): on the target, systemctl enable --now {unit}")
        return
    if dry_run:
        click.echo(f"would enable and start {unit}")
        return
    import asyncio

    async def enable(bus: SystemdBus) -> bool:
        await bus.reload()
        from runas_podman.bus.systemd_bus import UNIT, unit_object_path

        state = await bus.get_property(unit_object_path(unit), UNIT, "UnitFileState")
        active = await bus.get_property(unit_object_path(unit), UNIT, "ActiveState")
        if quiet_when_running and (state, active) == ("enabled", "active"):
            return False
        await bus.enable_unit_files([unit])
        done = await bus.run_job("StartUnit", unit)
        if done.result != "done":
            raise RunasError(f"{unit} failed to start ({done.result}): see journalctl -u {unit}")
        return True

    if asyncio.run(_on_system_bus(enable)):
        click.echo(f"enabled and started {unit}")


async def _on_system_bus(work: Callable[[SystemdBus], Awaitable[T]]) -> T:
    from runas_podman.bus.systemd_bus import SystemdBus, connected

    async with connected(SystemdBus.connect_system()) as bus:
        return await work(bus)


def uninstall(*, root: str = "/", force: bool = False, dry_run: bool = False) -> int:
    """`runas-podman uninstall`: remove what the manifest lists (see the module's doc)."""
    target = Target(root)
    manifest = target.read_manifest()
    if not manifest:
        click.echo(f"nothing to remove: {target.host(MANIFEST)} lists nothing")
        return 0
    plan = plan_uninstall(manifest, target, force)
    refuse(plan.refusals)
    components = {component for component, _digest in manifest.files.values()}
    sockets = [unit for component, unit in ((LAUNCH, LAUNCH_SOCKET_UNIT),
               (BROKER, BROKER_SOCKET_UNIT)) if component in components]  # fmt: skip
    group = SYSUSERS_FILE in manifest.files  # install created the group
    if dry_run:
        if group and target.is_live:
            click.echo("would remove group empower")
        for unit in sockets if target.is_live else ():
            click.echo(f"would stop and disable {unit}")
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
        for unit in sockets if target.is_live else ():
            _stop_socket(unit)
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
            delete_empower_group()
    if sockets and target.is_live:
        _reload_manager()
    return 0


def _stop_socket(unit: str) -> None:
    """Stop and disable a socket unit install wrote, and the service it starts."""
    import asyncio

    from runas_podman.core.errors import BusCallError

    service = unit.removesuffix(".socket") + ".service"

    async def stop(bus: SystemdBus) -> None:
        for name in (unit, service) if unit == LAUNCH_SOCKET_UNIT else (unit,):
            try:
                done = await bus.run_job("StopUnit", name)
            except BusCallError as error:
                if not error.name.endswith("NoSuchUnit"):
                    raise
            else:
                if done.result != "done":
                    raise RunasError(f"{name} did not stop ({done.result})")
        try:
            await bus.call("DisableUnitFiles", "asb", [[unit], False])
        except BusCallError as error:
            if not error.name.endswith(("NoSuchUnit", "FileNotFound")):
                raise

    asyncio.run(_on_system_bus(stop))
    click.echo(f"stopped and disabled {unit}")


def _reload_manager() -> None:
    import asyncio

    async def reload(bus: SystemdBus) -> None:
        await bus.reload()

    with contextlib.suppress(OSError, RunasError):
        asyncio.run(_on_system_bus(reload))
