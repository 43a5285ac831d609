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
