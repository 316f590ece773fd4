"""Docs that state facts the code decides are checked against the code."""

from __future__ import annotations

import re
from pathlib import Path

from runas_podman.core.unitprops import KNOWN_PROPERTIES, properties_markdown

DOCS = Path(__file__).resolve().parents[2] / "docs"
REGENERATE = (
    "regenerate it: python -c 'from runas_podman.core.unitprops import properties_markdown; "
    'print(properties_markdown(), end="")\' > docs/properties.md'
)


def table_names(text: str) -> list[str]:
    """The names in the first column of the markdown table rows of `text`."""
    return re.findall(r"^\| `([A-Za-z0-9]+)` \|", text, flags=re.MULTILINE)


def test_properties_reference_lists_exactly_the_supported_properties() -> None:
    listed = table_names((DOCS / "properties.md").read_text())
    assert sorted(listed) == sorted(set(listed)), "a property is listed twice"
    assert set(listed) == set(KNOWN_PROPERTIES), REGENERATE


def test_properties_reference_is_the_generated_one() -> None:
    assert (DOCS / "properties.md").read_text() == properties_markdown(), REGENERATE


def test_cli_reference_names_no_unknown_property() -> None:
    """docs/cli.md may still carry its old list (or just link to docs/properties.md):
    whatever it names must exist."""
    text = (DOCS / "cli.md").read_text()
    if "The supported names:" not in text:
        return
    listed = text.split("The supported names:")[1].split("\n## ")[0]
    names = {word.strip("`,. \n") for word in listed.split()} - {""}
    assert names <= set(KNOWN_PROPERTIES)
