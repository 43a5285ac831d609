"""nixlbench: banner and table of the real two-node LIBFABRIC run; a target-side log has config and no rows."""

from __future__ import annotations

from workshop_lib.logs import NIXLBENCH_COLUMNS, parse_nixlbench


def test_initiator_log(fixtures_dir) -> None:
    r = parse_nixlbench(fixtures_dir / "nixlbench/nixlbench-libfabric-efa-pod-a.log")
    c = r.config
    assert (c["backend"], c["op"], c["mem"], c["role"], c["num_iter"]) == ("LIBFABRIC", "WRITE", "VRAM->VRAM",
                                                                          "initiator", 1008)
    assert c["etcd_endpoint"] == "http://dynamo-platform-etcd.default.svc.cluster.local:2379"
    assert list(r.table.columns) == list(NIXLBENCH_COLUMNS)
    assert len(r.table) == 15
    first, last = r.table.iloc[0], r.table.iloc[-1]
    assert (first.block_size, first.batch, first.gbps, first.lat_avg_us) == (4096, 1, 0.112873, 36.3)
    assert (last.block_size, last.gbps, last.tx_p99_us) == (67108864, 46.948036, 1429.0)
    assert r.table.gbps.is_monotonic_increasing


def test_target_side_has_config_and_no_rows(fixtures_dir) -> None:
    lines = (fixtures_dir / "nixlbench/nixlbench-libfabric-efa-pod-a.log").read_text().splitlines()
    target = [x.replace("type initiator", "type target") for x in lines if not x.startswith("Block Size")][:40]
    r = parse_nixlbench(target)
    assert r.config["role"] == "target" and r.config["backend"] == "LIBFABRIC"
    assert r.table.empty and list(r.table.columns) == list(NIXLBENCH_COLUMNS)
    assert r.to_dict()["rows"] == []
