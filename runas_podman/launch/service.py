"""`runas-podman exec` and `podman`: a service request → a plan → the unit, its end.

Reads top to bottom: settings from the options, the plan, the manager, stdio, then one
of four ways to run it (dry run, native, systemd-run, D-Bus). Everything the caller's
process would have told (environment, cwd, uid, terminals) comes in the request.
"""

from __future__ import annotations

import dataclasses

from runas_podman.core.errors import UsageError
from runas_podman.core.model import LaunchPlan, Manager, Stdio, choose_manager, through_pty
from runas_podman.launch.request import Backend, CallerStdio, ServiceOptions, ServiceRequest


def service_plan(request: ServiceRequest, stdio: CallerStdio) -> LaunchPlan:
    """Every usage error is found here, before anything starts."""
    from runas_podman.core.plan import (
        build_service_plan,
        launch_settings,
        parse_assignments,
        parse_open_file,
        parse_pass_fd,
        parse_setenv,
        podman_plan,
        service_unit_name,
        waiting_for,
    )
    from runas_podman.core.timer import timer_settings
    from runas_podman.host import lookup

    options, caller = request.options, request.caller
    if options.same_dir and not caller.cwd:
        raise UsageError("-d/--same-dir: your working directory is gone; change to another one")
    settings = launch_settings(
        slice_name=options.slice, slice_inherit=options.slice_inherit,
        caller_slice=caller.slice if options.slice_inherit else None, nice=options.nice,
        working_directory=options.working_directory, same_dir=options.same_dir,
        cwd=caller.cwd if options.same_dir else "/", send_sighup=options.send_sighup,
        service_type=options.service_type, remain_after_exit=options.remain_after_exit,
    )  # fmt: skip
    pass_fds = [parse_pass_fd(text) for text in options.pass_fds]
    if pass_fds and options.backend is Backend.SYSTEMD_RUN:
        raise UsageError("--pass-fd needs --backend dbus: systemd-run cannot pass fds")
    if options.pty and options.pipe:
        raise UsageError("-t/--pty and --pipe contradict each other: give one of them")
    check_verbose(options)
    timer = timer_settings(options.timer)
    if timer:
        check_timer_options(options)
    elif options.remain_after_exit and not options.no_block:
        # The unit would keep the caller's stdio after the command (systemd-run 262 refuses
        # --pipe/--pty with -r; older ones wait until the unit is stopped).
        raise UsageError(
            "-r/--remain-after-exit keeps the unit, and with it your stdin/stdout/stderr, "
            "after the command: add --no-block (its output then goes to the journal)"
        )
    user = lookup.service_user(options.user)
    manager = choose_manager(options.via, caller.uid, user.uid)
    plan = build_service_plan(
        user=user,
        argv=[lookup.executable(request.argv[0], request.package), *request.argv[1:]],
        manager=manager,
        unit=service_unit_name(options.unit),
        assignments=parse_assignments([*settings, *options.properties]),
        environment=parse_setenv(options.setenv, dict(caller.environ)),
        description=options.description,
        open_files=[parse_open_file(text) for text in options.open_files],
        pass_fds=pass_fds,
        group=lookup.group_name(options.group) if options.group is not None else None,
        waiting=waiting_for(
            no_block=options.no_block or bool(timer), remain_after_exit=options.remain_after_exit,
            job_mode=options.job_mode, ignore_failure=options.ignore_failure,
        ),
        timer=timer,
    )  # fmt: skip
    if manager is Manager.SYSTEM and plan.open_files:
        check_open_files_for_root(plan, caller.uid)
    if request.package == "podman":
        plan = podman_plan(plan)
    # A terminal of the caller's is never handed to another user's command: a pty
    # stands between (sudo's use_pty, run0), unless --pipe.
    someone_else = user.uid != caller.uid
    if not timer and (options.pty or (not options.pipe and someone_else and any(stdio.ttys))):
        plan = dataclasses.replace(plan, stdio=Stdio.PTY)
    return plan


async def launch_service(request: ServiceRequest, stdio: CallerStdio) -> int:
    """Plan the request, then run it the way its options and the host say."""
    options = request.options
    plan = service_plan(request, stdio)
    through = through_pty(options.pty, stdio.ttys)
    follow = (options.output or "short") if options.verbose else None
    if options.dry_run:
        return await dry_run(plan, request.prog, stdio, follow)
    if options.backend in (Backend.AUTO, Backend.NATIVE) and native_chosen(
        options.backend, request.prog, stdio
    ):
        if options.json is not None or options.verbose:
            raise UsageError(
                f"{'--json' if options.json else '-v/--verbose'} needs a unit (its name, its "
                "journal), and natively there is none: drop it"
            )
        check_native(plan)
        from runas_podman.run.launcher import check_passed_fds
        from runas_podman.run.native import Client, native_session

        check_passed_fds(plan)
        return await native_session(plan, Client(stdio=stdio.fds, through=through))
    if options.backend is Backend.SYSTEMD_RUN:
        return await through_systemd_run(plan, stdio, follow)
    from runas_podman.run.launcher import check_passed_fds
    from runas_podman.run.session import Report, Terminal, session

    check_passed_fds(plan)
    interactive = options.ask_password and request.caller.uid != 0 and stdio.ttys[0]
    # The summary is for people: on a terminal, unless -q (scripts read stderr clean).
    summary = not options.quiet and stdio.ttys[2]
    json = None if options.json is None else options.json.value
    return await session(
        plan, stdio=stdio.fds, interactive=interactive, terminal=Terminal(through=through),
        report=Report(json, summary, follow),
    )  # fmt: skip


