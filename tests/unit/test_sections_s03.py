"""Tests for section 03's memory lesson (rails -> registered memory) and section 04's pure helpers."""

from __future__ import annotations

import json

import pytest

from workshop_lib.sections import s03_cross_node as s03
from workshop_lib.sections import s04_performance as s04
from workshop_lib.sections.common import start


def test_registered_bytes_per_rail() -> None:
    assert s03.registered_bytes(0) == 32 * 2**20  # the control rail alone
    assert s03.registered_bytes(32) == 33 * 32 * 2**20  # p5.48xlarge: 32 data + 1 control rail
    with pytest.raises(ValueError):
        s03.registered_bytes(-1)


def test_rail_rows_from_parsed_rails() -> None:
    rows = s03.rail_memory_rows(1, gpus_per_worker=8)
    assert rows[0]["where"].startswith("this run") and rows[0]["registered_mib"] == 64.0 and rows[0]["agents"] == 1
    p5 = next(r for r in rows if r["where"].startswith("p5.48xlarge"))
    assert (p5["data_rails"], p5["registered_mib"], p5["agents"], p5["total_gib"]) == (32, 1056.0, 8, 8.25)
    p4d = next(r for r in rows if r["where"].startswith("p4d"))
    assert p4d["registered_mib"] == 160.0
    assert len(s03.rail_memory_rows(None)) == 4


def test_knobs_local_and_eks_defaults() -> None:
    loc = s04.knobs(start({"TARGET": "local", "CONCURRENCY": "1,3"}, "04"))
    assert loc["concurrency"] == [1, 3] and loc["requests"] == 8 and loc["osl"] == 16
    eks = s04.knobs(start({"TARGET": "eks"}, "04"))
    assert eks["concurrency"] == [1, 5, 10, 20] and (eks["isl"], eks["osl"]) == (512, 128)


def test_speedup_table_published_figures() -> None:
    frame = s04.speedup_table(start({"TARGET": "local"}, "04"))
    q = frame[(frame.source == "published (Qwen3-0.6B)") & (frame.concurrency == 20)].iloc[0]
    assert (q.ttft_ucx_tcp_ms, q.ttft_libfabric_ms, q.speedup) == (3333, 104, 32.0)
    assert len(frame) == 8


def test_vram_rows_only_from_gpu_results(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(s04, "REPO", tmp_path)
    p = tmp_path / "benchmarks" / "nixl_vram.json"
    p.parent.mkdir()
    p.write_text(json.dumps({"rows": [{"backend": "UCX", "op": "READ", "mem": "VRAM", "block_size": 1048576, "gbps": 13.8},
                                      {"backend": "UCX", "op": "READ", "mem": "DRAM", "block_size": 4096, "gbps": 0.9}]}))
    (tmp_path / "benchmarks" / "other.json").write_text("[1, 2]")
    rows = s04._vram_rows(p)
    assert rows == [{"source": "recorded on GPU (benchmarks/nixl_vram.json)", "memory": "VRAM", "label": "UCX READ",
                     "block_size": 1048576, "gbps": 13.8}]
    assert s04._vram_rows(tmp_path / "benchmarks" / "other.json") == []
    assert len(s04.reference_results(start({"TARGET": "local"}, "04"))) == 1


def test_rails_table_has_p5_line_rate() -> None:
    frame = s04.rails_table(start({"TARGET": "local"}, "04"))
    p5 = frame[frame["where"].str.startswith("p5.48xlarge")].iloc[0]
    assert p5["max_gbs_if_all_rails"] == 400.0
