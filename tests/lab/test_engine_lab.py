"""The real engine end to end: the kit's own single-node DGD on vLLM 0.14.1 (CPU) prefill + decode workers, with
vLLM's NixlConnector moving each request's KV cache over NIXL 0.9.0, first with UCX, then with LIBFABRIC.

One lab per backend, shared by the tests of that backend (starting one costs one to three minutes on 2 cores), never
two at once (each uses about 6-7 GB RAM). The whole module took 535 s (8 min 55 s) on a 2-core machine at load
average 15 (other labs and test runs beside it), with a fresh lab directory (model, inductor and reference caches cold).
Skips with the reason where the engine is not installed (``workshop lab setup`` installs it) or RAM is short.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.lab.conftest import engine_or_skip
from workshop_lib.bench.client import chat
from workshop_lib.errors import LabError
from workshop_lib.lab import setup as lab_setup
from workshop_lib.lab.serving import Lab

pytestmark = [pytest.mark.lab, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
WORKSHOP = [sys.executable, "-m", "workshop_lib.cli"]




@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Short path: vLLM's IPC sockets live under the lab's TMPDIR (the lab also handles long paths).
    return tmp_path_factory.mktemp("eng")


def _up(root: Path, backend: str) -> Iterator[Lab]:
    engine_or_skip()
    lab = Lab(root=root)
    try:
        lab.up(engine="vllm", kv_backend=backend, timeout=600, progress=False)
        yield lab
    finally:
        lab.down()


@pytest.fixture(scope="module")
def ucx(root: Path) -> Iterator[Lab]:
    yield from _up(root, "UCX")


def _group_pids(lab: Lab) -> list[int]:
    return [p.pid for p in psutil.process_iter() if str(lab.root) in " ".join(_cmdline(p))]


def _cmdline(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except psutil.Error:
        return []


def test_ucx_disaggregated_stream_moves_kv_over_nixl(ucx: Lab) -> None:
    st = ucx.status()
    assert st.healthy and st.engine == "vllm" and st.kv_backend == "UCX"
    before = st.kv or {}
    r = chat(str(st.frontend_url), str(st.model), "What does NIXL move?", stream=True, max_tokens=8, timeout=120)
    assert r.tokens > 0 and r.ttft_s is not None
    after = ucx.status().kv or {}
    assert after["bytes_transferred"] > before.get("bytes_transferred", 0) > 0
    assert after["failed_transfers"] == 0
    # The frontend's prefill router served it (not a decode-only fallback: the DGD's frontend has --enforce-disagg).
    front = ucx.log_path("frontend").read_text(errors="replace")
    assert "Prefill router activated successfully" in front or "activating prefill router" in front
    assert "--enforce-disagg" in st.processes["frontend"].detail or "--enforce-disagg" in json.dumps(
        json.loads(ucx.state_path.read_text())["graph"]
    )
    dec = ucx.log_path("decode").read_text(errors="replace")
    assert "Backend UCX was instantiated" in dec and "NIXL compatibility check passed" in dec


def test_ucx_status_json_reports_engine_ports_and_kv(ucx: Lab) -> None:
    env = {**os.environ, "WORKSHOP_LAB_DIR": str(ucx.root)}
    res = subprocess.run([*WORKSHOP, "lab", "status", "--json"], env=env, capture_output=True, text=True,
                         timeout=120, cwd=REPO)  # fmt: skip
    assert res.returncode == 0, res.stderr
    js = json.loads(res.stdout)
    assert js["engine"] == "vllm" and js["kv_backend"] == "UCX" and js["healthy"] is True
    assert js["kv"]["bytes_transferred"] > 0 and js["kv"]["failed_transfers"] == 0
    for role in ("prefill", "decode"):
        p = js["processes"][role]
        assert p["pid"] > 0 and p["metrics_url"].endswith("/metrics") and Path(p["log"]).is_file()
        assert p["extra_ports"]["nixl_side_channel"] > 0


def test_ucx_kv_cache_arrives_intact(ucx: Lab) -> None:
    from workshop_lib.lab.kvcheck import check_kv

    rep = check_kv(ucx)
    assert rep["integrity"] == "identical", rep.get("cause")
    assert rep["kv_bytes_during_check"] > 0 and rep["failed_transfers_during_check"] == 0
    assert all(p["max_logprob_difference"] <= 0.02 for p in rep["prompts"])


def test_ucx_breakdown_has_three_parts_and_bytes(ucx: Lab) -> None:
    from workshop_lib.lab.breakdown import summary, ttft_breakdown

    recs = ttft_breakdown(ucx, n=3)
    assert len(recs) == 3
    for r in recs:
        assert r["kv_bytes"] > 0 and r["descriptors"] > 0 and r["prefill_s"] > 0 and r["kv_transfer_s"] > 0
        assert r["ttft_s"] >= r["prefill_s"]
    assert summary(recs)["kv_bytes"] > 0


def test_ucx_down_leaves_nothing(ucx: Lab) -> None:
    st = ucx.status()
    tmp = json.loads(ucx.state_path.read_text()).get("tmpdir")
    assert _group_pids(ucx)
    ucx.down()
    assert _group_pids(ucx) == [] and not ucx.status().running
    assert tmp is None or not Path(tmp).exists() or str(st.run_dir) in tmp


@pytest.fixture(scope="module")
def libfabric(root: Path, ucx: Lab) -> Iterator[Lab]:
    ucx.down()  # never two real-engine labs at once
    reason = lab_setup.libfabric_unavailable_reason()
    if reason:
        pytest.skip(f"NIXL LIBFABRIC cannot load here: {reason}")
    yield from _up(root, "LIBFABRIC")


def test_libfabric_transfers_and_check_kv_tells_the_truth(libfabric: Lab) -> None:
    """LOCAL-LAB.md measured a silent corruption here (NIXL 0.9.0 LIBFABRIC over sockets/tcp): whichever result
    comes, the CLI must report it, and a mismatch must exit 1 and name the cause."""
    st = libfabric.status()
    assert st.healthy and st.kv_backend == "LIBFABRIC"
    assert "Backend LIBFABRIC was instantiated" in libfabric.log_path("decode").read_text(errors="replace")
    env = {**os.environ, "WORKSHOP_LAB_DIR": str(libfabric.root)}
    res = subprocess.run([*WORKSHOP, "lab", "check-kv", "--json"], env=env, capture_output=True, text=True,
                         timeout=900, cwd=REPO)  # fmt: skip
    rep = json.loads(res.stdout)
    assert rep["kv_backend"] == "LIBFABRIC" and rep["kv_bytes_during_check"] > 0
    if rep["integrity"] == "mismatch":
        assert res.returncode == 1
        assert "LIBFABRIC" in rep["cause"] and "not the one the prefill worker computed" in rep["cause"]
        assert any(p["first_difference"] for p in rep["prompts"])
    else:
        assert rep["integrity"] == "identical" and res.returncode == 0


def test_an_engine_that_is_not_installed_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "vllm" else real(n, *a))
    with pytest.raises(LabError, match=r"engine vllm: vLLM .* not installed.*--engine mocker"):
        Lab(root=tmp_path).up(engine="vllm", progress=False)
