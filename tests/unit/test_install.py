"""`runas-podman install` / `uninstall` into a temporary --root: what is written, reported,
refused and removed; and the man pages click-man generates from the Click definitions."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from runas_podman import __version__
from runas_podman.cli.common import run_cli
from runas_podman.cli.runas_podman import cli
from runas_podman.install import artifacts, install, man
from runas_podman.install import manifest as manifest_module
from runas_podman.install.manifest import MANIFEST, Artifact, Manifest, sha256

Run = tuple[int, str, str]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Iterator[object]:
    def run_command(*args: str) -> Run:
        with pytest.raises(SystemExit) as exited:
            run_cli(cli, "runas-podman", list(args))
        out, err = capsys.readouterr()
        code = exited.value.code
        return (code if isinstance(code, int) else 0), out, err

    yield run_command


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A staging root with what the PAM choice reads: a Debian-like /etc."""
    (tmp_path / "etc/pam.d").mkdir(parents=True)
    for name in ("common-auth", "common-account", "common-session"):
        (tmp_path / "etc/pam.d" / name).write_text("# stack\n")
    (tmp_path / "etc/os-release").write_text('PRETTY_NAME="Debian GNU/Linux 13"\nID=debian\n')
    return tmp_path


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under root, with the content of files (None for directories)."""
    return {
        str(path.relative_to(root)): (None if path.is_dir() else path.read_bytes())
        for path in sorted(root.rglob("*"))
    }


def written_paths(root: Path) -> set[str]:
    manifest = Manifest.parse((root / MANIFEST.lstrip("/")).read_text())
    return set(manifest.files)


SHELL_FILES = {
    "/usr/local/share/bash-completion/completions/runas-podman",
    "/usr/local/share/bash-completion/completions/runas",
    "/usr/local/share/zsh/site-functions/_runas-podman",
    "/usr/local/share/zsh/site-functions/_runas",
    "/usr/local/share/fish/vendor_completions.d/runas-podman.fish",
    "/usr/local/share/fish/vendor_completions.d/runas.fish",
}


def test_dry_run_lists_everything_and_writes_nothing(run, root: Path) -> None:  # type: ignore[no-untyped-def]
    before = snapshot(root)
    code, out, err = run("install", "--root", str(root), "--dry-run")
    assert code == 0, err
    assert snapshot(root) == before
    lines = out.splitlines()
    assert lines[0] == (
        f"would install {root}/etc/pam.d/runas (Debian stack: common-auth, common-account, "
        "common-session)"
    )
    assert f"would install {root}/usr/local/share/man/man1/runas.1" in lines
    assert f"would install {root}/usr/local/share/man/man1/runas-podman-exec.1" in lines
    for path in SHELL_FILES:
        assert f"would install {root}{path}" in lines
    assert lines[-1] == "dry run: nothing changed"


def test_install_writes_reports_and_records_each_file(run, root: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run("install", "--root", str(root))
    assert code == 0 and err == ""
    lines = out.splitlines()
    not_started = "not started (--root): on the target, systemctl enable --now "
    assert lines[-1] == not_started + "runas-podman-launch.socket"  # root's launch server
    reported = {line.split(" ", 1)[1].split(" (")[0] for line in lines[:-1]}
    assert all(line.startswith("installed ") for line in lines[:-1])
    recorded = written_paths(root)
    assert reported == {f"{root}{path}" for path in recorded}
    assert {"/etc/pam.d/runas", "/usr/local/share/man/man1/runas.1"} | SHELL_FILES <= recorded
    manifest = Manifest.parse((root / MANIFEST.lstrip("/")).read_text())
    for path, (_component, digest) in manifest.files.items():
        file = root / path.lstrip("/")
        assert sha256(file.read_bytes()) == digest
        command = path.startswith("/usr/local/bin/")
        assert stat.S_IMODE(file.stat().st_mode) == (0o755 if command else 0o644), path
    assert "@include common-auth" in (root / "etc/pam.d/runas").read_text()
    # The manifest is the target's: no staging root in it.
    assert str(root) not in (root / MANIFEST.lstrip("/")).read_text()


def test_second_install_is_up_to_date(run, root: Path) -> None:  # type: ignore[no-untyped-def]
    run("install", "--root", str(root))
    code, out, _err = run("install", "--root", str(root))
    assert code == 0
    assert out.splitlines() and all(line.startswith("up to date ") for line in out.splitlines())


def test_a_foreign_file_is_refused_without_force(run, root: Path) -> None:  # type: ignore[no-untyped-def]
    page = root / "usr/local/share/man/man1/runas.1"
    page.parent.mkdir(parents=True)
    page.write_text("somebody else's page\n")
    before = snapshot(root)
    code, out, err = run("install", "--root", str(root))
    assert code == 125 and out == ""
    assert err == (
        f"runas-podman: {page} exists and was not installed by runas-podman: "
        "--force to replace it\n"
    )
    assert snapshot(root) == before  # nothing at all was written
    code, _out, err = run("install", "--root", str(root), "--dry-run")
    assert code == 125 and err.count("\n") == 1
    code, out, _err = run("install", "--root", str(root), "--force")
    assert code == 0
    assert f"replaced {page}" in out.splitlines()
    assert page.read_text().startswith(".TH")


def test_each_refusal_is_one_line(run, root: Path) -> None:  # type: ignore[no-untyped-def]
    for name in ("runas.1", "runas-podman.1"):
        page = root / "usr/local/share/man/man1" / name
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text("foreign\n")
    code, _out, err = run("install", "--root", str(root))
    assert code == 125
    assert [line.split(": ", 1)[1].split(" ")[0] for line in err.splitlines()] == [
        f"{root}/usr/local/share/man/man1/runas-podman.1",
        f"{root}/usr/local/share/man/man1/runas.1",
    ]


def test_a_file_changed_since_install_is_refused(run, root: Path) -> None:  # type: ignore[no-untyped-def]
    run("install", "--root", str(root))
    pam = root / "etc/pam.d/runas"
    pam.write_text(pam.read_text() + "auth required pam_deny.so\n")
    code, _out, err = run("install", "--root", str(root))
    assert code == 125
    assert err == (
        f"runas-podman: {pam} was changed since runas-podman installed it: --force to replace it\n"
    )
    code, _out, err = run("uninstall", "--root", str(root))
    assert code == 125
    assert err.endswith("was changed since runas-podman installed it: --force to remove it\n")
    assert pam.exists()
    code, out, _err = run("uninstall", "--root", str(root), "--force")
    assert code == 0 and f"removed {pam}" in out.splitlines()


def test_uninstall_removes_exactly_what_install_wrote(run, root: Path) -> None:  # type: ignore[no-untyped-def]
    # Somebody else's files, in a directory install shares and in one it creates.
    shared = root / "usr/local/share/man/man1"
    shared.mkdir(parents=True)
    (shared / "other.1").write_text("other\n")
    before = snapshot(root)
    assert run("install", "--root", str(root))[0] == 0
    (root / "usr/local/share/zsh/site-functions/_other").write_text("#compdef other\n")
    code, out, err = run("uninstall", "--root", str(root), "--dry-run")
    assert code == 0, err
    assert f"would remove {root}/etc/pam.d/runas" in out.splitlines()
    assert f"would remove {root}/var/lib/runas-podman/" in out.splitlines()
    assert f"would remove {root}/usr/local/share/bash-completion/" in out.splitlines()
    assert f"would remove {root}/usr/local/share/zsh/site-functions/" not in out.splitlines()
    code, out, err = run("uninstall", "--root", str(root))
    assert code == 0, err
    after = snapshot(root)
    assert after.pop("usr/local/share/zsh/site-functions/_other") == b"#compdef other\n"
    assert after == {
        **before,
        "usr/local/share/zsh": None,
        "usr/local/share/zsh/site-functions": None,
    }
    assert f"removed {root}{MANIFEST}" in out.splitlines()
    code, out, _err = run("uninstall", "--root", str(root))
    assert code == 0 and out.startswith("nothing to remove")


def test_uninstall_after_a_fresh_root_leaves_it_empty(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert run("install", "--root", str(tmp_path))[0] == 0
    assert run("uninstall", "--root", str(tmp_path))[0] == 0
    assert list(tmp_path.iterdir()) == []


def test_reinstall_updates_its_own_files_and_drops_pages_no_longer_shipped(
    run,  # type: ignore[no-untyped-def]
    root: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pages = {"runas.1": ".TH RUNAS 1\n", "runas-podman-gone.1": ".TH GONE 1\n"}
    monkeypatch.setattr(artifacts, "shipped_man_pages", lambda: dict(pages))
    assert run("install", "--root", str(root))[0] == 0
    pages.pop("runas-podman-gone.1")
    pages["runas.1"] = ".TH RUNAS 1 new\n"
    code, out, err = run("install", "--root", str(root))
    assert code == 0, err
    man1 = f"{root}/usr/local/share/man/man1"
    assert f"updated {man1}/runas.1" in out.splitlines()
    assert f"removed {man1}/runas-podman-gone.1 (no longer shipped)" in out.splitlines()
    assert (root / "usr/local/share/man/man1/runas.1").read_text() == ".TH RUNAS 1 new\n"
    assert "/usr/local/share/man/man1/runas-podman-gone.1" not in written_paths(root)


def test_a_pam_file_of_an_older_install_pam_is_updated(run, root: Path) -> None:  # type: ignore[no-untyped-def]
    pam = root / "etc/pam.d/runas"
    pam.write_text('# PAM service "runas" (runas-podman\'s run0-style elevator): old\n')
    code, out, _err = run("install", "--root", str(root))
    assert code == 0
    assert out.splitlines()[0].startswith(f"updated {pam} (Debian stack")


def test_prefix_moves_man_pages_and_completions(run, root: Path) -> None:  # type: ignore[no-untyped-def]
    code, _out, _err = run("install", "--root", str(root), "--prefix", "/usr")
    assert code == 0
    assert (root / "usr/share/man/man1/runas.1").exists()
    assert (root / "usr/share/bash-completion/completions/runas-podman").exists()
    assert not (root / "usr/local").exists()


def test_bad_prefix_or_root_is_usage(run, root: Path) -> None:  # type: ignore[no-untyped-def]
    code, _out, err = run("install", "--root", str(root), "--prefix", "usr")
    assert code == 2 and err == "runas-podman: --prefix 'usr': give an absolute path\n"
    code, _out, err = run("uninstall", "--root", "relative")
    assert code == 2 and err.count("\n") == 1


def test_broker_units_into_a_staging_root_start_nothing(
    run,  # type: ignore[no-untyped-def]
    root: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    checked = []
    monkeypatch.setattr(install, "check_broker_interpreter", lambda: checked.append(True))
    code, out, err = run("install", "--root", str(root), "--broker")
    assert code == 0, err
    assert checked == [True, True]  # the broker's interpreter, the launch server's
    service = root / "etc/systemd/system/runas-broker@.service"
    assert f"ExecStart={sys.executable} -m runas_podman.broker" in service.read_text()
    assert f"installed {root}/etc/systemd/system/runas-broker.socket" in out.splitlines()
    assert (
        "not started (--root): on the target, systemctl enable --now runas-broker.socket"
        in out.splitlines()
    )


def test_an_untrusted_interpreter_refuses_before_anything_is_written(
    run,  # type: ignore[no-untyped-def]
    root: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def untrusted() -> None:
        raise install.RunasError("refusing to install the broker: interpreter /tmp/x ...")

    monkeypatch.setattr(install, "check_broker_interpreter", untrusted)
    before = snapshot(root)
    code, _out, err = run("install", "--root", str(root), "--broker")
    assert code == 125 and err.startswith("runas-podman: refusing to install the broker")
    assert snapshot(root) == before


def test_install_pam_keeps_its_dest_and_reports_the_stack(
    run,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for module in (manifest_module, install):
        monkeypatch.setattr(module, "MANIFEST", str(tmp_path / "state/installed"))
    dest = tmp_path / "runas.pam"
    code, out, _err = run("install-pam", "--dest", str(dest))
    assert code == 0
    assert out.startswith(f"installed {dest} (")
    assert "stack" in out
    code, out, _err = run("install-pam", "--dest", str(dest))
    assert code == 0 and out.startswith(f"up to date {dest} (")
    assert str(dest) in (tmp_path / "state/installed").read_text()


def test_the_run_action_ships() -> None:
    (artifact,) = artifacts.polkit_artifacts()
    assert artifact.path == "/usr/share/polkit-1/actions/org.runas_podman.policy"
    assert '<action id="org.runas_podman.run">' in artifact.text
    assert "$(command_line)" in artifact.text and "auth_admin_keep" not in artifact.text


def test_manifest_round_trip_and_damage() -> None:
    manifest = Manifest(
        files={"/etc/pam.d/runas": ("pam", "a" * 64), "/usr/x y/z": ("man", "b" * 64)},
        dirs={"/usr/x y": "man"},
    )
    assert Manifest.parse(manifest.render()) == manifest
    with pytest.raises(ValueError, match="not a manifest line"):
        Manifest.parse("pam nothex /etc/pam.d/runas\n")


def test_a_damaged_manifest_is_one_line(run, root: Path) -> None:  # type: ignore[no-untyped-def]
    state = root / MANIFEST.lstrip("/")
    state.parent.mkdir(parents=True)
    state.write_text("garbage\n")
    code, _out, err = run("uninstall", "--root", str(root))
    assert code == 125 and err == (
        f"runas-podman: {state} is damaged: not a manifest line: 'garbage'\n"
    )


def test_a_directory_in_the_way_is_refused_even_with_force(run, root: Path) -> None:  # type: ignore[no-untyped-def]
    (root / "etc/pam.d/runas").mkdir()
    code, _out, err = run("install", "--root", str(root), "--force")
    assert code == 125
    pam = root / "etc/pam.d/runas"
    assert err == f"runas-podman: {pam} is a directory, not a file runas-podman installed\n"


def test_a_symlink_is_replaced_only_with_force(run, root: Path) -> None:  # type: ignore[no-untyped-def]
    target = root / "elsewhere"
    target.write_text("keep me\n")
    (root / "etc/pam.d/runas").symlink_to(target)
    code, _out, err = run("install", "--root", str(root))
    assert code == 125 and "is a symbolic link" in err
    assert run("install", "--root", str(root), "--force")[0] == 0
    assert not (root / "etc/pam.d/runas").is_symlink()
    assert target.read_text() == "keep me\n"  # the link was replaced, not followed


def test_plan_install_adopts_an_identical_file(tmp_path: Path) -> None:
    target = manifest_module.Target(str(tmp_path))
    (tmp_path / "f").write_text("same\n")
    plan = manifest_module.plan_install(
        [Artifact("man", "/f", "same\n")], Manifest(), target, force=False
    )
    assert [action.verb for action in plan.actions] == ["current"] and plan.refusals == []


def test_commands_stay_lazy() -> None:
    probe = (
        "import sys, runas_podman.cli.runas_podman, runas_podman.cli.runas; "
        "print(sorted(m for m in ('runas_podman.install.install', "
        "'runas_podman.install.completion', "
        "'click_man', 'hashlib') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.stdout.strip() == "[]", result.stderr


# --- man pages ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pages() -> dict[str, str]:
    from runas_podman.cli.runas_podman import programs

    return man.render_man_pages(programs(), version="9.9", date="2024-01-02")


def test_a_page_for_every_command(pages: dict[str, str]) -> None:
    import click

    expected = {"runas.1", "runas-podman.1"}
    root_context = click.Context(cli, info_name="runas-podman")
    for name in cli.list_commands(root_context):
        command = cli.get_command(root_context, name)
        expected.add(f"runas-podman-{name}.1")
        if isinstance(command, click.Group):
            expected |= {f"runas-podman-{name}-{sub}.1" for sub in command.commands}
    assert set(pages) == expected
    assert {"runas-podman-quadlet-install.1", "runas-podman-exec.1", "runas-podman-install.1"} <= (
        set(pages)
    )


def test_page_header_name_and_sections(pages: dict[str, str]) -> None:
    exec_page = pages["runas-podman-exec.1"]
    lines = exec_page.splitlines()
    assert lines[0] == (
        '.TH "RUNAS-PODMAN-EXEC" "1" "2024-01-02" "runas-podman 9.9" "runas-podman Manual"'
    )
    assert lines[1:3] == [
        ".SH NAME",
        r"runas\-podman\-exec \- Run COMMAND as USER in a transient service.",
    ]
    for section in (
        ".SH SYNOPSIS",
        ".SH OPTIONS",
        ".SH PROPERTIES",
        ".SH EXIT STATUS",
        ".SH SEE ALSO",
    ):
        assert section in lines
    assert "MemoryMax" in exec_page
    quadlet = pages["runas-podman-quadlet.1"]
    assert r"\fBrunas-podman-quadlet-install(1)\fP" in quadlet  # click-man's name, fixed
    assert r"\fBrunas\-podman\fP(1)" in pages["runas-podman-quadlet-start.1"]
    assert "EXIT STATUS" in pages["runas.1"]


def test_pages_render_without_warnings(pages: dict[str, str], tmp_path: Path) -> None:
    for name, text in pages.items():  # without groff, at least: every line is roff
        assert all(
            not line.startswith(".")
            or line.split(" ")[0] in (".TH", ".SH", ".B", ".TP", ".PP", ".nh", ".hy")
            for line in text.splitlines()
        ), name
    groff = "/usr/bin/groff"  # groff-base, which man-db needs: on the host, not the testbed
    if not os.access(groff, os.X_OK):
        return
    for name, text in pages.items():
        result = subprocess.run(
            [groff, "-man", "-Tutf8", "-ww", "-z"], input=text, capture_output=True, text=True
        )
        assert result.returncode == 0 and result.stderr == "", f"{name}: {result.stderr}"


def test_help_lines_that_look_like_requests_are_text() -> None:
    page = man._guard_lines(".TH X\n.SH NAME\n.not a request\n'quoted\n.PP\ntext")
    assert page.splitlines() == [
        ".TH X",
        ".SH NAME",
        r"\&.not a request",
        r"\&'quoted",
        ".PP",
        "text",
    ]


def test_prefix_slash_and_trailing_slashes(run, root: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, _err = run("install", "--root", str(root), "--prefix", "/opt/rp/", "--dry-run")
    assert code == 0
    assert f"would install {root}/opt/rp/share/man/man1/runas.1" in out.splitlines()
    code, out, _err = run("install", "--root", str(root), "--prefix", "/", "--dry-run")
    assert f"would install {root}/share/man/man1/runas.1" in out.splitlines()


def test_install_pam_records_a_relative_dest_as_absolute(
    run,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for module in (manifest_module, install):
        monkeypatch.setattr(module, "MANIFEST", str(tmp_path / "state/installed"))
    monkeypatch.chdir(tmp_path)
    assert run("install-pam", "--dest", "runas.pam")[0] == 0
    manifest = Manifest.parse((tmp_path / "state/installed").read_text())
    assert set(manifest.files) == {str(tmp_path / "runas.pam")}
    code, _out, err = run("install-pam", "--dest", "bad\nname")
    assert code == 2 and err.count("\n") == 1


def test_empower_adds_what_the_target_lacks_and_uninstall_takes_it_away(run, root: Path) -> None:  # type: ignore[no-untyped-def]
    from runas_podman.manage import empower

    (root / "etc/group").write_text("root:x:0:\n")
    code, out, err = run("install", "--root", str(root), "--empower")
    assert code == 0, err
    lines = out.splitlines()
    assert f"installed {root}{empower.SYSUSERS_FILE} (group empower)" in lines
    assert f"installed {root}{empower.RULE_FILE} (polkit: every action for group empower)" in lines
    assert f"not created (--root): on the target, systemd-sysusers {empower.SYSUSERS_FILE}" in lines
    assert (root / empower.RULE_FILE.lstrip("/")).read_text() == empower.RULE_TEXT
    assert "g empower -" in (root / empower.SYSUSERS_FILE.lstrip("/")).read_text()
    # A later install without --empower keeps them; uninstall removes them.
    assert run("install", "--root", str(root))[0] == 0
    assert {empower.SYSUSERS_FILE, empower.RULE_FILE} <= written_paths(root)
    code, out, _err = run("uninstall", "--root", str(root))
    assert code == 0
    assert not (root / empower.RULE_FILE.lstrip("/")).exists()
    assert not (root / "etc/sysusers.d").exists() and not (root / "etc/polkit-1").exists()


def test_empower_leaves_systemds_own_group_and_rule_alone(run, root: Path) -> None:  # type: ignore[no-untyped-def]
    from runas_podman.manage import empower

    (root / "etc/group").write_text("root:x:0:\nempower:x:990:\n")
    rules = root / "usr/share/polkit-1/rules.d"
    rules.mkdir(parents=True)
    (rules / "empower.rules").write_text("// systemd's\n")
    code, out, err = run("install", "--root", str(root), "--empower")
    assert code == 0, err
    assert "runas-empower" not in out and "group empower" not in out
    assert not {empower.SYSUSERS_FILE, empower.RULE_FILE} & written_paths(root)


def test_empower_note_names_the_version_and_the_fix() -> None:
    from runas_podman.manage.empower import missing_note

    assert missing_note(True, True) is None
    for note in (missing_note(False, True), missing_note(True, False)):
        assert note is not None and "\n" not in note
        assert "systemd >= 259" in note and "runas-podman install --empower" in note


def test_the_policy_file_is_well_formed_xml() -> None:
    """polkit ignores a policy file it cannot parse (the action is then 'not registered');
    '--' inside an XML comment is such a mistake."""
    from xml.dom import minidom

    (artifact,) = artifacts.polkit_artifacts()
    minidom.parseString(artifact.text)  # raises ExpatError on a malformed file


def test_the_commands_start_without_site_and_find_this_install(run, root: Path) -> None:  # type: ignore[no-untyped-def]
    """PREFIX/bin/runas-podman and runas: `python -IS` with this install's import
    directories; they answer as the console scripts do."""
    code, _out, err = run("install", "--root", str(root))
    assert code == 0, err
    for name in ("runas-podman", "runas"):
        script = root / "usr/local/bin" / name
        text = script.read_text()
        assert text.startswith(f"#!{sys.executable} -IS\n"), text
        shown = subprocess.run([str(script), "--version"], capture_output=True, text=True,
                               timeout=60)  # fmt: skip
        assert (shown.returncode, shown.stdout) == (0, f"{name}, version {__version__}\n")
        helped = subprocess.run([str(script), "--help"], capture_output=True, text=True,
                                timeout=60)  # fmt: skip
        assert helped.returncode == 0 and helped.stdout.startswith("Usage: "), helped.stderr


def test_a_link_to_this_installs_console_script_is_taken_over(run, root: Path) -> None:  # type: ignore[no-untyped-def]
    """The README's former `ln -s VENV/bin/runas-podman /usr/local/bin/`: replaced; a link
    elsewhere is refused without --force."""
    bin_dir = root / "usr/local/bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "runas-podman").symlink_to(os.path.join(sys.prefix, "bin", "runas-podman"))
    (bin_dir / "runas").symlink_to("/usr/bin/true")
    code, out, err = run("install", "--root", str(root), "--no-launch-server")
    assert code == 125 and f"{bin_dir}/runas is a symbolic link" in err, (out, err)
    (bin_dir / "runas").unlink()
    code, out, err = run("install", "--root", str(root), "--no-launch-server")
    assert code == 0, err
    assert f"replaced {bin_dir}/runas-podman (was a link to the console script)" in out.splitlines()
    assert not (bin_dir / "runas-podman").is_symlink()
