"""KV-transfer tables: nixlbench adapter (real public log), lab result adapter, published points, sweep arguments."""

from __future__ import annotations

import pytest

from workshop_lib.bench.nixl import COLUMNS, bandwidth_table, lab_frame, nixlbench_frame, published_frame, sweep_nixl
from workshop_lib.bench.published import nixlbench_libfabric_vram, seed_speedup, seed_ttft
from workshop_lib.errors import ConfigError
from workshop_lib.lab.nixl_pair import NixlPairResult, NixlPairSpec, TransferRow


def test_nixlbench_adapter_on_real_p5_log(fixtures_dir):
    df = nixlbench_frame(fixtures_dir / "nixlbench" / "nixlbench-libfabric-efa-pod-a.log")
    assert list(df.columns) == COLUMNS
    assert set(df["source"]) == {"nixlbench"} and set(df["backend"]) == {"LIBFABRIC"}
    assert set(df["op"]) == {"WRITE"} and set(df["mem"]) == {"VRAM"}
    first = df.iloc[0]
    assert (first["block_size"], first["batch"], first["iters"]) == (4096, 1, 1008)
    assert first["gbps"] == pytest.approx(0.112873) and first["lat_avg_us"] == pytest.approx(36.3)
    assert first["bytes_moved"] == 4096 * 1008
    assert first["seconds"] == pytest.approx(4096 * 1008 / 0.112873e9)
    assert df["block_size"].is_monotonic_increasing and df["block_size"].max() == 64 * 2**20


def test_nixlbench_adapter_rejects_log_without_table(tmp_path):
    log = tmp_path / "target.log"
    log.write_text("Backend (--backend=[UCX,LIBFABRIC]): LIBFABRIC\n")
    with pytest.raises(ConfigError, match="no result table"):
        nixlbench_frame(log)


def _row(backend: str, op: str, size: int, gbps: float) -> TransferRow:
    iters = 10
    return TransferRow(backend, op, "DRAM", size, 1, 1, iters, size * iters, size * iters / (gbps * 1e9), gbps,
                       50.0, 90.0, True, "tcp")


def test_lab_adapter_same_columns():
    res = NixlPairResult(NixlPairSpec(backend="UCX"), [_row("UCX", "READ", 4096, 0.5), _row("UCX", "READ", 2**20, 2.0)],
                         {}, {})
    df = lab_frame(res)
    assert list(df.columns) == COLUMNS
    assert list(df["source"]) == ["lab", "lab"]
    # average latency per transfer = seconds / iters
    assert df.loc[0, "lat_avg_us"] == pytest.approx(4096 / 0.5e9 * 1e6)
    table = bandwidth_table(df)
    assert table.loc[2**20, "UCX READ DRAM"] == 2.0


def test_published_points_and_seed_figures():
    pub = published_frame()
    assert list(pub.columns) == COLUMNS and set(pub["source"]) == {"published"}
    assert dict(zip(pub["block_size"], pub["gbps"], strict=True))[64 * 2**20] == 46.95
    assert "awsome-inference" in nixlbench_libfabric_vram()["source"][0]
    ttft = seed_ttft()
    assert set(ttft["backend"]) == {"UCX (TCP)", "LIBFABRIC (EFA)"}
    sp = seed_speedup().set_index(["model", "concurrency"])
    assert sp.loc[("Qwen3-0.6B", 20), "ttft_speedup"] == round(3333 / 104, 2)


@pytest.mark.parametrize(("kwargs", "field"), [({"backends": "TCP"}, "backend"), ({"ops": "COPY"}, "op"),
                                               ({"sizes": "4Q"}, "sizes")])
def test_sweep_rejects_bad_arguments_before_running(kwargs, field):
    with pytest.raises(ConfigError) as exc:
        sweep_nixl(**kwargs, progress=False)
    assert exc.value.where == field


@pytest.mark.lab
@pytest.mark.slow
def test_real_sweep_ucx_and_libfabric_into_one_frame(tmp_path):
    """Two real NIXL agents per backend on this machine (DRAM), swept and merged into one frame."""
    import sys

    from workshop_lib.lab import setup as lab_setup

    if sys.platform != "linux":
        pytest.skip("the local lab runs on Linux only")
    needs = ("libcuda.so.1", "libcudart.so.12", "nixl wheels")
    bad = [i for i in lab_setup.status() if i.status != "PASS" and i.check in needs]
    if bad:
        pytest.skip(f"lab not set up ({bad[0].check}: {bad[0].found}); run `workshop lab setup`")
    backends = ["UCX"] + ([] if lab_setup.libfabric_unavailable_reason() else ["LIBFABRIC"])
    df = sweep_nixl(backends, "READ", "4K,1M", iters=10, log_dir=tmp_path, progress=False)
    assert list(df.columns) == COLUMNS
    assert len(df) == 2 * len(backends) and df["verified"].all() and (df["gbps"] > 0).all()
    assert set(df["source"]) == {"lab"} and set(df["backend"]) == set(backends)
    assert (df["bytes_moved"] == df["block_size"] * 10).all()
    assert (tmp_path / "ucx-read" / "initiator.log").stat().st_size > 0
    if "LIBFABRIC" in backends:
        assert set(df.loc[df["backend"] == "LIBFABRIC", "transport"]) == {"tcp"}  # the local TCP fallback


_BANNER = """Backend (--backend=[UCX,GDS,GDS_MT,POSIX,Mooncake,HF3FS,OBJ,AZURE_BLOB]): {backend}
Initiator seg type (--initiator_seg_type=[DRAM,VRAM])       : VRAM
Op type (--op_type=[READ,WRITE])                            : WRITE
Check consistency (--check_consistency=[0,1])               : 0
Num iter (--num_iter=N)                                     : 10
----------------------------------------------------------------------------------------------------------------
{extra}
Block Size (B)      Batch Size     B/W (GB/Sec)   Avg Lat. (us)  Avg Prep (us)  P99 Prep (us)  Avg Post (us)  P99 Post (us)  Avg Tx (us)    P99 Tx (us)
----------------------------------------------------------------------------------------------------------------
4096                1              0.112873       36.3           25.0           25.0           2.8            4.0            33.5           40.0
"""


@pytest.mark.parametrize(
    ("backend", "extra", "transport"),
    [
        ("LIBFABRIC", "Discovered 32 EFA devices", "efa"),
        ("LIBFABRIC", "Discovered 1 socket devices", "sockets"),
        ("LIBFABRIC", "", None),  # a LIBFABRIC backend alone is not evidence of EFA
        ("UCX", "", None),
    ],
)
def test_nixlbench_labels_come_from_the_log(tmp_path, backend: str, extra: str, transport: str | None) -> None:
    log = tmp_path / "initiator.log"
    log.write_text(_BANNER.format(backend=backend, extra=extra))
    df = nixlbench_frame(log)
    assert set(df["backend"]) == {backend}  # as the banner prints it, never the pod pair's name
    got = df["transport"].iloc[0]
    assert (got is None and transport is None) or got == transport


def test_public_p5_log_does_not_claim_efa(fixtures_dir) -> None:
    """The public P5 nixlbench excerpt names no provider: its transport stays unconfirmed."""
    df = nixlbench_frame(fixtures_dir / "nixlbench" / "nixlbench-libfabric-efa-pod-a.log")
    assert df["transport"].isna().all()
