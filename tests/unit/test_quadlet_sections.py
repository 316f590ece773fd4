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
