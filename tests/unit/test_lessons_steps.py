"""lessons.steps: the one-call notebook steps on both targets (eks parts use no cluster where none is needed)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from workshop_lib.config import WorkshopConfig
from workshop_lib.lessons import memory, steps


def test_drills_are_local_only(tmp_path: Path) -> None:
    eks = WorkshopConfig(target="eks")
    assert steps.drill(eks, "corrupt_kv", tmp_path) == steps.LOCAL_ONLY
    with pytest.raises(ValueError, match="no local runner for drill 'decode_oom'"):
        steps.drill(WorkshopConfig(), "decode_oom", tmp_path)


def test_colocate_drill_runs_locally(tmp_path: Path) -> None:
    check = steps.drill(WorkshopConfig(), "colocate", tmp_path)
    assert not isinstance(check, str) and check.saw


def test_evidence_of_takes_the_first_side_with_a_line() -> None:
    a = SimpleNamespace(field_evidence={"nixl_backend": "a.log:3: Backend LIBFABRIC was instantiated", "handshakes": None})
    b = SimpleNamespace(field_evidence={"nixl_backend": "b.log:9: other", "libfabric_provider": "b.log:4: ::tcp:"})
    ev = steps.evidence_of({"initiator": a, "target": b})
    assert ev == {"nixl_backend": "a.log:3: Backend LIBFABRIC was instantiated", "libfabric_provider": "b.log:4: ::tcp:"}
    assert steps.evidence_of(None) == {}


def test_eks_engine_and_budget_without_measurement(tmp_path: Path) -> None:
    eks = WorkshopConfig(target="eks", framework="trtllm", model="Qwen/Qwen2.5-7B")
    assert steps.engine_in_use(eks) == "trtllm"
    b = steps.memory_budget(eks, tmp_path).set_index("term")
    assert memory.MEASURED not in set(b["how we know"])
    assert b.loc["model weights while loading", "mib"] == round(7e9 * 2 / 2**20, 1)
    assert b.loc["NIXL control pools (all rails)", "mib"] == 1056.0


def _rec(prefill: float, kv: float) -> dict:
    return {"ttft_s": prefill + kv + 0.05, "prefill_s": prefill, "kv_transfer_s": kv, "first_decode_s": 0.03,
            "other_s": 0.02, "kv_bytes": 1 << 20, "descriptors": 16}


def test_split_frame_and_plot() -> None:
    from IPython.core.formatters import DisplayFormatter

    from workshop_lib import plots

    frame = steps.split_frame({"UCX": [_rec(0.1, 0.02), _rec(0.3, 0.04), _rec(0.2, 0.03)], "LIBFABRIC": []})
    assert frame["backend"].tolist() == ["UCX"] and frame.loc[0, "prefill_s"] == 0.2 and frame.loc[0, "requests"] == 3
    fig = plots.plot_ttft_split(frame, plots.FigureInfo.for_target("local", run_date="2026-12-07"))
    bars = fig.axes[0].patches
    assert len(bars) == 4 and abs(bars[1].get_width() - 30.0) < 1e-6  # KV transfer p50, in ms
    assert "image/png" in DisplayFormatter().format(plots.show(fig))[0]


def test_ttft_split_says_why_not(tmp_path: Path) -> None:
    assert "TARGET" in steps.ttft_split(WorkshopConfig(target="eks"))
