"""Hatchling build hook: the man pages, generated from the Click definitions with click-man.

Imports the CLI from this source tree (runas_podman.install.man.render_man_pages,
handed the Click commands of runas_podman.cli.runas_podman.programs()) and puts
runas-podman(1), runas-podman-COMMAND(1) for every subcommand and runas(1) into the wheel
as package data, runas_podman/data/man/man1/*.1, which `runas-podman install` copies to
PREFIX/share/man/man1. Nothing is written into the source tree (it may be read-only, as
/src in the testbed): the pages go to a temporary directory and are force-included.

click-man is a build requirement ([build-system] requires, and this hook's dependencies).
A build without build isolation in an environment that lacks it (pip install
--no-build-isolation) still succeeds, with a warning and a wheel without man pages.
Editable installs carry none either: `runas-podman install` generates them there when
click-man is importable.
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

MAN_DIR = "runas_podman/data/man/man1"


class ManPagesHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        self._staging: str | None = None
        if self.target_name != "wheel" or version == "editable":
            return
        try:
            importlib.import_module("click_man")
        except ImportError:
            self.app.display_warning(
                "runas-podman: click-man is not installed: this wheel has no man pages "
                "(build with build isolation, or pip install click-man first)"
            )
            return
        pages = _render_from_source(self.root)
        self._staging = tempfile.mkdtemp(prefix="runas-podman-man-")
        for name, text in sorted(pages.items()):
            path = os.path.join(self._staging, name)
            with open(path, "w", encoding="utf-8") as page:
                page.write(text)
            build_data["force_include"][path] = f"{MAN_DIR}/{name}"
        self.app.display_info(f"runas-podman: {len(pages)} man pages into {MAN_DIR}")

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        if getattr(self, "_staging", None):
            shutil.rmtree(self._staging, ignore_errors=True)  # type: ignore[arg-type]


def _render_from_source(root: str) -> dict[str, str]:
    """render_man_pages() of the runas_podman package in `root`, not of any installed one."""
    saved_path = list(sys.path)
    saved_modules = {name: sys.modules[name] for name in _ours(sys.modules)}
    for name in saved_modules:
        del sys.modules[name]
    sys.path.insert(0, root)
    saved_bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True  # no __pycache__
    try:
        man = importlib.import_module("runas_podman.install.man")
        cli = importlib.import_module("runas_podman.cli.runas_podman")
        pages: dict[str, str] = man.render_man_pages(cli.programs())
        return pages
    finally:
        sys.dont_write_bytecode = saved_bytecode
        sys.path[:] = saved_path
        for name in _ours(sys.modules):
            del sys.modules[name]
        sys.modules.update(saved_modules)


def _ours(modules: Iterable[str]) -> list[str]:
    return [name for name in modules if name == "runas_podman" or name.startswith("runas_podman.")]
