"""The package's folders are its layers: imports go downward only and no module imports itself back.

Every module is parsed with ``ast``; every import counts, also one inside a function or under
``TYPE_CHECKING`` (a lazy import hides a circle from the interpreter, not from the reader).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "pipeline"
LAYERS = ("core", "extractors", "training", "evaluation", "apps", "cli")  # lowest first
MAX_LINES = 600
# Longer modules and why they stay whole.
LONG_MODULES: dict[str, str] = {}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported(path: Path, name: str, known: set[str]) -> set[str]:
    """The package modules that ``path`` imports (``from pipeline.x import y`` counts module
    ``pipeline.x.y`` when that is a module, else ``pipeline.x``)."""
    out: set[str] = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        out.update(t for t in targets if t == "pipeline" or t.startswith("pipeline."))
    return {t for t in out if t in known and t != name}


def layer(name: str) -> int:
    parts = name.split(".")
    if len(parts) < 2:
        return -1  # pipeline/__init__.py: the version only
    assert parts[1] in LAYERS, f"{name}: every module lives in one of the layer folders {LAYERS}"
    return LAYERS.index(parts[1])


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imported(path, name, set(mods)) for name, path in mods.items()}


def test_every_module_is_in_a_layer() -> None:
    for name in modules():
        layer(name)


def test_imports_only_go_down() -> None:
    upward = [
        f"{src} ({LAYERS[layer(src)]}) imports {dst} ({LAYERS[layer(dst)]})"
        for src, dsts in graph().items()
        for dst in dsts
        if layer(dst) > layer(src)
    ]
    assert not upward, "upward imports:\n" + "\n".join(sorted(upward))


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_circle() -> None:
    edges = {src: {d for d in dsts if not src.startswith(d + ".")} for src, dsts in graph().items()}
    cycle = find_cycle(edges)
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def test_the_checker_sees_circles_and_upward_imports() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    assert layer("pipeline.cli.main") > layer("pipeline.core.schema")


def test_function_level_imports_are_seen(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from pipeline.cli.main import main\n", encoding="utf-8")
    assert imported(f, "pipeline.core.m", {"pipeline.cli.main", "pipeline.core.m"}) == {"pipeline.cli.main"}


def test_modules_are_short() -> None:
    long = {
        name: n
        for name, path in modules().items()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES and name not in LONG_MODULES
    }
    assert not long, f"modules over {MAX_LINES} lines (split them or say why in LONG_MODULES): {long}"


def test_no_private_name_is_imported_from_another_module() -> None:
    """A name starting with ``_`` belongs to its module; what another module needs is public."""
    found = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pipeline"):
                found += [f"{name}: {node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
    assert not found, found
