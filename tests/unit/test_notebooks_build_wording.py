"""What an attendee reads in the notebooks: no kit-development wording, no path a clone lacks, a lesson per notebook."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("nb_build", REPO / "notebooks" / "build.py")
build = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
spec.loader.exec_module(build)  # type: ignore[union-attr]

FORBIDDEN = [r"\.\./shared", r"LOCAL-LAB\.md", r"\bNOT MET\b", r"goal (of|>=)", r"\bTODO\b", r"FI_EFA_DEV_LIST=0"]


@pytest.mark.parametrize("name", list(build.NOTEBOOKS))
def test_no_kit_development_wording(name: str) -> None:
    text = "\n".join(cell[1] for cell in build.NOTEBOOKS[name])
    for pattern in FORBIDDEN:
        assert not re.search(pattern, text), f"{name}: {pattern}"


@pytest.mark.parametrize("name", list(build.NOTEBOOKS))
def test_each_notebook_has_a_prediction_and_the_dgd_or_a_figure(name: str) -> None:
    code = "\n".join(cell[1] for cell in build.NOTEBOOKS[name] if cell[0] == "code")
    assert "predict.ask(" in code
    assert "dgd." in code  # the kubectl/helm command of its cluster steps (and the DGD in 01-03)
    if name.startswith("04"):
        assert code.count("plots.show(") >= 4 and "split_plot" in code
