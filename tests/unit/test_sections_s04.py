"""Tests for section 04's pure helpers: knobs, the published speedups, the VRAM reference rows and goal, tables."""

from __future__ import annotations

import pandas as pd
import pytest

from workshop_lib.bench.nixl import COLUMNS
from workshop_lib.parsing import format_size
from workshop_lib.record import ENV_DIR
from workshop_lib.sections import s04_performance as s04
from workshop_lib.sections import s04_vram
from workshop_lib.sections.common import start
from workshop_lib.targets.eks import graph_plan


@pytest.fixture()
def local(tmp_path, monkeypatch) -> s04.Context:
    monkeypatch.setenv("WORKSHOP_WORK_DIR", str(tmp_path))
    monkeypatch.delenv(ENV_DIR, raising=False)
    return start({"TARGET": "local"}, "04")


def test_knobs_local_and_eks_defaults() -> None:
    loc = s04.knobs(start({"TARGET": "local", "CONCURRENCY": "1,3"}, "04"))
    assert loc["concurrency"] == [1, 3] and loc["requests"] == 8 and loc["osl"] == 16
    eks = s04.knobs(start({"TARGET": "eks"}, "04"))
    assert eks["concurrency"] == [1, 5, 10, 20] and (eks["isl"], eks["osl"]) == (512, 128)


def test_speedup_table_published_figures(local) -> None:
    frame = s04.speedup_table(local)
    q = frame[(frame.source == "published (Qwen3-0.6B)") & (frame.concurrency == 20)].iloc[0]
    assert (q["TTFT UCX (TCP) (ms)"], q["TTFT LIBFABRIC (EFA) (ms)"], q.ttft_speedup) == (3333, 104, 32.05)
    assert len(frame) == 8 and list(frame.columns)[0] == "source"


def test_seed_published_only_on_eks_for_a_seed_model() -> None:
    assert s04.seed_published(start({"TARGET": "local"}, "04")) is None
    pub = s04.seed_published(start({"TARGET": "eks", "MODEL": "Qwen/Qwen3-0.6B"}, "04"))
    assert set(pub.model) == {"Qwen3-0.6B"} and len(pub) == 8


def test_short_card_and_sizes() -> None:
    assert s04_vram.short_card("2x NVIDIA H100 80GB HBM3 (driver 580.159.04)") == "2x H100"
    assert s04_vram.short_card("1x NVIDIA H200 (driver 1)") == "1x H200"
    assert [format_size(n) for n in (4096, 2**20, 256 * 2**20, 1000)] == ["4K", "1M", "256M", "1000"]


def test_recorded_h100_rows_and_goal() -> None:
    rec = s04_vram.recorded()
    if rec is None:
        pytest.skip("benchmarks/nixl_vram/results.json not recorded")
    df, card, _ = rec
    rows = s04_vram.recorded_rows(df, card)
    by = {r["size"]: r for r in rows}
    assert rows[0]["source"] == "recorded on 2x H100 (VRAM)"
    assert by["64M"]["gbps"] == 213.4 and by["64M"]["pct_of_peer_copy"] == 60 and by["64M"]["verified"]
    assert by["64M"]["path"] == "UCX READ, cuda_ipc (NVLink), one-at-a-time"
    line = s04_vram.record_goal(rec)
    assert line is not None and "64M 60%" in line and "256M 64%" in line and "well below" in line
    assert "goal" not in line.lower() and "NOT MET" not in line  # kit-development wording stays in the records


def test_hardware_table_compares_nixl_with_the_copy() -> None:
    t = s04_vram.hardware_table()
    if t.empty:
        pytest.skip("benchmarks/nixl_vram not recorded")
    r = t[t["size"] == "64M"].iloc[0]
    assert r["NIXL UCX READ (best mode)"] == 213.4 and r["CUDA IPC pull (2 processes)"] == 386.4


def test_vram_table_labels_recorded_and_dram(local) -> None:
    local.state["transfer"] = pd.DataFrame([
        {"source": "lab", "backend": "UCX", "op": "READ", "mem": "DRAM", "block_size": 4096, "gbps": 0.011,
         "verified": True, "transport": "tcp"}], columns=COLUMNS)
    t = s04.reference_results(local)
    assert list(t.columns) == s04_vram.TABLE_COLUMNS
    assert set(t["source"]) == {"recorded on 2x H100 (VRAM)", "recorded on 1x H100, one GPU (VRAM)", "this run (DRAM)"}
    dram = t[t.source == "this run (DRAM)"].iloc[0]
    assert (dram["path"], dram["size"], dram["gbps"]) == ("UCX READ, tcp", "4K", 0.011)


def test_transfer_view_one_row_per_size() -> None:
    rows = [{"source": "lab", "backend": be, "op": "READ", "mem": "DRAM", "block_size": b, "iters": 20, "gbps": g,
             "lat_p50_us": 7833.52, "verified": True, "transport": "tcp"}
            for be, b, g in (("UCX", 4096, 0.0114), ("UCX", 2**20, 0.12345), ("LIBFABRIC", 4096, 0.009),
                             ("LIBFABRIC", 2**20, 0.398))]
    v = s04.transfer_view(pd.DataFrame(rows, columns=COLUMNS))
    assert list(v.columns) == ["block size", "UCX (tcp) MB/s", "UCX (tcp) latency p50 (us)", "LIBFABRIC (tcp) MB/s",
                               "LIBFABRIC (tcp) latency p50 (us)", "verified"]
    assert v["block size"].tolist() == ["4K", "1M"] and v["UCX (tcp) MB/s"].tolist() == [11.4, 123.4]


