"""lessons.drills: each symptom check passes on the drill's symptom and fails on anything else; the runners are real."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from workshop_lib.errors import ConfigError
from workshop_lib.lessons import drills

UCX_LINE = "2026-12-07 11:54:41 NIXL INFO    _api.py:363 Backend UCX was instantiated"
LF_LINE = "2026-12-07 11:54:41 NIXL INFO    _api.py:363 Backend LIBFABRIC was instantiated"


def _lab_missing() -> str | None:
    from tests.conftest import lab_missing

    return lab_missing()


def test_backend_env_check() -> None:
    assert drills.check_backend_env(f"x\n{UCX_LINE}\n").saw
    assert not drills.check_backend_env(LF_LINE).saw  # LIBFABRIC really instantiated: not the symptom
    miss = drills.check_backend_env("nothing here")
    assert not miss.saw and "NIXL_LOG_LEVEL=INFO" in miss.evidence


def _pair(verified: list[bool]) -> pd.DataFrame:
    return pd.DataFrame({"block_size": [65536] * len(verified), "batch": [8] * len(verified),
                         "transport": ["tcp"] * len(verified), "verified": verified})


def test_corrupt_kv_check() -> None:
    hit = drills.check_corrupt_kv(_pair([True, False]), {"diagnosis": "blocks 3-7 hold stale bytes"})
    assert hit.saw and "verified=False" in hit.evidence and "stale" in hit.evidence
    assert not drills.check_corrupt_kv(_pair([True, True])).saw


def test_colocate_check() -> None:
    err = ConfigError("decode_node", "prefill and decode are both pinned to 'n1' in the cross-node profile", "pin two")
    assert drills.check_colocate(err).saw
    assert drills.check_colocate("W decode: fi_read still retrying EAGAIN on rail 0").saw
    assert not drills.check_colocate("03-cross-node/vllm-xnode-libfabric.yaml").saw


def test_colocate_runner_is_refused_by_the_kit() -> None:
    seen = drills.run_colocate("n1")
    assert isinstance(seen, ConfigError) and drills.check_colocate(seen).saw


def test_decode_oom_check() -> None:
    assert drills.check_decode_oom("Last State: Terminated\n  Reason: OOMKilled\n  Exit Code: 137").saw
    assert drills.check_decode_oom("ValueError: No available memory for the cache blocks.").saw
    assert not drills.check_decode_oom("INFO worker ready\nINFO served 8 requests").saw


def test_drills_table() -> None:
    t = drills.drills_table()
    assert t["name"].tolist() == ["backend_env", "corrupt_kv", "colocate", "decode_oom"]


@pytest.mark.lab
@pytest.mark.slow
def test_runners_show_their_symptoms(tmp_path: Path) -> None:
    missing = _lab_missing()
    if missing:
        pytest.skip(f"local lab not set up ({missing}): run `workshop lab setup`")
    text = drills.run_backend_env(tmp_path / "env")
    assert drills.check_backend_env(text).saw, text[-800:]
    frame, meta = drills.run_corrupt_kv(tmp_path / "kv")
    assert drills.check_corrupt_kv(frame, meta).saw, frame.to_string()
    ok, _ = drills.run_corrupt_kv(tmp_path / "kv1", batch=1)
    assert not drills.check_corrupt_kv(ok).saw  # one descriptor per request arrives intact
