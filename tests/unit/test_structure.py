"""The shape of ``workshop_lib``: no import cycle, no oversize module, no module named like a standard-library one, and
no private (``_name``) import across modules.

The import graph is read with :mod:`ast` from the source (nothing is imported). Every ``import``/``from ... import`` in
a module counts, at module level and inside functions alike (an import deferred into a function still ties the two
modules together); ``if TYPE_CHECKING:`` imports are left out (they never run). An edge goes to the module imported,
and ``from pkg import name`` goes to ``pkg.name`` when that is a module, else to ``pkg``. A package's ``__init__`` is
the node of the package name.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "workshop_lib"
MAX_LINES = 500  # no allowlists: issue 15 split every module over it, and removed every cycle and private import


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    """``{dotted name: file}`` for every Python module of the package."""
    return {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _type_checking_only(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement that runs (module level or in a function), skipping ``if TYPE_CHECKING:`` blocks."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _type_checking_only(node):
            yield from (n for child in node.orelse for n in _imports_of(child))
            continue
        yield from _imports_of(node)


def _imports_of(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        yield node
    else:
        yield from _imports(node)


def _resolve(mod: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    """The absolute module a ``from`` import names (relative imports resolved against ``mod``)."""
    if not node.level:
        return node.module or ""
    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def import_edges() -> dict[str, dict[str, list[tuple[int, list[str]]]]]:
    """``{module: {imported workshop_lib module: [(line, names imported), ...]}}``."""
    mods = modules()
    out: dict[str, dict[str, list[tuple[int, list[str]]]]] = {m: {} for m in mods}
    for mod, path in mods.items():
        tree = ast.parse(path.read_text(), str(path))
        for node in _imports(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "workshop_lib":
                        target = alias.name
                        while target not in mods and "." in target:
                            target = target.rsplit(".", 1)[0]
                        out[mod].setdefault(target, []).append((node.lineno, []))
                continue
            src = _resolve(mod, path.name == "__init__.py", node)
            if src.split(".")[0] != "workshop_lib":
                continue
            for alias in node.names:
                sub = f"{src}.{alias.name}"
                if sub in mods:
                    out[mod].setdefault(sub, []).append((node.lineno, []))
                else:
                    out[mod].setdefault(src, []).append((node.lineno, [alias.name]))
    for mod in out:
        out[mod].pop(mod, None)
    return out


def find_cycles(edges: dict[str, dict[str, object]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    groups: list[list[str]] = []
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return groups


def _package_chain(a: str, b: str) -> bool:
    """True when ``a`` is a package that ``b`` lives in (or the other way round): a package's ``__init__`` importing
    its own submodules and a submodule importing a sibling through the package are one unit, not a cycle."""
    return b.startswith(a + ".") or a.startswith(b + ".")


def test_the_checks_see_what_they_look_for() -> None:
    """The detectors themselves, on made-up input: a ring of imports, a private import, a stdlib-named module."""
    assert find_cycles({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b": 1}, "b": {"c": 1}, "c": {}}) == []
    tree = ast.parse("def f():\n    from workshop_lib.x import _y\nif TYPE_CHECKING:\n    import workshop_lib.z\n")
    got = [(type(n).__name__, n.lineno) for n in _imports(tree)]
    assert got == [("ImportFrom", 2)]  # function-level imports count; TYPE_CHECKING ones do not
    assert "platform" in sys.stdlib_module_names and "inspect" in sys.stdlib_module_names


def test_no_import_cycle() -> None:
    edges = import_edges()
    # Drop package<->own-submodule edges (``pkg/__init__`` re-exporting ``pkg.mod``): not a cycle between two rooms.
    pruned = {m: {t: v for t, v in e.items() if not _package_chain(m, t)} for m, e in edges.items()}
    found = find_cycles(pruned)
    where = []
    for group in found:
        members = set(group)
        where.append(" ; ".join(f"{m} -> {t} (line {pruned[m][t][0][0]})"
                                for m in group for t in sorted(pruned[m]) if t in members))
    assert not found, "import cycles among workshop_lib modules: " + " | ".join(where)


def test_no_module_over_the_size_limit() -> None:
    sizes = {p.relative_to(ROOT).as_posix(): len(p.read_text().splitlines()) for p in PKG.rglob("*.py")}
    over = {f: n for f, n in sizes.items() if n > MAX_LINES}
    assert not over, f"modules over {MAX_LINES} lines (split them): {over}"


def test_no_module_named_like_the_standard_library() -> None:
    clash = sorted(p.relative_to(ROOT).as_posix() for p in PKG.rglob("*") if
                   (p.suffix == ".py" and p.stem in sys.stdlib_module_names) or
                   (p.is_dir() and (p / "__init__.py").exists() and p.name in sys.stdlib_module_names))
    assert not clash, f"modules named like a standard-library module (rename them): {clash}"


def test_no_private_name_imported_across_modules() -> None:
    used = {(f"{m} imports {name} from {t}", line)
            for m, e in import_edges().items() for t, uses in e.items() for line, names in uses for name in names
            if name.startswith("_") and not name.startswith("__")}
    bad = sorted(f"{what} (line {line})" for what, line in used)
    assert not bad, "private names used across modules (make them public or move the code): " + "; ".join(bad)


def _k8s_names() -> dict[str, str]:
    """``{value: NAME}`` of the string constants of ``workshop_lib/k8s.py`` (read with ast, nothing imported)."""
    tree = ast.parse((PKG / "k8s.py").read_text())
    return {n.value.value: n.targets[0].id for n in tree.body if isinstance(n, ast.Assign)
            and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str)
            and isinstance(n.targets[0], ast.Name) and n.targets[0].id.isupper()}


def test_kubernetes_names_are_spelled_once() -> None:
    """A string literal equal to one of k8s.py's names anywhere else is a second spelling: import the constant."""
    names = _k8s_names()
    assert {"DGD_API", "DGD_KIND", "EFA_RESOURCE"} <= set(names.values())
    found = {}
    for p in sorted(PKG.rglob("*.py")):
        if p == PKG / "k8s.py":
            continue
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names:
                found.setdefault(f"{p.relative_to(ROOT).as_posix()}: {node.value}", node.lineno)
    bad = sorted(f"{k} (line {line}; use k8s.{names[k.split(': ', 1)[1]]})" for k, line in found.items())
    assert not bad, "Kubernetes names spelled outside workshop_lib/k8s.py: " + "; ".join(bad)
