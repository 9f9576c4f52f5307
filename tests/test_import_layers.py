"""Imports flow one way (DESIGN §7): every import statement of the package, those inside
functions included, reads a module of its own layer or a lower one, and the modules import
each other without a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "rfanalysis"

#: DESIGN §7's order, lowest first; a module belongs to the longest prefix listed
LAYERS: tuple[tuple[str, ...], ...] = (
    # helpers that know nothing of networks
    (
        "rfanalysis._suggest",
        "rfanalysis._table",
        "rfanalysis._memory",
        "rfanalysis._importers.errors",
    ),
    # graph and op rules; the spec grammar and files, which build graphs
    ("rfanalysis._ops", "rfanalysis._graph", "rfanalysis._parse", "rfanalysis._io"),
    ("rfanalysis._plan",),
    ("rfanalysis._engine", "rfanalysis._geometry", "rfanalysis.theory"),
    # importers (torch, ONNX) and the analyses built on the engine; the zoo (its trunks use
    # output sizes)
    (
        "rfanalysis._importers",
        "rfanalysis._empirical",
        "rfanalysis._compare",
        "rfanalysis._blindspots",
        "rfanalysis._tiling",
        "rfanalysis.tiling",
        "rfanalysis.zoo",
    ),
    ("rfanalysis._sources",),
    ("rfanalysis", "rfanalysis._api"),
    ("rfanalysis.plotting", "rfanalysis._style"),
    ("rfanalysis.cli", "rfanalysis.figures", "rfanalysis._figures"),
)


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _layer(module: str) -> int:
    best, rank = -1, None
    for i, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), i
    if rank is None:
        raise AssertionError(f"{module} has no layer in LAYERS: add it where DESIGN §7 puts it")
    return rank


def _imports(module: str, path: Path, known: set[str]) -> list[tuple[int, str]]:
    """``(line, module)`` for every import of a package module in ``path``."""
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:  # ``from . import zoo`` imports the submodule
                sub = f"{target}.{alias.name}"
                found.append((node.lineno, sub if sub in known else target))
        elif isinstance(node, ast.Call) and _is_dynamic_import(node):
            arg = node.args[0] if node.args else None
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.append((node.lineno, arg.value))
    return [(line, t) for line, t in found if t == "rfanalysis" or t.startswith("rfanalysis.")]


def _is_dynamic_import(node: ast.Call) -> bool:
    f = node.func
    name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
    return name in ("import_module", "__import__")


def _graph() -> dict[str, list[tuple[int, str]]]:
    modules = _modules()
    known = set(modules)
    return {m: _imports(m, p, known) for m, p in modules.items()}


def test_every_module_has_a_layer() -> None:
    for module in _modules():
        _layer(module)


def test_nothing_imports_upward() -> None:
    upward = []
    for module, imports in _graph().items():
        for line, target in imports:
            if _layer(target) > _layer(module):
                upward.append(f"{module}:{line} imports {target}")
    assert not upward, "imports against DESIGN §7's order:\n" + "\n".join(upward)


def test_no_import_cycle() -> None:
    """The modules, with every import (inside functions too), form no cycle."""
    graph = _graph()
    edges = {m: {t for _, t in imports if t != m} for m, imports in graph.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(edges.get(m, ())):
            if state.get(t) == 1:
                cycle = [*stack[stack.index(t) :], t]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if t in edges and t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)


def test_the_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    """The walker reads an import inside a function and a dynamic import_module call."""
    code = (
        "import importlib\n"
        "def f():\n"
        "    from .. import cli\n"
        "    importlib.import_module('rfanalysis.plotting')\n"
    )
    path = tmp_path / "x.py"
    path.write_text(code)
    found = _imports("rfanalysis._ops.x", path, {"rfanalysis.cli"})
    assert [t for _, t in found] == ["rfanalysis.cli", "rfanalysis.plotting"]
    assert _layer("rfanalysis.cli") > _layer("rfanalysis._ops.x")
