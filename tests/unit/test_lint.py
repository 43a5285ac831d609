"""The code style the project holds itself to: ``ruff check`` (rules in pyproject.toml) is clean."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def test_ruff_is_clean(repo_root: Path) -> None:
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not Path(ruff).exists():
        pytest.skip("ruff is not installed (pip install -e '.[test]')")
    res = subprocess.run([ruff, "check", "--no-cache", "."], cwd=repo_root, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-3000:]
