"""The package's shape, held: folders by concern, imports only downward, no circle.

Every import is counted, function-level ones included (a lazy import stays lazy for
speed, never to hide a circle)."""

from __future__ import annotations

import ast
from pathlib import Path

import runas_podman

PACKAGE = Path(runas_podman.__file__).parent
# Each folder may import only those after it in this list (and itself).
LAYERS = ("cli", "install", "launch", "manage", "broker", "run", "bus", "host", "core")
PEERS = {"manage": "broker", "broker": "manage"}  # the same level: neither imports the other


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of ours NAME imports, anywhere in it."""
    base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:
                target = ".".join(base[: len(base) - node.level + 1] + ([target] if target else []))
            candidates = [target, *(f"{target}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        found.update(c for c in candidates if c in known and c != name)
    return found


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports(name, path, set(found)) for name, path in found.items()}


def layer(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def test_every_module_lives_in_a_folder_by_concern() -> None:
    loose = {name for name in modules() if layer(name) is None}
    assert loose == {"runas_podman", "runas_podman.entry", "runas_podman.__main__"}


def test_imports_point_down_only() -> None:
    upward = []
    for source, targets in graph().items():
        for target in targets:
            if target == "runas_podman":  # __version__, from an __init__ that imports nothing
                continue
            low, high = layer(source), layer(target)
            if low is None:  # entry, __main__: the top
                continue
            if (
                high is None
                or (PEERS.get(low) == high)
                or (high != low and LAYERS.index(high) < LAYERS.index(low))
            ):
                upward.append(f"{source} -> {target}")
    assert upward == []


def test_no_import_circle() -> None:
    edges = graph()
    circles = []
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in sorted(edges[name]):
            if state.get(target) == 1:
                circles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[name] = 2

    for name in sorted(edges):
        if name not in state:
            visit(name, [name])
    assert circles == []


def test_folder_init_files_import_nothing() -> None:
    """Their docstrings say what each folder owns; importing one costs nothing."""
    for path in PACKAGE.rglob("__init__.py"):
        tree = ast.parse(path.read_text())
        assert not [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))], path
