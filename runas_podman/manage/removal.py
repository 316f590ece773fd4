"""Taking a service user down: the opposite of setup (service_user.py), in an order where
each step leaves a state setup can bring back.

1. the user's Quadlets: their units stopped, their files removed, the manager reloaded;
2. the user's containers and pods removed (`podman rm/pod rm --all --force` as the user);
3. unless --keep-storage, `podman system reset --force` as the user (images, volumes);
4. linger disabled (logind), then user@UID.service stopped;
5. the sub-id ranges setup added (its record, /var/lib/runas-podman/service-users/NAME);
6. with --delete-user, the account and its home (`userdel --remove`).

Refused for root, and for an account setup did not create unless --force. Each change is
one line as it is made; --dry-run lists them and changes nothing. A user that no longer
exists has nothing left to remove (exit 0: a second run changes nothing).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from runas_podman.bus.systemd_bus import SystemdBus, connected
from runas_podman.core.errors import RunasError, UsageError
from runas_podman.core.model import ServiceUser
from runas_podman.manage.service_user import (
    LINGER_DIR,
    Record,
    _run,
    _set_linger,
    range_for,
    read_subids,
)


@dataclass(frozen=True)
class RemoveOptions:
    keep_storage: bool = False
    delete_user: bool = False
    force: bool = False
    dry_run: bool = False


Say = Callable[[str], None]
Change = Callable[[str, str], None]  # (what it would do, what it did)


async def remove(name: str, options: RemoveOptions, say: Say) -> bool:
    """Take NAME down; True if anything changed (or would, with dry_run)."""
    from runas_podman.host import lookup

    lookup.checked_identity(name, "user")
    if os.geteuid() != 0 and not options.dry_run:
        raise RunasError("remove changes system state: run it as root (or try --dry-run)")
    try:
        user = lookup.service_user(name)
    except UsageError:
        say(f"user {name} does not exist: nothing to remove")
        if not options.dry_run:
            Record.forget(name)
        return False
    if user.uid == 0:
        raise UsageError("remove refuses root: it takes a service user down")
    record = Record.read(user.name)
    if (record is None or not record.created) and not options.force:
        raise UsageError(
            f"{user.name} was not created by runas-podman setup: add --force to take it down "
            "anyway (its account stays unless --delete-user)"
        )
    changed = False

    def change(doing: str, done: str) -> None:
        nonlocal changed
        changed = True
        say(f"would {doing}" if options.dry_run else done)

    async with connected(SystemdBus.connect_system()) as system:
        manager_up = await system.unit_state(user.user_manager_unit) == "active"
        await _quadlets(user, options, change, manager_up)
        if manager_up or not options.dry_run:  # podman as USER starts its manager
            await _containers(user, options, change)
        else:  # a dry run starts nothing, so it cannot count them
            change(f"remove the containers and storage of {user.name} (not counted: its "
                   "manager is stopped)", "")  # fmt: skip
        await _linger_and_manager(system, user, options, change)
    _subids(user, record, options, change)
    if options.delete_user:
        change(f"delete user {user.name} and its home {user.home}",
               f"deleted user {user.name} and its home {user.home}")  # fmt: skip
        if not options.dry_run:
            _run(["userdel", "--remove", user.name])
            Record.forget(user.name)
    return changed


async def _quadlets(
    user: ServiceUser, options: RemoveOptions, change: Change, manager_up: bool
) -> None:
    from runas_podman.manage import quadlet as quadlets

    files = quadlets.installed(user)
    if not files:
        return
    names = sorted(files)
    change(
        f"stop and remove Quadlets {', '.join(names)}",
        f"stopped and removed Quadlets {', '.join(names)}",
    )
    if options.dry_run:
        return
    if manager_up:  # else nothing of theirs runs
        units = quadlets.generate(files)
        await quadlets.run_jobs(user, "StopUnit", [u for n in names for u in units.get(n, [])])
    if not await quadlets.remove_files(user, names) and manager_up:
        await quadlets.reload_manager(user)


async def _containers(user: ServiceUser, options: RemoveOptions, change: Change) -> None:
    from runas_podman.manage.quadlet import podman_as_async as podman_as

    status, out, _err = await podman_as(user, ["ps", "--all", "--quiet"])
    containers = out.split() if status == 0 else []
    if containers:
        change(
            f"remove {len(containers)} container(s) of {user.name}",
            f"removed {len(containers)} container(s) of {user.name}",
        )
        if not options.dry_run:
            await _podman(user, ["pod", "rm", "--all", "--force"])
            await _podman(user, ["rm", "--all", "--force"])
    if options.keep_storage:
        return
    status, out, _err = await podman_as(user, ["images", "--quiet"])
    images = set(out.split()) if status == 0 else set()
    status, out, _err = await podman_as(user, ["volume", "ls", "--quiet"])
    volumes = out.split() if status == 0 else []
    if images or volumes:
        what = f"{len(images)} image(s), {len(volumes)} volume(s)"
        change(
            f"reset the podman storage of {user.name} ({what})",
            f"reset the podman storage of {user.name} ({what})",
        )
        if not options.dry_run:
            await _podman(user, ["system", "reset", "--force"])


async def _podman(user: ServiceUser, args: list[str]) -> None:
    from runas_podman.manage.quadlet import _why, podman_as_async

    status, _out, err = await podman_as_async(user, args)
    if status != 0:
        raise RunasError(f"podman {' '.join(args)} failed as {user.name}: {_why(status, err)}")


async def _linger_and_manager(
    system: SystemdBus, user: ServiceUser, options: RemoveOptions, change: Change
) -> None:
    if os.path.exists(f"{LINGER_DIR}/{user.name}"):
        change(
            f"disable linger for {user.name} (logind)", f"disabled linger for {user.name} (logind)"
        )
        if not options.dry_run:
            await _set_linger(system, user.uid, False)
    unit = user.user_manager_unit
    if await system.unit_state(unit) not in ("inactive", "failed"):
        change(f"stop {unit}", f"stopped {unit}")
        if not options.dry_run:
            done = await system.run_job("StopUnit", unit)
            if done.result != "done":
                raise RunasError(f"{unit} did not stop ({done.result}): see its journal")


def _subids(
    user: ServiceUser, record: Record | None, options: RemoveOptions, change: Change
) -> None:
    if options.delete_user:
        return  # userdel removes the account's ranges itself
    span = record.subids if record is not None else ""
    if not span and options.force:  # not recorded: the ranges the files give the user
        found = range_for(read_subids("/etc/subuid"), user)
        span = f"{found.start}-{found.end}" if found is not None else ""
    if not span:
        return
    uid_range, gid_range = (
        range_for(read_subids("/etc/subuid"), user),
        range_for(read_subids("/etc/subgid"), user),
    )
    args = ["usermod"]
    if uid_range is not None and f"{uid_range.start}-{uid_range.end}" == span:
        args += ["--del-subuids", span]
    if gid_range is not None and f"{gid_range.start}-{gid_range.end}" == span:
        args += ["--del-subgids", span]
    if len(args) == 1:
        return
    change(
        f"remove sub-ids {span} of {user.name} from /etc/subuid and /etc/subgid",
        f"removed sub-ids {span} of {user.name} from /etc/subuid and /etc/subgid",
    )
    if not options.dry_run:
        _run([*args, user.name])
        Record(record.created if record else False, "").write(user.name)
