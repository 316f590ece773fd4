"""A Quadlet file's sections: a typo is refused with its line, not installed silently."""

from __future__ import annotations

from pathlib import Path

import pytest

from runas_podman.core.errors import RunasError
from runas_podman.manage.quadlet import SUFFIXES, check_sections

EXAMPLES = Path(__file__).parents[2] / "quadlets"


def test_the_projects_own_quadlets_pass() -> None:
    files = [p for p in EXAMPLES.iterdir() if p.suffix in SUFFIXES]
    assert files
    for path in files:
        check_sections(path.name, path.read_text())


def test_a_typo_is_refused_with_its_line_and_the_section_meant() -> None:
    text = "[Unit]\nDescription=web\n\n[Container]\nImage=busybox\n[Servce]\nRestart=always\n"
    with pytest.raises(RunasError) as raised:
        check_sections("web.container", text)
    assert raised.value.message == (
        "web.container line 6: unknown section [Servce], which systemd and Quadlet would "
        "ignore with all its keys: did you mean [Service]? (X-... for your own)"
    )


def test_own_sections_and_comments_pass() -> None:
    check_sections("a.container", "# [Nothing]\n[X-Mine]\nkey=1\n[Container]\nImage=x\n")


def test_what_a_quadlet_names_and_who_needs_a_removed_one() -> None:
    from runas_podman.manage.quadlet import dependents, references

    web = ("[Container]\nImage=app.build\nNetwork=db.network\nVolume=data.volume:/srv:Z\n"
           "Pod=web.pod\n# Network=commented.network\nEnvironment=X=y.network\n")  # fmt: skip
    assert references(web) == {"app.build", "db.network", "data.volume", "web.pod"}
    files = {"web.container": web, "db.network": "[Network]\n", "data.volume": "[Volume]\n"}
    assert dependents(files, ["db.network"]) == [("web.container", "db.network")]
    assert dependents(files, ["db.network", "web.container"]) == []  # removed together
    assert dependents(files, ["web.container"]) == []
