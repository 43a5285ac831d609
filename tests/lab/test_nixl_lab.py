"""Real NIXL 0.9.0 agent pairs on this machine: real processes, real bytes, real logs (no mocks).

Needs ``workshop lab setup`` to have run (``make test`` does it first). Sizes and iteration counts are kept small so
the tier stays fast; the figures themselves are not asserted, only that bytes arrived intact and the logs say
what the workshop teaches.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from workshop_lib.errors import LabUnsupported
from workshop_lib.lab import setup as lab_setup
from workshop_lib.lab.nixl_pair import AgentDied, NixlPairResult, NixlPairSpec, run_pair
from workshop_lib.logs import diagnose_files

pytestmark = [pytest.mark.lab, pytest.mark.slow]

SIZES = [4096, 1 << 20]


def _require_lab() -> None:
    if sys.platform != "linux":
        pytest.skip("the local lab runs on Linux only")
    needs = ("libcuda.so.1", "libcudart.so.12", "nixl wheels")
    bad = [i for i in lab_setup.status() if i.status != "PASS" and i.check in needs]
    if bad:
        pytest.skip(f"lab not set up ({bad[0].check}: {bad[0].found}); run `workshop lab setup`")


def _require_libfabric() -> None:
    reason = lab_setup.libfabric_unavailable_reason()
    if reason:
        pytest.skip(f"LIBFABRIC unavailable: {reason}")


def _root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture(autouse=True)
def lab_ready() -> None:
    _require_lab()


def _run(tmp_path: Path, **kw: object) -> NixlPairResult:
    spec = NixlPairSpec(sizes=list(SIZES), iters=20, timeout_s=240, **kw)  # type: ignore[arg-type]
    res = run_pair(spec, log_dir=tmp_path / "logs", progress=False)
    assert res.logs == {"initiator": tmp_path / "logs" / "initiator.log", "target": tmp_path / "logs" / "target.log"}
    assert all(p.stat().st_size > 0 for p in res.logs.values())
    assert [r.block_size for r in res.rows] == SIZES
    assert all(r.verified for r in res.rows), res.to_frame().to_string()
    assert all(r.iters == 20 and r.bytes_moved == 20 * r.block_size * r.batch for r in res.rows)
    assert all(r.gbps > 0 and r.lat_p50_us is not None for r in res.rows)
    assert res.meta["nixl_version"] == "0.9.0"
    assert res.meta["metadata_exchange"].startswith("NIXL listener")
    assert res.meta["notification_received"] is True
    assert res.meta["exit_codes"] == {"initiator": 0, "target": 0}
    return res


def _log(res: NixlPairResult, role: str = "initiator") -> str:
    return res.logs[role].read_text(errors="replace")


@pytest.mark.parametrize("op", ["READ", "WRITE"])
def test_ucx_pair_moves_verified_bytes(tmp_path: Path, op: str) -> None:
    res = _run(tmp_path, backend="UCX", op=op)
    for role in ("initiator", "target"):
        text = _log(res, role)
        assert "Backend UCX was instantiated" in text
        assert "NIXL version: 0.9.0" in text
    assert "cfg#" in _log(res)  # UCX_PROTO_INFO tables are in the log
    assert all(r.transport for r in res.rows)
    assert res.meta["checksums"]["where"] == ("initiator" if op == "READ" else "target")
    frame = res.to_frame()
    assert frame["verified"].all() and (frame["op"] == op).all()
    diag = diagnose_files([res.logs["initiator"], res.logs["target"]])
    for d in (*diag.per_file.values(), diag.combined):
        assert d.nixl_backend == "UCX" and d.verdict == "ucx" and d.errors == [], d.to_dict()


def test_ucx_tls_tcp_takes_the_network_path(tmp_path: Path) -> None:
    res = _run(tmp_path, backend="UCX", op="READ", ucx_tls="tcp")
    assert res.meta["env_knobs"]["initiator"]["UCX_TLS"] == "tcp"
    assert {r.transport for r in res.rows} == {"tcp"}
    assert "UCX_TLS=tcp" in _log(res)
    d = diagnose_files([res.logs["initiator"]]).combined
    assert d.verdict == "tcp-fallback" and "tcp/" in (d.evidence or ""), d.to_dict()


def test_batch_and_inflight(tmp_path: Path) -> None:
    res = _run(tmp_path, backend="UCX", op="WRITE", batch=4, inflight=3)
    assert all(r.batch == 4 and r.inflight == 3 for r in res.rows)


@pytest.mark.parametrize("op", ["READ", "WRITE"])
def test_libfabric_pair_shows_the_tcp_fallback(tmp_path: Path, op: str) -> None:
    _require_libfabric()
    res = _run(tmp_path, backend="LIBFABRIC", op=op)
    text = _log(res)
    assert "Backend LIBFABRIC was instantiated" in text
    assert "Discovered 1 socket devices (TCP fallback)" in text
    assert "libfabric:" in text  # FI_LOG_LEVEL=info lines
    assert res.meta["libfabric"]["tcp_fallback"] is True
    assert {r.transport for r in res.rows} <= {"tcp", "sockets"}
    # The diagnosis an attendee sees: LIBFABRIC on the sockets/tcp provider, i.e. the silent TCP fallback.
    diag = diagnose_files([res.logs["initiator"], res.logs["target"]])
    for d in (*diag.per_file.values(), diag.combined):
        assert d.to_dict()["verdict"] == "tcp-fallback", d.to_dict()
        assert d.nixl_backend == "LIBFABRIC" and d.libfabric_provider in ("sockets", "tcp") and d.errors == []
        assert "TCP fallback" in (d.evidence or "")


@pytest.mark.parametrize(("op", "batch", "inflight"), [("READ", 2, 1), ("WRITE", 2, 2)])
def test_libfabric_multi_descriptor_mismatch_is_diagnosed(tmp_path: Path, op: str, batch: int, inflight: int) -> None:
    """NIXL 0.9.0 LIBFABRIC on tcp sends every descriptor to offset 0 of the remote region (LIBFABRIC-MULTIDESC.md).

    The rows stay verified=False; meta names the cause with the wrong block offsets, read from both agents.
    """
    _require_libfabric()
    block = 64 * 1024
    spec = NixlPairSpec(
        backend="LIBFABRIC", op=op, sizes=[block], iters=1, batch=batch, inflight=inflight, timeout_s=240
    )
    res = run_pair(spec, log_dir=tmp_path / "logs", progress=False)
    assert [r.verified for r in res.rows] == [False]
    assert res.meta["exit_codes"] == {"initiator": 0, "target": 0}
    n = batch * inflight
    mis = res.meta["mismatches"][str(block)]
    assert mis["pattern"] == "remote-offset-0" and mis["blocks"] == n
    later = [j * block for j in range(1, n)]
    if op == "READ":  # every local block got the remote region's first block; block 0 itself is right
        assert mis["wrong_offsets"] == later and set(mis["holds"]) == {"source@0"}
    else:  # every write landed on the remote offset 0; the rest of the region is still zeros
        assert [o for o in mis["wrong_offsets"] if o] == later and mis["holds"][-1] == "zeros"
    line = res.meta["diagnosis"]
    assert line.startswith("NIXL 0.9.0 LIBFABRIC (tcp provider): every descriptor went to offset 0"), line
    assert "\n" not in line and "64K" in line


def test_libfabric_single_write_verifies_after_a_late_delivery(tmp_path: Path) -> None:
    """One descriptor, one WRITE: the tcp provider's DONE comes before the bytes land; the target's check waits."""
    _require_libfabric()
    spec = NixlPairSpec(backend="LIBFABRIC", op="WRITE", sizes=[4096, 65536], iters=1, timeout_s=240)
    res = run_pair(spec, log_dir=tmp_path / "logs", progress=False)
    assert all(r.verified for r in res.rows), res.meta.get("diagnosis")
    assert "diagnosis" not in res.meta
    assert all(0 <= w < 2.0 for w in res.meta["write_settle_s"].values())


@pytest.mark.skipif(not _root(), reason="--netns needs root")
@pytest.mark.parametrize("backend", ["UCX", "LIBFABRIC"])
def test_two_namespaces_over_a_veth(tmp_path: Path, backend: str) -> None:
    if backend == "LIBFABRIC":
        _require_libfabric()
    before = set(subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split())
    res = _run(tmp_path, backend=backend, op="READ", netns=True)
    ns = res.meta["netns"]
    assert ns["addrs"] == ["10.200.0.1", "10.200.0.2"]
    assert res.meta["addresses"] == {"initiator": "10.200.0.1", "target": "10.200.0.2"}
    if backend == "UCX":
        assert {r.transport for r in res.rows} == {"tcp"}
        assert f"tcp/{ns['veths'][0]}" in _log(res)
    else:
        assert "10.200.0.0/24" in res.meta["libfabric"]["fabric_names"]
    after = set(subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split())
    assert not (after - before), "namespaces left behind"


@pytest.mark.skipif(_root(), reason="only meaningful when not root")
def test_netns_without_root_is_refused() -> None:
    with pytest.raises(LabUnsupported, match="root"):
        run_pair(NixlPairSpec(sizes=[4096], netns=True), progress=False)


def _agent_children() -> list[int]:
    import psutil

    out = []
    for c in psutil.Process().children(recursive=True):
        try:
            if "workshop_lib.lab.nixl_agent" in " ".join(c.cmdline()):
                out.append(c.pid)
        except psutil.Error:
            continue
    return out


def test_a_killed_agent_is_reported_not_hung(tmp_path: Path) -> None:
    import psutil

    spec = NixlPairSpec(backend="UCX", op="READ", sizes=[1 << 20], iters=10**7, ucx_tls="tcp", timeout_s=120)
    killed: list[int] = []

    def kill_target_mid_run() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            log = tmp_path / "logs" / "initiator.log"
            if log.exists() and "metadata of target loaded" in log.read_text(errors="replace"):
                time.sleep(1.0)  # transfers are running now
                for c in psutil.Process().children(recursive=True):
                    try:
                        cl = c.cmdline()
                    except psutil.Error:
                        continue
                    if "--role" in cl and cl[cl.index("--role") + 1] == "target":
                        c.kill()
                        killed.append(c.pid)
                        return
            time.sleep(0.1)

    t = threading.Thread(target=kill_target_mid_run, daemon=True)
    t.start()
    started = time.monotonic()
    with pytest.raises(AgentDied) as err:
        run_pair(spec, log_dir=tmp_path / "logs", progress=False)
    t.join(5)
    assert killed, "the target was never seen running"
    assert time.monotonic() - started < 90
    msg = str(err.value)
    assert "nixl target" in msg and "killed by signal 9" in msg
    assert str(tmp_path / "logs" / "target.log") in msg and "last lines" in msg
    assert _agent_children() == []


def _two_gpus() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available() and torch.cuda.device_count() >= 2)


@pytest.mark.gpu
@pytest.mark.skipif(not _two_gpus(), reason="needs torch and two CUDA GPUs")
@pytest.mark.parametrize("op", ["READ", "WRITE"])
def test_vram_pair_over_two_gpus(tmp_path: Path, op: str) -> None:
    spec = NixlPairSpec(backend="UCX", op=op, mem="VRAM", sizes=[1 << 20, 16 << 20], iters=20, timeout_s=240)
    res = run_pair(spec, log_dir=tmp_path / "logs", progress=False)
    assert all(r.verified for r in res.rows), res.to_frame().to_string()
    assert all(r.peer_copy_gbps and r.peer_copy_gbps > 0 for r in res.rows)
    assert all(r.pct_of_peer_copy is not None for r in res.rows)
    assert res.meta["checksums"]["expected"]["1048576"].startswith("gpusum:")
    assert "Backend UCX was instantiated" in _log(res)
    assert any(r.transport and "cuda" in r.transport for r in res.rows), [r.transport for r in res.rows]
