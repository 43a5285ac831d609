"""Troubleshooting for everyone: EKS rows shown on local (labelled), no source a clone lacks, no no-op fix."""

from __future__ import annotations

import pytest

from workshop_lib.manifests.envaudit import unread_names
from workshop_lib.sections import troubleshoot


@pytest.mark.parametrize("section", ["01", "02", "03", "04"])
def test_local_shows_eks_rows_labelled(section: str) -> None:
    local = troubleshoot.table(section, "local")
    eks = troubleshoot.table(section, "eks")
    assert set(eks["symptom"]) <= set(local["symptom"])
    on_eks = local[local["where"] == "on EKS"]
    assert len(on_eks) >= 2 and list(local.columns) == ["where", "symptom", "cause", "fix", "source"]
    assert "where" not in eks.columns


def test_no_source_a_clone_lacks() -> None:
    for t in troubleshoot.TROUBLES:
        assert "../shared" not in t.source and ".md" not in t.source.split()[0], t


def test_no_fix_relies_on_an_unread_env_var() -> None:
    unread = set(unread_names(None))  # engine-independent no-ops (TRTLLM_* is read by TRT-LLM)
    for t in troubleshoot.TROUBLES:
        for name in unread:
            if name in t.fix:
                assert f"{name} is read by nothing" in t.fix, (name, t.fix)
