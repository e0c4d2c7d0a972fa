"""The package's shape: size limits, a short package root, no import cycles, layers that
point one way, and plug-in names written only in their own folders.

Limits (issue "Every plug-in is one file"): no file in src/ or benchmarks/ over 450 lines, no
class over 250, no function over 100; at most 12 modules loose at the package root. Module
cycles are read with ``ast`` at module level, those under ``TYPE_CHECKING`` included (imports
inside functions excluded); importing a submodule also runs its package's ``__init__``, so the
graph has those edges too. Between the package's parts (``sfbd.data``, ``sfbd.noise``, ...)
every import counts, function-level ones too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "src" / "sfbd"
FILES = sorted(PKG.rglob("*.py"))
BENCHMARKS = sorted((ROOT / "benchmarks").rglob("*.py"))


def _module(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module(p): p for p in FILES}


@pytest.mark.parametrize("path", FILES + BENCHMARKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_size_limits(path):
    text = path.read_text()
    assert len(text.splitlines()) <= 450, "file over 450 lines"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            n = node.end_lineno - node.lineno + 1
            limit = 250 if isinstance(node, ast.ClassDef) else 100
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


def _part(module: str) -> str:
    return ".".join(module.split(".")[:2])


def _all_imports(path: Path) -> set[str]:
    """Modules of sfbd that ``path`` imports anywhere (functions too), as absolute names."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.startswith("sfbd"):
                for a in node.names:
                    sub = f"{node.module}.{a.name}"
                    out.add(sub if sub in MODULES else node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("sfbd"))
    return out


def test_parts_point_one_way():
    """No cycle between the package's parts: e.g. data must not import methods, io not nets,
    and no part imports the package root (which imports api and run lazily)."""
    graph: dict[str, set[str]] = {}
    for m, p in MODULES.items():
        for d in _all_imports(p):
            if d == "sfbd" and m != "sfbd":
                raise AssertionError(f"{m} imports the package root; import sfbd.version etc.")
            if _part(d) != _part(m) and d != "sfbd":
                graph.setdefault(_part(m), set()).add(_part(d))
    state: dict[str, int] = {}

    def dfs(m: str, stack: list[str]) -> None:
        state[m] = 1
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                raise AssertionError("cycle between parts: " + " -> ".join([*stack, m, d]))
            if d not in state:
                dfs(d, [*stack, m])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            dfs(m, [])


def test_plugin_names_are_written_only_in_their_own_folder():
    """A registered name (method, noise model, network) is a string literal only in its own
    plug-in folder, apart from schema defaults and the demo's configuration."""
    from sfbd.methods import METHODS
    from sfbd.nets import ALIASES as NET_ALIASES
    from sfbd.nets import NETWORKS
    from sfbd.noise import ALIASES as NOISE_ALIASES
    from sfbd.noise import NOISE_MODELS

    kinds = {
        "methods": set(METHODS) - {"sfbd"},  # also the package's own name
        "noise": set(NOISE_MODELS),
        "nets": set(NETWORKS) | set(NET_ALIASES),
    }
    hits = []
    for path in FILES:
        if path.name in ("schema.py", "demo.py"):
            continue
        tree = ast.parse(path.read_text())
        docs = {
            id(n.body[0].value)
            for n in ast.walk(tree)
            if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and n.body
            and isinstance(n.body[0], ast.Expr)
            and isinstance(n.body[0].value, ast.Constant)
        }
        part = path.relative_to(PKG).parts[0]
        own = set(NOISE_ALIASES) if part == "noise" else set()  # the documented alias table
        for n in ast.walk(tree):
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs:
                if n.value in own:
                    continue
                for kind, names in kinds.items():
                    if n.value in names and part != kind:
                        hits.append(f"{path.relative_to(PKG)}:{n.lineno} {n.value!r}")
    assert not hits, hits


def test_loading_a_config_module_imports_no_torch():
    """``import sfbd.config`` (and the schema, the registry and validation) stays light."""
    import subprocess
    import sys

    code = (
        "import sys; import sfbd.config, sfbd.schema, sfbd.registry, sfbd.validate, "
        "sfbd.plugins; heavy = [m for m in ('torch', 'numpy', 'sfbd.noise', 'sfbd.nets', "
        "'sfbd.methods', 'sfbd.data') if m in sys.modules]; print(heavy)"
    )
    env = {"PYTHONPATH": str(PKG.parent)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
