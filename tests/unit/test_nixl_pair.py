"""Fast tests of the NIXL pair's pure logic: sizes, layout, percentages, log scanning, result framing, the CLI."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from workshop_lib.bench.stats import percentile
from workshop_lib.errors import ConfigError
from workshop_lib.lab import nixl_cli
from workshop_lib.lab.nixl_pair import (
    ROW_COLUMNS,
    NixlPairResult,
    NixlPairSpec,
    TransferRow,
)
from workshop_lib.lab.nixl_plan import (
    DEFAULT_SIZES,
    IterPolicy,
    gbps,
    libfabric_transport,
    parse_gpus,
    pct_of_peer_copy,
    read_lines,
    region_bytes,
    scan_libfabric,
    scan_ucx_proto_info,
    split_descriptors,
    ucx_transport_for,
)
from workshop_lib.parsing import MiB, format_size, parse_sizes

# ---------------------------------------------------------------------------------------------------------------------
# sizes


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4K,64K,1M", [4096, 65536, 1048576]),
        ("4096", [4096]),
        ("1G", [1 << 30]),
        ("4KiB, 2MB", [4096, 2 * MiB]),
        ("4K..32K", [4096, 8192, 16384, 32768]),
        ("4K..64M", [4096 << i for i in range(15)]),
        ("1M,4K..8K,1M", [MiB, 4096, 8192]),  # order kept, repeats dropped
        ("4K..4K", [4096]),
        ("4K..6K", [4096]),  # the range stops at the last power of two within it
    ],
)
def test_parse_sizes_good(text: str, expected: list[int]) -> None:
    assert parse_sizes(text) == expected


@pytest.mark.parametrize(
    ("text", "bad"),
    [
        ("4X", "'4X'"),
        ("4K,abc,1M", "'abc'"),
        ("0K", "'0K'"),
        ("3K..64K", "'3K'"),
        ("64K..4K", "'64K..4K'"),
        ("4K..", "''"),
        ("-4K", "'-4K'"),
    ],
)
def test_parse_sizes_bad_names_the_token(text: str, bad: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_sizes(text)
    assert bad in str(err.value)
    assert str(err.value).startswith("sizes:")


@pytest.mark.parametrize("text", ["", "  ", "4K,,1M"])
def test_parse_sizes_empty(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_sizes(text)


def test_default_sizes_and_format() -> None:
    assert [format_size(s) for s in DEFAULT_SIZES] == ["4K", "64K", "1M", "16M", "64M"]
    assert NixlPairSpec().sizes == DEFAULT_SIZES
    assert format_size(1536) == "1536"
    assert format_size(3 << 30) == "3G"


def test_parse_gpus() -> None:
    assert parse_gpus("0,1") == (0, 1)
    assert parse_gpus(" 2 , 3 ") == (2, 3)
    for bad in ("0", "0,1,2", "a,b", "-1,0"):
        with pytest.raises(ConfigError, match="--gpus"):
            parse_gpus(bad)


# ---------------------------------------------------------------------------------------------------------------------
# iterations, layout, arithmetic


def test_iter_policy_bounds() -> None:
    p = IterPolicy(target_bytes=64 * MiB, min_iters=8, max_iters=1000)
    assert p.iters_for(4096) == 1000  # capped
    assert p.iters_for(64 * MiB) == 8  # at least min_iters
    assert p.iters_for(1 * MiB) == 64
    assert p.iters_for(1 * MiB, batch=4) == 16  # batch counts in the request size
    assert p.iters_for(64 * MiB, inflight=16) == 16  # every slot gets a request


def test_split_descriptors_layout() -> None:
    slots = split_descriptors(base=1000, block=10, batch=3, inflight=2, devid=5)
    assert slots == [
        [(1000, 10, 5), (1010, 10, 5), (1020, 10, 5)],
        [(1030, 10, 5), (1040, 10, 5), (1050, 10, 5)],
    ]
    flat = [d for s in slots for d in s]
    spans = sorted((a, a + n) for a, n, _ in flat)
    assert all(b[0] >= a[1] for a, b in zip(spans, spans[1:], strict=False)), "descriptors overlap"
    assert spans[-1][1] - spans[0][0] == region_bytes(10, 3, 2)
    with pytest.raises(ValueError):
        split_descriptors(0, 0, 1, 1)


def test_rates_and_percentages() -> None:
    assert gbps(2_000_000_000, 2.0) == pytest.approx(1.0)
    assert gbps(1, 0.0) == 0.0
    assert pct_of_peer_copy(50.0, 200.0) == pytest.approx(25.0)
    assert pct_of_peer_copy(None, 200.0) is None
    assert pct_of_peer_copy(50.0, None) is None
    assert pct_of_peer_copy(50.0, 0.0) is None
    assert percentile([], 50) is None
    assert percentile([7.0], 99) == 7.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == pytest.approx(2.5)
    assert percentile(list(map(float, range(101))), 99) == pytest.approx(99.0)


# ---------------------------------------------------------------------------------------------------------------------
# spec validation


def test_spec_validate_normalises_and_refuses() -> None:
    s = NixlPairSpec(backend="ucx", op="write", mem="dram", sizes=[4096])
    s.validate()
    assert (s.backend, s.op, s.mem) == ("UCX", "WRITE", "DRAM")
    for field, value in [("backend", "TCP"), ("op", "SEND"), ("mem", "HBM"), ("batch", 0), ("inflight", 0)]:
        bad = NixlPairSpec(sizes=[4096])
        setattr(bad, field, value)
        with pytest.raises(ConfigError, match=field):
            bad.validate()
    with pytest.raises(ConfigError, match="repeats"):
        NixlPairSpec(sizes=[4096, 4096]).validate()
    with pytest.raises(ConfigError, match="GiB"):
        NixlPairSpec(sizes=[64 * MiB], batch=16, inflight=8).validate()  # 8 GiB of DRAM a side


# ---------------------------------------------------------------------------------------------------------------------
# what the logs say

# Lines in the shape UCX 1.20 prints with UCX_PROTO_INFO=y (prefixes shortened).
UCX_TABLE = """\
[1.0] [vm:1:0]   | ucp_context_0 self cfg#0 | remote memory read by ucp_get* into host memory from host |
[1.0] [vm:1:0]   |                   0..inf | zero-copy                                      | tcp/eth0 |
[1.1] [vm:1:1]      ucp_worker.c:1912 UCX  INFO    ucp_context_0 intra-node cfg#1 rma_am(tcp/wsd1i)  am(tcp/wsd1i cma/memory)
[1.1] [vm:1:1]   +--------------------------------+-------------------------------------------+
[1.1] [vm:1:1]   | ucp_context_0 intra-node cfg#1 | remote memory write by ucp_put* from host memory to host    |
[1.1] [vm:1:1]   +--------------------------------+-----------------------------------------------+------------+
[1.1] [vm:1:1]   |                         0..inf | zero-copy                                      | cma/memory |
[1.2] [vm:1:0]   | ucp_context_0 intra-node cfg#1 | remote memory read by ucp_get*(multi) into host memory from host    |
[1.2] [vm:1:0]   |                         0..8183 | short                                       | tcp/wsd1i |
[1.2] [vm:1:0]   |                       8184..inf | zero-copy                                   | cma/memory |
[1.3] [vm:1:1]   | ucp_context_0 intra-node cfg#2 | remote memory write by ucp_put* from host memory to cuda/dev[1]    |
[1.3] [vm:1:1]   |                         0..inf | software emulation                                      | tcp/eth0 |
[1.3] [vm:1:0]   | ucp_context_0 intra-node cfg#2 | remote memory read by ucp_get*(multi) into cuda/GPU0 from cuda/dev[1]    |
[1.3] [vm:1:0]   |                         0..inf | zero-copy                                                | cuda_ipc/cuda |
[1.4] [vm:1:0]   | ucp_context_0 intra-node cfg#2 | remote memory write by ucp_put*(multi) from cuda/GPU0 to cuda/dev[1]    |
[1.4] [vm:1:0]   |                         0..inf | zero-copy                                                | cuda_ipc/cuda |
"""


def test_scan_ucx_proto_info_ranges() -> None:
    ranges = scan_ucx_proto_info(UCX_TABLE.splitlines())
    assert len(ranges) == 7
    assert ranges[0].scope == "self" and ranges[0].transports == ["tcp"]
    r = ranges[3]
    assert (r.lo, r.hi, r.protocol, r.lanes) == (8184, float("inf"), "zero-copy", "cma/memory")
    # READ of small blocks: tcp short protocol; large: cma. The agent's own "self" table is ignored.
    assert ucx_transport_for(ranges, "READ", "DRAM", 4096) == "tcp"
    assert ucx_transport_for(ranges, "READ", "DRAM", 1 << 20) == "cma"
    assert ucx_transport_for(ranges, "WRITE", "DRAM", 4096) == "cma"
    assert ucx_transport_for(ranges, "READ", "VRAM", 1 << 20) == "cuda_ipc"
    assert ucx_transport_for(ranges, "WRITE", "VRAM", 1 << 20) == "cuda_ipc"  # not the host->cuda emulation
    assert ucx_transport_for([], "READ", "DRAM", 4096) is None


LF_LINES = """\
I1127 02:43:27.479170    8836 libfabric_topology.cpp:124] Discovered 1 socket devices (TCP fallback)
I1127 02:43:27.502090    8836 libfabric_rail.cpp:465] fabric_attr->name 10.200.0.0/24
libfabric:8836:1795747407::sockets:core:ofi_check_info():1110<info> Unsupported capabilities
libfabric:8836:1795747407::tcp:av:ofi_av_insert_addr():306<info> inserting addr: fi_sockaddr_in://10.200.0.2:34851
libfabric:8836:1795747407::tcp:ep_ctrl:xnet_handle_event_list():550<info> event FI_CONNECTED
"""


def test_scan_libfabric_tcp_fallback() -> None:
    scan = scan_libfabric(LF_LINES.splitlines())
    assert scan["socket_devices"] == 1
    assert scan["tcp_fallback"] is True
    assert scan["fabric_names"] == ["10.200.0.0/24"]
    assert scan["av_providers"] == ["tcp"]
    assert libfabric_transport(scan) == "tcp"
    assert libfabric_transport(scan_libfabric(LF_LINES.splitlines()[:1])) == "sockets"
    assert libfabric_transport(scan_libfabric(["I1 1 x.cpp:1] Discovered 32 EFA devices"])) == "efa"
    assert libfabric_transport(scan_libfabric([])) is None


def test_scan_libfabric_on_a_public_efa_log(fixtures_dir: Path) -> None:
    """libfabric 1.x lines (no timestamp field) from a real EFA pod are recognised too."""
    scan = scan_libfabric(
        read_lines(fixtures_dir / "logs" / "08-libfabric-fi_getinfo-efa-unsupported-caps-fallback.log")
    )
    providers = scan["providers"]
    assert isinstance(providers, dict) and providers.get("efa", 0) > 0
    assert scan["tcp_fallback"] is False


# ---------------------------------------------------------------------------------------------------------------------
# result framing


def _result(verified: bool = True, peer: float | None = None) -> NixlPairResult:
    spec = NixlPairSpec(sizes=[4096, MiB])
    rows = [
        TransferRow(
            "UCX", "READ", "DRAM", b, 1, 1, 10, 10 * b, 0.01, gbps(10 * b, 0.01), 5.0, 9.0, verified, "cma", peer, None
        )
        for b in spec.sizes
    ]
    return NixlPairResult(
        spec, rows, {"initiator": Path("/tmp/i.log"), "target": Path("/tmp/t.log")}, {"nixl_version": "0.9.0"}
    )


def test_to_frame_has_the_stable_columns() -> None:
    res = _result()
    frame = res.to_frame()
    assert list(frame.columns) == ROW_COLUMNS
    assert ROW_COLUMNS[:14] == [
        "backend", "op", "mem", "block_size", "batch", "inflight", "iters", "bytes_moved", "seconds", "gbps",
        "lat_p50_us", "lat_p99_us", "verified", "transport",
    ]  # fmt: skip
    assert frame["verified"].dtype == bool
    assert frame["block_size"].tolist() == [4096, MiB]
    assert frame["gbps"].iloc[1] == pytest.approx(10 * MiB / 0.01 / 1e9)
    assert res.all_verified


def test_empty_frame_keeps_columns() -> None:
    res = NixlPairResult(NixlPairSpec(), [], {}, {})
    assert list(res.to_frame().columns) == ROW_COLUMNS
    assert not res.all_verified


def test_to_json_round_trips() -> None:
    res = _result(verified=False)
    data = json.loads(json.dumps(res.to_json()))
    assert data["logs"] == {"initiator": "/tmp/i.log", "target": "/tmp/t.log"}
    assert data["spec"]["backend"] == "UCX"
    assert [r["verified"] for r in data["rows"]] == [False, False]
    assert not res.all_verified


# ---------------------------------------------------------------------------------------------------------------------
# CLI


def _lab_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="workshop lab")
    sub = p.add_subparsers(dest="lab_command")
    nixl_cli.add_setup_parser(sub)
    nixl_cli.add_nixl_parser(sub)
    return p


def test_cli_parses_nixl_arguments() -> None:
    a = _lab_parser().parse_args(
        ["nixl", "--backend", "libfabric", "--op", "write", "--sizes", "4K..16K", "--netns", "--ucx-tls", "tcp",
         "--mem", "VRAM", "--gpus", "2,3", "--batch", "8", "--inflight", "4", "--iters", "50", "--json", "o.json",
         "--log-dir", "logs"]
    )  # fmt: skip
    assert (a.backend, a.op, a.sizes, a.netns, a.ucx_tls) == ("LIBFABRIC", "WRITE", [4096, 8192, 16384], True, "tcp")
    assert (a.mem, a.gpus, a.batch, a.inflight, a.iters) == ("VRAM", (2, 3), 8, 4, 50)
    assert a.json_out == Path("o.json") and a.log_dir == Path("logs") and a.func is nixl_cli.run_nixl
    d = _lab_parser().parse_args(["nixl"])
    assert (d.backend, d.op, d.sizes, d.mem, d.gpus, d.batch, d.inflight, d.iters) == (
        "UCX",
        "READ",
        None,
        "DRAM",
        (0, 1),
        1,
        1,
        0,
    )


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["nixl", "--sizes", "4K,zz"], "'zz'"),
        (["nixl", "--batch", "0"], "must be >= 1"),
        (["nixl", "--gpus", "0"], "--gpus"),
        (["nixl", "--backend", "GDS"], "invalid choice"),
    ],
)
def test_cli_rejects_bad_arguments(argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _lab_parser().parse_args(argv)
    assert needle in capsys.readouterr().err


def test_cli_setup_flags() -> None:
    a = _lab_parser().parse_args(["setup", "--check", "--json"])
    assert a.check and a.json and a.func is nixl_cli.run_setup


def test_format_rows_table() -> None:
    text = nixl_cli.format_rows(_result())
    lines = text.splitlines()
    assert lines[0].split() == ["block", "iters", "GB/s", "p50", "us", "p99", "us", "verified", "transport"]
    assert lines[2].split()[0] == "4K" and "yes" in lines[2] and "cma" in lines[2]
    assert "% peer" not in text
    vram = nixl_cli.format_rows(_result(verified=False, peer=10.0))
    assert "% peer" in vram and "NO" in vram


def test_vram_without_torch_or_gpus_is_one_line() -> None:
    """On a CPU machine VRAM is refused before any process starts, with a one-line reason."""
    import sys

    from workshop_lib.errors import LabUnsupported
    from workshop_lib.lab.nixl_pair import run_pair

    if sys.platform != "linux":
        pytest.skip("Linux only")
    try:
        import torch

        if torch.cuda.is_available() and torch.cuda.device_count() >= 2:
            pytest.skip("this machine has GPUs: the lab tier runs VRAM for real")
    except ImportError:
        pass
    with pytest.raises(LabUnsupported) as err:
        run_pair(NixlPairSpec(mem="VRAM", sizes=[4096]), progress=False)
    msg = str(err.value)
    assert msg.startswith("--mem VRAM") or msg.startswith("--gpus")
    assert "\n" not in msg


# ---------------------------------------------------------------------------------------------------------------------
# Mismatch diagnosis (nixl_diag): per-block checksums reduced to one line


def _sums(n: int) -> list[str]:
    import zlib

    return [f"crc32:{zlib.crc32(bytes([j + 1]) * 4096):08x}" for j in range(n)]


def test_zero_checksum_is_the_crc_of_zero_bytes() -> None:
    import zlib

    from workshop_lib.lab.nixl_diag import zero_checksum

    assert zero_checksum("DRAM", 4096) == f"crc32:{zlib.crc32(bytes(4096)):08x}"
    assert zero_checksum("VRAM", 4096) == "gpusum:0:0"


def test_read_with_every_block_from_remote_offset_0_is_named() -> None:
    from workshop_lib.lab.nixl_diag import REMOTE_OFFSET_0, diagnose, zero_checksum

    src = _sums(4)
    got = [src[0]] * 4
    d = diagnose("READ", "LIBFABRIC", "tcp", "0.9.0", 4096, 4, 1, src, got, zero_checksum("DRAM", 4096))
    assert d.pattern == REMOTE_OFFSET_0
    assert d.wrong_offsets == [4096, 8192, 12288]
    assert {w.holds for w in d.wrong} == {"source@0"}
    assert d.line == (
        "NIXL 0.9.0 LIBFABRIC (tcp provider): every descriptor went to offset 0 of the remote registered region "
        "(batch 4 x inflight 1); 3 of 4 4K blocks wrong: offsets 4K, 8K, 12K hold the remote bytes of offset 0"
    )


def test_write_landing_on_remote_offset_0_is_named() -> None:
    from workshop_lib.lab.nixl_diag import REMOTE_OFFSET_0, diagnose, zero_checksum

    src = _sums(2)
    zero = zero_checksum("DRAM", 4096)
    d = diagnose("WRITE", "LIBFABRIC", "sockets", "0.9.0", 4096, 1, 2, src, [src[1], zero], zero)
    assert d.pattern == REMOTE_OFFSET_0
    assert [w.holds for w in d.wrong] == ["source@4096", "zeros"]
    assert d.line.endswith(
        "2 of 2 4K blocks wrong: offset 4K was never written, offset 0 holds the local bytes of offset 4K"
    )


def test_other_mismatches_are_described_not_blamed() -> None:
    from workshop_lib.lab.nixl_diag import diagnose, summary_line, zero_checksum

    src = _sums(3)
    zero = zero_checksum("DRAM", 4096)
    d = diagnose("READ", "UCX", None, "0.9.0", 4096, 3, 1, src, [src[0], zero, "crc32:deadbeef"], zero)
    assert d.pattern is None
    assert d.line == "UCX: 2 of 3 4K blocks wrong at offsets 4K, 8K (they hold: other, zeros)"
    ok = diagnose("READ", "LIBFABRIC", "tcp", "0.9.0", 4096, 3, 1, src, list(src), zero)
    assert ok.wrong == [] and ok.pattern is None
    one = diagnose("READ", "LIBFABRIC", "tcp", "0.9.0", 4096, 1, 1, src[:1], [zero], zero)
    assert one.pattern is None  # a single block cannot show the offset-0 pattern
    assert summary_line([]) is None
    assert summary_line([d]) == d.line


def test_summary_line_groups_sizes_with_the_same_pattern() -> None:
    from workshop_lib.lab.nixl_diag import diagnose, summary_line, zero_checksum

    src = _sums(2)
    a = diagnose("READ", "LIBFABRIC", "tcp", "0.9.0", 4096, 2, 1, src, [src[0]] * 2, zero_checksum("DRAM", 4096))
    b = diagnose("READ", "LIBFABRIC", "tcp", "0.9.0", 1 << 20, 2, 1, src, [src[0]] * 2, zero_checksum("DRAM", 1 << 20))
    c = diagnose("READ", "LIBFABRIC", "tcp", "0.9.0", 2 << 20, 2, 1, src, [src[0], "crc32:0"], "z")
    line = summary_line([a, b, c])
    assert line is not None and line.startswith(a.line)
    assert line.endswith("; same at 1M; other mismatches at 2M (see meta['mismatches'])")
    assert "\n" not in line


def test_one_way_to_run_the_pair_from_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    """`workshop lab nixl` runs the NIXL pair; `workshop bench` has no second `nixl` command, nixl_cli no `main`."""
    from workshop_lib.cli import main

    with pytest.raises(SystemExit):
        main(["bench", "nixl", "--backend", "UCX"])
    assert "invalid choice: 'nixl'" in capsys.readouterr().err
    assert not hasattr(nixl_cli, "main")
    assert _lab_parser().parse_args(["nixl"]).func is nixl_cli.run_nixl
