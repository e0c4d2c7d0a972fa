"""The package's shape: size limits, a short package root, and no import cycles.

Limits (issue "Methods and noise models as plug-ins"): no file over 500 lines, no class over
300, no function over 120; at most 12 modules loose at the package root. Imports are read
with ``ast`` at module level, those under ``TYPE_CHECKING`` included (imports inside functions
excluded); importing a submodule also runs its package's ``__init__``, so the graph has those
edges too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "src" / "sfbd"
FILES = sorted(PKG.rglob("*.py"))


def _module(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module(p): p for p in FILES}


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PKG)))
def test_size_limits(path):
    text = path.read_text()
    assert len(text.splitlines()) <= 500, "file over 500 lines"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            n = node.end_lineno - node.lineno + 1
            limit = 300 if isinstance(node, ast.ClassDef) else 120
            assert n <= limit, f"{node.name}: {n} lines (limit {limit})"


def test_at_most_twelve_modules_at_the_root():
    loose = [p.name for p in PKG.glob("*.py")]
    assert len(loose) <= 12, loose


def _top_level_imports(path: Path) -> set[str]:
    """Modules of sfbd that ``path`` imports at module level (TYPE_CHECKING included)."""
    me = _module(path)
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.If | ast.Try):
                visit(node.body)
                visit(getattr(node, "orelse", []))
                continue
            if isinstance(node, ast.Import):
                out.update(a.name for a in node.names if a.name.startswith("sfbd"))
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    pkg = me.split(".") if is_pkg else me.split(".")[:-1]
                    pkg = pkg[: len(pkg) - node.level + 1]
                    base = ".".join([*pkg, base] if base else pkg)
                if not base.startswith("sfbd"):
                    continue
                for a in node.names:
                    sub = f"{base}.{a.name}"
                    out.add(sub if sub in MODULES else base)

    visit(ast.parse(path.read_text()).body)
    expanded = set()
    for m in out:  # importing a.b.c runs a/__init__ and a/b/__init__ too
        parts = m.split(".")
        expanded.update(".".join(parts[:i]) for i in range(2, len(parts) + 1))
    return {m for m in expanded if m in MODULES and m != me}


def test_no_import_cycles():
    graph = {m: _top_level_imports(p) for m, p in MODULES.items()}
    # a package's __init__ importing its own submodules is how packages work, not a cycle
    graph = {m: {d for d in deps if not d.startswith(m + ".")} for m, deps in graph.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(d) :] + [d]))
            if d not in state:
                dfs(d)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            dfs(m)
