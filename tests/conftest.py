"""Shared test fixtures: where ``../shared`` is, and skips for what a machine lacks."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def shared_path(*parts: str) -> Path:
    """A path under ``../shared``; skips the calling test with a one-line reason when it is absent."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"needs ../shared/{'/'.join(parts)} (not present beside this clone)")
    return p


def lab_missing(rows: list | None = None) -> str | None:
    """The local lab's missing prerequisites as one line (the ``check`` names of the FAIL setup rows), or None.

    ``rows`` defaults to ``workshop_lib.lab.setup.status()``; a test skips with ``run `workshop lab setup``` and this.
    """
    from workshop_lib.lab import setup

    missing = setup.failed(setup.status() if rows is None else rows)
    return ", ".join(i.check for i in missing) if missing else None


@pytest.fixture
def repo_root() -> Path:
    return REPO


@pytest.fixture
def fixtures_dir() -> Path:
    """``../shared/fixtures``: real public log excerpts (skips when absent)."""
    return shared_path("fixtures")


@pytest.fixture
def dgd_crd() -> Path:
    """The DynamoGraphDeployment CRD of Dynamo 0.9.0 (skips when absent)."""
    return shared_path("reference", "dynamo-0.9.0", "crds", "nvidia.com_dynamographdeployments.yaml")