def test_published_figures_short_sources() -> None:
    f = s04.published_figures()
    assert list(f.columns) == ["figure", "value", "source"]
    assert f.iloc[0]["value"] == "9.6 GB/s" and "FACTS" not in "".join(f["source"])
    assert f[f.figure == "TTFT with default UCX on p5"].iloc[0]["value"] == "more than 2500 ms"


def test_rails_table_has_p5_line_rate(local) -> None:
    frame = s04.rails_table(local)
    p5 = frame[frame["instance"] == "p5.48xlarge"].iloc[0]
    assert p5["EFA line rate, all rails (GB/s)"] == 400.0 and p5["one rail (GB/s)"] == 12.5
    assert p5["registered MiB per agent"] == 1056.0


GRAPHS = {"UCX": "vllm-xnode-ucx", "LIBFABRIC": "vllm-xnode-libfabric"}


def test_cross_node_twins_each_need_all_32_efa_of_a_p5() -> None:
    from workshop_lib.config import WorkshopConfig
    from workshop_lib.manifests import render
    from workshop_lib.targets import eks

    cfg = WorkshopConfig()
    files = {be: render(cfg, s04.graph_profile(be)) for be in s04.BACKENDS}
    assert {be: eks.dgd_names(f) for be, f in files.items()} == {be: [g] for be, g in GRAPHS.items()}
    assert [eks.efa_per_node(f) for f in files.values()] == [32, 32] and cfg.instance.efa == 32


def test_graph_plan_swaps_when_the_graphs_do_not_fit() -> None:
    lf_ready = {GRAPHS["LIBFABRIC"]: "Ready"}
    assert graph_plan(["UCX", "LIBFABRIC"], GRAPHS, lf_ready, coexist=False) == [
        ("delete", "LIBFABRIC"), ("apply", "UCX"), ("sweep", "UCX"), ("delete", "UCX"), ("apply", "LIBFABRIC"),
        ("sweep", "LIBFABRIC")]
    # Both already Ready (a bigger cluster): nothing changes; nothing there: deploy, sweep, swap.
    both = {g: "Ready" for g in GRAPHS.values()}
    assert graph_plan(["UCX", "LIBFABRIC"], GRAPHS, both, coexist=False) == [("sweep", "UCX"), ("sweep", "LIBFABRIC")]
    assert graph_plan(["UCX", "LIBFABRIC"], GRAPHS, {}, coexist=False) == [
        ("apply", "UCX"), ("sweep", "UCX"), ("delete", "UCX"), ("apply", "LIBFABRIC"), ("sweep", "LIBFABRIC")]


def test_graph_plan_keeps_a_graph_that_is_swept_first_or_fits() -> None:
    lf_ready = {GRAPHS["LIBFABRIC"]: "Ready"}
    assert graph_plan(["LIBFABRIC", "UCX"], GRAPHS, lf_ready, coexist=False) == [
        ("sweep", "LIBFABRIC"), ("delete", "LIBFABRIC"), ("apply", "UCX"), ("sweep", "UCX")]
    assert graph_plan(["UCX", "LIBFABRIC"], GRAPHS, lf_ready, coexist=True) == [
        ("apply", "UCX"), ("sweep", "UCX"), ("sweep", "LIBFABRIC")]
    # A graph still starting is applied again (idempotent) and waited for; a given URL is only swept.
    starting = {GRAPHS["UCX"]: "not Ready", GRAPHS["LIBFABRIC"]: "Ready"}
    assert graph_plan(["UCX", "LIBFABRIC"], {"UCX": GRAPHS["UCX"]}, starting, coexist=False) == [
        ("apply", "UCX"), ("sweep", "UCX"), ("sweep", "LIBFABRIC")]
    assert graph_plan(["UCX", "LIBFABRIC"], GRAPHS, starting, coexist=False)[:2] == [
        ("delete", "LIBFABRIC"), ("apply", "UCX")]


def test_deploy_plan_is_eks_only(local) -> None:
    assert s04.deploy_plan(local) is None


def test_one_gpu_record_rows_say_which_transport_ucx_took() -> None:
    rows = s04_vram.one_gpu_rows()
    if not rows:
        pytest.skip("benchmarks/nixl_vram/one-gpu.json not recorded")
    by = {(r["path"].split(",")[0], r["size"]): r for r in rows}
    assert rows[0]["source"] == "recorded on 1x H100, one GPU (VRAM)"
    assert by[("UCX READ", "256M")]["path"] == "UCX READ, tcp (same GPU, two processes)"
    assert by[("UCX WRITE", "256M")]["path"] == "UCX WRITE, cuda_ipc (same GPU, two processes)"
    assert by[("UCX WRITE", "256M")]["gbps"] == 824.0 and all(r["verified"] for r in rows)


def test_one_gpu_rows_absent_record(tmp_path) -> None:
    assert s04_vram.one_gpu_rows(tmp_path / "none.json") == []
