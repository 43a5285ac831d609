"""Fast checks of the committed notebooks: generated from notebooks/build.py, no outputs, a tagged parameters cell."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]-*.ipynb"))


def test_four_notebooks() -> None:
    assert [p.stem for p in NOTEBOOKS] == ["01-cluster-setup", "02-single-node-disagg", "03-cross-node-efa",
                                           "04-performance"]


def test_build_is_current() -> None:
    out = subprocess.run([sys.executable, str(REPO / "notebooks" / "build.py"), "--check"], capture_output=True,
                         text=True, check=False)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_outputs_and_parameters_cell(nb: Path) -> None:
    cells = json.loads(nb.read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert all(not c["outputs"] and c["execution_count"] is None for c in code)
    params = [c for c in code if "parameters" in c["metadata"].get("tags", [])]
    assert len(params) == 1 and 'TARGET = "local"' in "".join(params[0]["source"])
    text = "\n".join("".join(c["source"]) for c in cells)
    for heading in ("## Verification", "## Troubleshooting", "## What you learned", "## Teardown"):
        assert heading in text
    # Thin: apart from the parameters, no code cell longer than a few lines.
    assert max(len("".join(c["source"]).splitlines()) for c in code if c not in params) <= 6
