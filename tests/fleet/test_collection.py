"""The collection itself, on the host: its docs as ansible-doc shows them, its Galaxy build,
and the modules' own logic that needs no target (the fleet tests run the rest for real)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.fleet.controller import COLLECTION, ansible_bin

MODULES = ("service_user", "doctor", "quadlet", "run")
FQCN = "runas_podman.podman_users"


@pytest.fixture(scope="module")
def collections_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not ansible_bin("ansible-doc").exists():
        pytest.skip("ansible-core is not installed in this venv (pip install -e '.[dev]')")
    root = tmp_path_factory.mktemp("collections")
    (root / "ansible_collections/runas_podman").mkdir(parents=True)
    (root / "ansible_collections/runas_podman/podman_users").symlink_to(COLLECTION)
    return root


def ansible_doc(collections_path: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ansible_bin("ansible-doc")), *arguments],
        env={"ANSIBLE_COLLECTIONS_PATH": str(collections_path), "PATH": "/usr/bin:/bin",
             "ANSIBLE_HOME": str(collections_path / "home"), "LANG": "C.UTF-8"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_ansible_doc_shows_every_module(collections_path: Path) -> None:
    listed = ansible_doc(collections_path, "--list", "--json", FQCN)
    assert listed.returncode == 0, listed.stderr
    assert sorted(json.loads(listed.stdout)) == sorted(f"{FQCN}.{m}" for m in MODULES)
    shown = ansible_doc(collections_path, "--json", *(f"{FQCN}.{m}" for m in MODULES))
    assert shown.returncode == 0, shown.stderr
    docs = json.loads(shown.stdout)
    for module in MODULES:
        entry = docs[f"{FQCN}.{module}"]
        assert entry["doc"]["short_description"] and entry["examples"] and entry["return"]
        assert any("runas_podman" in r for r in entry["doc"]["requirements"])
    run = docs[f"{FQCN}.run"]["doc"]["options"]
    assert set(run) >= {"user", "via", "command", "podman", "secrets", "open_file"}
    assert run["via"]["choices"] == ["system", "user"]
    assert docs[f"{FQCN}.doctor"]["doc"]["options"]["fail_on"]["default"] == "fail"
    assert docs[f"{FQCN}.quadlet"]["doc"]["options"]["state"]["choices"] == [
        "present", "started", "stopped", "restarted", "absent",
    ]  # fmt: skip
    text = ansible_doc(collections_path, f"{FQCN}.doctor").stdout
    assert "runas-podman contributors (@runas-podman)" in text and "UNKNOWN" not in text


def test_galaxy_builds_the_collection(tmp_path: Path) -> None:
    if not ansible_bin("ansible-galaxy").exists():
        pytest.skip("ansible-core is not installed in this venv")
    built = subprocess.run(
        [str(ansible_bin("ansible-galaxy")), "collection", "build", str(COLLECTION),
         "--output-path", str(tmp_path)],
        env={"ANSIBLE_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    (tarball,) = tmp_path.glob("runas_podman-podman_users-*.tar.gz")
    with tarfile.open(tarball) as archive:
        names = set(archive.getnames())
        manifest = json.load(archive.extractfile("MANIFEST.json"))  # type: ignore[arg-type]
    assert {f"plugins/modules/{m}.py" for m in MODULES} <= names
    assert {"plugins/action/quadlet.py", "plugins/action/run.py"} <= names
    assert "plugins/module_utils/runas.py" in names
    info = manifest["collection_info"]
    assert (info["namespace"], info["name"]) == ("runas_podman", "podman_users")


@pytest.fixture(scope="module")
def modules(collections_path: Path) -> Iterator[dict[str, ModuleType]]:
    """The module files imported as Python modules (ansible_collections is a namespace)."""
    sys.path.insert(0, str(collections_path))
    try:
        yield {
            name: importlib.import_module(f"ansible_collections.{FQCN}.plugins.modules.{name}")
            for name in MODULES
        }
    finally:
        sys.path.remove(str(collections_path))


def test_open_file_is_escaped_as_the_cli_reads_it(modules: dict[str, ModuleType]) -> None:
    from runas_podman.core.plan import parse_open_file

    spec = modules["run"].open_file_spec
    for entry in (
        {"path": "/etc/runas-podman/secrets/db", "name": None, "flags": []},
        {"path": "/srv/a:b\\c", "name": "token", "flags": ["read-only", "graceful"]},
        {"path": "/srv/x", "name": None, "flags": ["append"]},
    ):
        parsed = parse_open_file(spec(entry))
        assert parsed.path == entry["path"]
        assert parsed.name == (entry["name"] or entry["path"].rsplit("/", 1)[-1])
        assert tuple(parsed.flags) == tuple(entry["flags"])


def test_which_job_the_quadlets_unit_needs(modules: dict[str, ModuleType]) -> None:
    action = modules["quadlet"].unit_action
    assert action("started", "inactive", False, True) == "StartUnit"
    assert action("started", "failed", True, True) == "StartUnit"
    assert action("started", "active", False, True) is None
    assert action("started", "active", True, True) == "RestartUnit"
    assert action("started", "active", True, False) is None
    assert action("present", "active", True, True) == "RestartUnit"
    assert action("present", "inactive", True, True) is None
    assert action("stopped", "active", False, True) == "StopUnit"
    assert action("stopped", "inactive", True, True) is None
    assert action("restarted", "inactive", False, True) == "RestartUnit"


def test_setups_diff_shows_each_step_before_and_after(modules: dict[str, ModuleType]) -> None:
    steps = [
        {"what": "user", "changed": False, "detail": "web exists (uid 998)"},
        {"what": "subuid/subgid", "changed": True, "detail": "added sub-ids 100000-165535 for web"},
        {"what": "linger", "changed": True, "detail": "would enable linger for web (logind)"},
        {"what": "podman.socket", "changed": True,
         "detail": "would enable and start podman.socket for web"},
        {"what": "undo", "changed": True, "detail": "undone: something"},
    ]  # fmt: skip
    diff = modules["service_user"].diff_of("web", steps)
    assert diff["before"].splitlines() == [
        "user: web exists (uid 998)",
        "subuid/subgid: no range",
        "linger: disabled",
        "podman.socket: disabled, inactive",
    ]
    assert diff["after"].splitlines()[1:] == [
        "subuid/subgid: added sub-ids 100000-165535 for web",
        "linger: would enable linger for web (logind)",
        "podman.socket: would enable and start podman.socket for web",
    ]


def test_a_secret_is_written_whole_or_the_writer_ends(modules: dict[str, ModuleType]) -> None:
    """The run module's pipe writer: all of a value larger than a pipe holds while someone
    reads; and an end, not a hang, when nobody reads and the read end closes."""
    import os
    import threading

    write_secret = modules["run"].write_secret
    value = os.urandom(1 << 20)
    read_end, write_end = os.pipe()
    writer = threading.Thread(target=write_secret, args=(write_end, value))
    writer.start()
    with os.fdopen(read_end, "rb") as reader:
        assert reader.read() == value
    writer.join(5)
    assert not writer.is_alive()
    read_end, write_end = os.pipe()
    writer = threading.Thread(target=write_secret, args=(write_end, value))
    writer.start()
    os.close(read_end)  # nobody reads: the writer gets EPIPE
    writer.join(5)
    assert not writer.is_alive()


def test_messages_speak_the_modules_words(modules: dict[str, ModuleType]) -> None:
    words = modules["service_user"].module_words
    assert words("unknown user 'x': add --create to create it") == (
        "unknown user 'x': set create: true to create it"
    )
    assert words("x was not created by runas-podman setup: add --force to take it down anyway "
                 "(its account stays unless --delete-user)") == (
        "x was not created by runas-podman setup: set force: true to take it down anyway "
        "(its account stays unless delete_user: true)"
    )  # fmt: skip
