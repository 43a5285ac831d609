"""The one repository-root and lab-directory lookup (workshop_lib.paths)."""

from __future__ import annotations

from pathlib import Path

import pytest

from workshop_lib import paths


def test_repo_root_is_the_checkout(repo_root: Path) -> None:
    assert paths.repo_root() == repo_root.resolve()
    assert paths.in_checkout()
    assert paths.checkout_lab_dir() == repo_root.resolve() / ".lab"


def test_lab_dir_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKSHOP_LAB_DIR", str(tmp_path))
    assert paths.lab_dir() == tmp_path.resolve()
    monkeypatch.delenv("WORKSHOP_LAB_DIR")
    assert paths.lab_dir() == paths.checkout_lab_dir()
