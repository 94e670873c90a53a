"""The package's shape: no import cycles (module level or inside functions) and one-way layers.

Every ``import`` statement of ``src/synthproxy`` counts, wherever it stands, so a function-level import cannot
hide a cycle. Each package may import only the packages below it (``LAYERS``); the CLI sits on top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "synthproxy"

# package -> the synthproxy packages it may import (besides itself and the root package's __version__)
LAYERS: dict[str, set[str]] = {
    "errors": set(),
    "data": {"errors"},
    "ddsp": {"errors"},
    "synths": {"errors", "ddsp"},
    "presets": {"errors", "data", "synths"},
    "audio": {"errors", "data"},
    "metrics": {"errors"},
    "render": {"errors", "audio", "synths"},
    "nn": {"errors", "synths"},
    "training": {"errors", "data"},
    "proxy": {"errors", "data", "metrics", "nn", "synths", "training"},
    "soundsets": {"errors", "data", "audio"},
    "pipeline": {"errors", "data", "audio", "synths", "presets", "render"},
    "matching": {"errors", "data", "audio", "synths", "presets", "render", "metrics", "nn", "training", "proxy",
                 "soundsets", "ddsp", "pipeline"},
    "report": {"errors", "data", "nn", "synths", "metrics", "audio"},
    "config": {"errors", "audio", "synths", "metrics", "pipeline"},
    "plan": {"errors", "data", "config", "synths", "audio"},
    "cli": {"*"},
    "__main__": {"cli"},
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every synthproxy module ``path`` imports, at module level or inside functions."""
    tree = ast.parse(path.read_text(), str(path))
    me = _module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("synthproxy"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module or ""
            if not mod.startswith("synthproxy"):
                continue
            out.add(mod)
            for a in node.names:  # "from synthproxy.x import y" may import the submodule y
                if (SRC.parent / (mod + "." + a.name).replace(".", "/")).with_suffix(".py").exists() or \
                        (SRC.parent / (mod + "." + a.name).replace(".", "/") / "__init__.py").exists():
                    out.add(f"{mod}.{a.name}")
    out.discard(me)
    return out


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in SRC.rglob("*.py")}
    return {m: {i for i in _imports(p) if i in modules} for m, p in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_no_module_import_cycles():
    assert _cycles(_graph()) == []


def test_no_package_import_cycles():
    pkg: dict[str, set[str]] = {}
    for m, deps in _graph().items():
        pkg.setdefault(_package(m), set()).update(_package(d) for d in deps if _package(d) != _package(m))
    assert _cycles(pkg) == []


def test_layers_are_one_way():
    wrong = []
    for m, deps in _graph().items():
        p = _package(m)
        if not p:
            continue
        allowed = LAYERS.get(p)
        assert allowed is not None, f"package {p!r} ({m}) has no place in LAYERS"
        if "*" in allowed:
            continue
        wrong += [f"{m} -> {d}" for d in deps if _package(d) not in allowed | {p, ""}]
    assert wrong == []


@pytest.mark.parametrize("bad", ["a_imports_b_imports_a"])
def test_cycle_finder_finds_a_cycle(bad):
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
