"""Every ``>>>`` example in ``workshop_lib`` runs and shows what it says (the examples are documentation: a stale one
misleads). Examples that need a lab, a cluster or a GPU carry ``# doctest: +SKIP``."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "workshop_lib"
MODULES = sorted(".".join(p.relative_to(PKG.parent).with_suffix("").parts).removesuffix(".__init__")
                 for p in PKG.rglob("*.py"))


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    module = importlib.import_module(name)
    res = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False,
                          report=True)
    assert res.failed == 0, f"{res.failed} of {res.attempted} doctest examples in {name} fail (run pytest -s to see)"
