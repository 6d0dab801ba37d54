"""The house holds: no import cycle among the project's modules (imports inside functions count), no test
double inside a product package, no product module over 700 lines, and the backbone imports no circle."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = (
    "backbone",
    "bikewerk",
    "bot",
    "circles",
    "domain",
    "handlers",
    "keyboards",
    "scheduler",
    "storage",
)
PROJECT = (*PRODUCT, "demo", "testkit")
MAX_LINES = 700


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    found = {_module_name(p): p for top in PROJECT for p in (ROOT / top).rglob("*.py")}
    found["main"] = ROOT / "main.py"
    return found


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """Every project module `path` imports, at module level or inside a function."""
    found: set[str] = set()
    package = _module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    [*package.split(".")[: len(package.split(".")) - node.level + 1], base]
                ).strip(".")
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for name in names:
            # `from a.b import c` imports a.b.c when c is a module, else a.b
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    found.discard(_module_name(path))
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, modules) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return result


def test_no_import_cycle_among_the_projects_modules() -> None:
    assert _cycles(_graph()) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_product_module_imports_a_test_double() -> None:
    graph = _graph()
    offenders = {
        name: sorted(i for i in imported if i.split(".")[0] == "testkit")
        for name, imported in graph.items()
        if name.split(".")[0] in PRODUCT
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_backbone_imports_no_circle() -> None:
    graph = _graph()
    reaching = {
        name: sorted(i for i in imported if i.split(".")[0] in {"circles", "handlers", "scheduler"})
        for name, imported in graph.items()
        if name.split(".")[0] == "backbone"
    }
    assert {k: v for k, v in reaching.items() if v} == {}


def test_no_product_module_is_over_700_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): n
        for top in PRODUCT
        for path in (ROOT / top).rglob("*.py")
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}