def check_verbose(options: ServiceOptions) -> None:
    """-v follows the unit's journal while this process waits for the unit."""
    if options.output is not None and not options.verbose:
        raise UsageError("--output sets how -v/--verbose shows the journal: add -v")
    if not options.verbose:
        return
    conflicts = (
        ("--no-block", options.no_block),
        ("--on-*/--timer-property", any(options.timer)),
        ("--backend native", options.backend is Backend.NATIVE),
    )
    for option, given in conflicts:
        if given:
            raise UsageError(
                f"-v/--verbose shows the unit's journal while runas-podman waits for it, and "
                f"with {option} it does not wait: drop one of them (journalctl -u UNIT shows it)"
            )


def check_timer_options(options: ServiceOptions) -> None:
    """What a timer's later runs cannot have: this caller's stdio, its fds."""
    for option, given in (("-t/--pty", options.pty), ("-P/--pipe", options.pipe),
                          ("--pass-fd", bool(options.pass_fds))):  # fmt: skip
        if given:
            raise UsageError(
                f"{option} hands over what this process has now, and a timer starts the "
                "command later, without it (its output goes to the journal): drop "
                f"{option.split('/')[0]}, or drop the --on-*/--timer-property options"
            )


def check_native(plan: LaunchPlan) -> None:
    """What only a service manager does: refused natively, in one line."""
    asked = [option for option, given in (
        ("--on-*/--timer-property (a timer)", bool(plan.timer)),
        ("--no-block", not plan.wait), ("-r/--remain-after-exit", not plan.lifeline and plan.wait),
        (f"--job-mode={plan.job_mode}", plan.job_mode != "fail"),
    ) if given]  # fmt: skip
    if asked:
        raise UsageError(
            f"{asked[0]} needs systemd's service manager, and the native backend runs the "
            "command here: drop it, or run where systemd is PID 1"
        )


def native_chosen(backend: Backend, prog: str, stdio: CallerStdio) -> bool:
    """--backend native, or auto where systemd is not PID 1 (said once, on stderr)."""
    from runas_podman.host.backend import choose_backend, systemd_running

    requested = backend.value
    chosen, note = choose_backend(requested, systemd_running() if backend is Backend.AUTO else True)
    if note is not None:
        stdio.err(f"{prog}: note: {note}")
    return chosen == "native"


async def dry_run(
    plan: LaunchPlan, prog: str, stdio: CallerStdio, follow: str | None = None
) -> int:
    """The plan as a systemd-run line for the manager's version (a note when guessed)."""
    from runas_podman.core.properties import systemd_run_command
    from runas_podman.run.session import manager_version

    version, note = await manager_version(plan)
    if note is not None:
        stdio.err(f"{prog}: note: {note}")
    stdio.out(systemd_run_command(plan, version, follow))
    return 0


async def through_systemd_run(
    plan: LaunchPlan, stdio: CallerStdio, follow: str | None = None
) -> int:
    """--backend systemd-run: the same plan as systemd-run's command line, run with the
    caller's stdio; its status is ours (a terminating signal is passed on to it)."""
    import asyncio

    from runas_podman.core.properties import systemd_run_argv, systemd_run_command
    from runas_podman.host import lookup
    from runas_podman.run.session import manager_version
    from runas_podman.run.signals import on_terminating_signals, release

    systemd_run = lookup.executable("systemd-run", "systemd")
    version, _note = await manager_version(plan)
    systemd_run_command(plan, version, follow)  # refuses what systemd-run cannot express
    argv = systemd_run_argv(plan, version, follow)
    process = await asyncio.create_subprocess_exec(
        systemd_run, *argv[1:], stdin=stdio.fds[0], stdout=stdio.fds[1], stderr=stdio.fds[2]
    )
    loop = asyncio.get_running_loop()
    interrupted = on_terminating_signals(loop)
    try:
        waiting = asyncio.ensure_future(process.wait())
        await asyncio.wait([waiting, interrupted], return_when=asyncio.FIRST_COMPLETED)
        if not waiting.done():
            process.send_signal(interrupted.result() - 128)
        status = await waiting
    finally:
        release(loop, interrupted)
    return status if status >= 0 else 128 - status


def check_open_files_for_root(plan: LaunchPlan, caller_uid: int) -> None:
    """On the system manager PID 1 opens --open-file paths as root: only paths nobody but
    root and the caller controls (see safepath), so the file is the one the caller meant."""
    from runas_podman.host.safepath import check_open_file_for_root

    for open_file in plan.open_files:
        problem = check_open_file_for_root(open_file.path, caller_uid)
        if problem is not None:
            raise UsageError(
                f"--open-file {open_file.path}: {problem}, so PID 1 (as root) might open another "
                f"file; use --via user to let {plan.user.name}'s own manager open it with "
                f"{plan.user.name}'s rights, or keep the secret where only root can change the "
                "path (e.g. /etc/runas-podman/secrets)"
            )
