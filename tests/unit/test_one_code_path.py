"""One code path, two targets: the notebook steps in ``workshop_lib/sections`` never branch on the target.

Every step calls ``ctx.target`` (:mod:`workshop_lib.targets`); only :func:`workshop_lib.targets.for_config` reads
``cfg.target`` to pick one. This test reads the sections' source with ``ast`` and fails on any comparison with the
target's name, any ``ctx.local`` / ``ctx.eks``, and any import of a target module other than the interface.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SECTIONS = Path(__file__).resolve().parents[2] / "workshop_lib" / "sections"
FILES = sorted(p for p in SECTIONS.glob("*.py") if p.name != "troubleshoot.py")  # troubleshooting rows are data


def branches(source: str) -> list[str]:
    """Target branches in a module's source: ``ctx.local``/``ctx.eks``, ``x.target == "eks"`` (or ``!=``/``in``),
    ``if ... "local"`` tests, and imports of ``targets.eks``/``targets.local``/``lab.serving``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in ("local", "eks") and isinstance(node.value, ast.Name):
            found.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
        if isinstance(node, ast.Compare):
            names = [c.value for c in [node.left, *node.comparators] if isinstance(c, ast.Constant)]
            if any(n in ("local", "eks") for n in names):
                found.append(f"line {node.lineno}: compares with {names}")
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                ("workshop_lib.targets.eks", "workshop_lib.targets.local", "workshop_lib.lab.serving")):
            found.append(f"line {node.lineno}: imports {node.module}")
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Attribute) and node.slice.attr == "target":
            found.append(f"line {node.lineno}: indexes by .target")
    return found


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_no_target_branch_in_sections(path: Path) -> None:
    assert branches(path.read_text()) == [], f"{path.name} branches on the target; call ctx.target instead"


def test_the_checker_finds_each_kind_of_branch() -> None:
    src = ("from workshop_lib.lab.serving import Lab\n"
           "if ctx.local:\n    pass\n"
           "x = 1 if ctx.cfg.target == 'eks' else 2\n"
           "d = DEFAULTS[ctx.cfg.target]\n")
    got = branches(src)
    assert len(got) == 4 and any("ctx.local" in g for g in got) and any("lab.serving" in g for g in got)


def test_sections_eks_copy_is_gone() -> None:
    assert not (SECTIONS / "eks.py").exists()  # its Helm runner and watch loops live in helm_runner.py and cluster/wait.py
    from workshop_lib.targets import eks

    src = Path(eks.__file__).read_text()
    assert "subprocess" not in src and ".watch(" not in src  # one Helm runner (helm_runner.run_helm), one watch helper
