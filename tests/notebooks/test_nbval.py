"""nbval (``--nbval-lax``) over the committed notebooks: every cell must run without error, as an attendee runs them.

nbval re-executes every committed notebook on the default ``TARGET = "local"`` (all four: about 30 s here, as
``papermill`` runs in ``test_notebooks_local.py`` do too). By hand: ``.venv/bin/pytest --nbval-lax -p no:cacheprovider
notebooks/``.
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
    from workshop_lib.lab import setup
    from workshop_lib.lab.serving import Lab

    missing = setup.failed(setup.status())
    if missing:
        pytest.skip(f"local lab not set up ({', '.join(str(i.name) for i in missing)}): run `workshop lab setup`")
    was_running = Lab().status().running
    env_note = {"WORKSHOP_WORK_DIR": str(tmp_path), "WORKSHOP_HEADLESS": "1"}
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
