"""The files install writes, as artifacts (path, content, component): the PAM file, the
broker's units, the polkit action, the empower group and rule, the man pages and the
completions of the Click commands it is handed."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence

import click

from runas_podman.core.elevate import PAM_FILE
from runas_podman.core.errors import RunasError
from runas_podman.install.man import Programs, render_man_pages
from runas_podman.install.manifest import (
    BROKER,
    BROKER_UNITS,
    COMMANDS,
    COMPLETION,
    EMPOWER,
    LAUNCH,
    LAUNCH_UNITS,
    MAN,
    PAM,
    POLKIT,
    POLKIT_ACTIONS,
    UNIT_DIR,
    Artifact,
    Manifest,
    Target,
)

# --- what is installed ----------------------------------------------------------------------


def pam_artifact(dest: str = PAM_FILE, target: Target | None = None) -> Artifact:
    """/etc/pam.d/runas for the target's distribution (its os-release and pam.d; with
    --root, this machine's when the staging root has neither yet)."""
    from runas_podman.host.hostfiles import choose_pam_stack, parse_os_release

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

    from runas_podman.host.hostfiles import check_interpreter_trusted

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
    return _unit_artifacts(BROKER, BROKER_UNITS, dest)


COMMAND_SCRIPT = """\
#!{python} -IS
# {name}, written by `runas-podman install` (uninstall removes it): the console script
# started without site's work (-I -S), its imports found where this install has them.
# Root's commands then reach the launch server for the cost of a bare interpreter.
import sys

sys.path[:0] = {paths!r}
from runas_podman.entry import {function}

sys.exit({function}())
"""
# What the in-process path imports besides the package (each one's directory is added).
COMMAND_IMPORTS = ("runas_podman", "click", "dbus_next", "pam", "podman")


def command_artifacts(prefix: str) -> list[Artifact]:
    """PREFIX/bin/runas-podman and runas for this interpreter and this install."""
    import importlib.util

    paths: list[str] = []
    for module in COMMAND_IMPORTS:
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.origin:
            continue  # (podman-py missing: those commands say so when they run)
        directory = os.path.dirname(os.path.dirname(os.path.abspath(spec.origin)))
        if directory not in paths:
            paths.append(directory)
    scripts = os.path.join(sys.prefix, "bin")
    artifacts = []
    for name, function in (("runas-podman", "runas_podman"), ("runas", "runas")):
        text = COMMAND_SCRIPT.format(python=sys.executable, name=name, paths=paths,
                                     function=function)  # fmt: skip
        artifacts.append(Artifact(COMMANDS, f"{prefix}/bin/{name}", text, mode=0o755,
                                  replaces_link_to=os.path.join(scripts, name)))  # fmt: skip
    return artifacts


def launch_artifacts(dest: str = UNIT_DIR) -> list[Artifact]:
    """runas-podman-launch.socket and .service (root's launch server), this interpreter."""
    return _unit_artifacts(LAUNCH, LAUNCH_UNITS, dest)


def _unit_artifacts(component: str, names: Sequence[str], dest: str) -> list[Artifact]:
    from importlib.resources import files

    artifacts = []
    for name in names:
        text = files("runas_podman").joinpath(f"data/systemd/{name}").read_text()
        path = os.path.join(dest, name)
        artifacts.append(Artifact(component, path, text.replace("{python}", sys.executable)))
    return artifacts


def check_empower_polkit() -> None:
    """Refuse --empower where polkit ignores a process's own groups (empower.py)."""
    from runas_podman.manage.empower import POLKIT_GROUPS_OF_PROCESS_SINCE, polkit_version

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
    from runas_podman.manage import empower

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
        from runas_podman.host.lookup import group_exists

        return group_exists(name)
    try:
        with open(target.host("/etc/group")) as groups:
            return any(line.split(":", 1)[0] == name for line in groups)
    except OSError:
        return False


def create_empower_group(target: Target, dry_run: bool) -> None:
    """systemd-sysusers on our file: the group exists before install returns."""
    import subprocess

    from runas_podman.host.lookup import executable, group_exists
    from runas_podman.manage import empower

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


def delete_empower_group() -> None:
    import subprocess

    from runas_podman.host.lookup import group_exists
    from runas_podman.manage import empower

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


def man_artifacts(prefix: str, programs: Programs) -> tuple[list[Artifact], str | None]:
    """The man pages for PREFIX/share/man/man1, and a note when there are none to install.

    The wheel carries them; a checkout (editable install) has none, and generates them
    here when click-man is importable."""
    pages = shipped_man_pages()
    note = None
    if not pages:
        try:
            pages = render_man_pages(programs)
        except ImportError:
            note = (
                "no man pages: this installation was built without click-man "
                "(install from the wheel, see runas-podman-install(1))"
            )
    directory = f"{prefix}/share/man/man1"
    artifacts = [Artifact(MAN, f"{directory}/{name}", text) for name, text in sorted(pages.items())]
    return artifacts, note


def completion_artifacts(prefix: str, programs: Programs) -> list[Artifact]:
    """The bash, zsh and fish completions of PROGRAMS (runas-podman, runas) under
    PREFIX/share."""
    from runas_podman.install.completion import SHELLS, completion_paths, completion_script

    artifacts = []
    for prog, command in programs:
        paths = completion_paths(prog)
        for shell in SHELLS:
            text = completion_script(shell, command, prog)
            artifacts.append(Artifact(COMPLETION, f"{prefix}/share/{paths[shell]}", text))
    return artifacts
