"""nbval (``--nbval-lax``) over the committed notebooks: every cell must run without error, as an attendee runs them.

nbval re-executes every committed notebook on the default ``TARGET = "local"`` with ``WORKSHOP_ENGINE=mocker`` (the
documented lighter engine), so that the notebooks run on both engines in CI without running the real engine twice
(``test_notebooks_local.py`` runs them once on the default engine). By hand: ``WORKSHOP_ENGINE=mocker
.venv/bin/pytest --nbval-lax -p no:cacheprovider notebooks/``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.notebook, pytest.mark.lab, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted(str(p.relative_to(REPO)) for p in (REPO / "notebooks").glob("[0-9][0-9]-*.ipynb"))


def test_nbval_lax_all_notebooks(tmp_path: Path) -> None:
    assert len(NOTEBOOKS) == 4
    from tests.conftest import lab_missing
    from workshop_lib.lab.serving import Lab

    missing = lab_missing()
    if missing:
        pytest.skip(f"local lab not set up ({missing}): run `workshop lab setup`")
    status = Lab().status()
    was_running = status.running
    if was_running and (status.engine or "mocker") != "mocker":
        pytest.skip(f"a lab with engine {status.engine} is running here; nbval runs the mocker (lab down first)")
    env_note = {"WORKSHOP_WORK_DIR": str(tmp_path), "WORKSHOP_HEADLESS": "1", "WORKSHOP_ENGINE": "mocker"}
    try:
        out = subprocess.run(
            [sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider", "-q", "--nbval-cell-timeout=600",
             *NOTEBOOKS],
            cwd=REPO, capture_output=True, text=True, check=False, env={**os.environ, **env_note}, timeout=1200,
        )
    finally:
        if not was_running:
            Lab().down()
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "passed" in out.stdout and "failed" not in out.stdout
