"""A `runas` request resolved on this host: the target user, group and command looked up
(host.lookup), then core.elevate's plan. Shared by the CLI and the root broker, which
both start from an ElevateRequest."""

from __future__ import annotations

import dataclasses

from runas_podman.core.elevate import (
    EMPOWER_GROUP,
    Caller,
    ElevateOptions,
    ElevateRequest,
    build_elevate_plan,
    check_conflicts,
    tint_hue,
)
from runas_podman.core.model import LaunchPlan
from runas_podman.core.plan import service_unit_name
from runas_podman.host.lookup import executable, group_exists, group_name, service_user


def resolve_elevation(request: ElevateRequest, caller: Caller) -> tuple[LaunchPlan, int]:
    """The plan and tint hue of a `runas` request: its names resolved on this system."""
    user_given = request.user is not None
    # -u, else the caller for --empower (run0 >= 259 empowers -u USER too), else root. An
    # empty -u is refused (checked_identity), never read as "not given".
    if request.user is not None:
        target_name = request.user
    else:
        target_name = caller.name if request.empower else "root"
    group = group_name(request.group) if request.group is not None else None
    empower_group = request.empower and group_exists(EMPOWER_GROUP)
    given = {field.name: getattr(request, field.name) for field in dataclasses.fields(request)}
    given.update(
        unit=service_unit_name(request.unit, prefix="runas-"),
        group=group,
        empower_group_exists=empower_group,
        user_given=user_given,
    )
    options = ElevateOptions(**given)
    check_conflicts(options)
    target = service_user(target_name, setup_hint=False)  # runas: any account, not made here
    if request.command and not (request.via_shell or request.login):
        path = executable(request.command[0])
        options = dataclasses.replace(options, command=(path, *request.command[1:]))
    plan = build_elevate_plan(options, caller, target)
    return plan, tint_hue(target.uid == 0, options.empower)
