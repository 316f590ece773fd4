"""Docs that state facts the code decides are checked against the code."""

from __future__ import annotations

from pathlib import Path

from runas_podman.unitprops import KNOWN_PROPERTIES

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_cli_reference_lists_exactly_the_supported_properties() -> None:
    text = (DOCS / "cli.md").read_text()
    listed = text.split("The supported names:")[1].split("## Exit status")[0]
    names = {word.strip("`,. \n") for word in listed.split()} - {""}
    assert names == set(KNOWN_PROPERTIES)
