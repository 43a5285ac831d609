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


def test_only_paths_walks_up_from_a_module_file(repo_root: Path) -> None:
    """The one repo-root lookup: no other module of the package climbs from its own ``__file__``."""
    import re

    climb = re.compile(r"__file__\)?(\.resolve\(\))?\.(parents\[|parent\.parent)")
    offenders = [str(p.relative_to(repo_root)) for p in sorted((repo_root / "workshop_lib").rglob("*.py"))
                 if p.name != "paths.py" and climb.search(p.read_text())]
    assert offenders == [], f"use workshop_lib.paths.repo_root()/package_dir() in {offenders}"
    assert (paths.package_dir() / "lab" / "native" / "libcuda_stub.c").exists()
