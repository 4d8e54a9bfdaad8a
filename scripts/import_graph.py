"""Check the import graph of the application packages.

    python scripts/import_graph.py            # prints cycles and forbidden imports; exit 1 if any

Every import counts, also the ones inside functions (a cycle hidden in a function is still a
cycle); only imports under `if TYPE_CHECKING:` are left out, since they never run.
A module of `fedibot/` must never import from `tests/`, and `federation`,
`fediseer_sync` and `generator` must never import `fedibot`.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("fedibot", "federation", "fediseer_sync", "generator")
#: package → top-level names it must not import
FORBIDDEN = {
    "fedibot": ("tests",),
    "federation": ("tests", "fedibot", "generator", "fediseer_sync"),
    "fediseer_sync": ("tests", "fedibot", "generator", "federation"),
    "generator": ("tests", "fedibot", "federation", "fediseer_sync"),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            found[module_name(path)] = path
    return found


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node except those under `if TYPE_CHECKING:`."""
    out: list[ast.AST] = []
    todo: list[ast.AST] = [tree]
    while todo:
        node = todo.pop()
        out.append(node)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                todo.extend(child.orelse)
                continue
            todo.append(child)
    return out


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Names of the project's modules that `name` imports (anywhere in the file)."""
    is_pkg = path.name == "__init__.py"
    package = name if is_pkg else name.rpartition(".")[0]
    out: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text("utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            # the deepest project module the target names
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
        # keep forbidden top-level names visible even when they are not project modules
        for alias in getattr(node, "names", []):
            top = (getattr(node, "module", None) or alias.name).split(".")[0]
            if top == "tests" and not getattr(node, "level", 0):
                out.add("tests")
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def problems() -> list[str]:
    modules = all_modules()
    graph = {name: imports_of(name, path, modules) for name, path in modules.items()}
    out = [f"import cycle: {' <-> '.join(c)}" for c in cycles(graph)]
    for name, targets in sorted(graph.items()):
        top = name.split(".")[0]
        for target in sorted(targets):
            if target.split(".")[0] in FORBIDDEN[top]:
                out.append(f"{name} imports {target}")
    return out


if __name__ == "__main__":
    found = problems()
    for line in found:
        print(line)
    print(f"{len(all_modules())} modules, {len(found)} problems")
    sys.exit(1 if found else 0)
