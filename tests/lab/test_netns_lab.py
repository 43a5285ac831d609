"""Section 3 on the local lab, for real: the vLLM 0.14.1 prefill and decode workers in two network namespaces (two
"nodes"), the KV cache moving between them through NIXL over a veth, and a worker killed with SIGKILL recovered by
``lab up``.

One lab for the module (``workshop lab up --engine vllm --netns`` from a subprocess, as a learner runs it), about
80 s to start on 2 cores; the tests run in file order and the last ones kill and stop it. Skips with the reason when
not root (namespaces need it), or where the real engine is not installed or RAM is short.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab.conftest import engine_or_skip
from workshop_lib.lab import labnet
from workshop_lib.lab.crossnode import kv_over_veth
from workshop_lib.lab.serving import Lab

pytestmark = [pytest.mark.lab, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
WORKSHOP = [sys.executable, "-m", "workshop_lib.cli"]


def _cli(root: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WORKSHOP_LAB_DIR": str(root)}
    return subprocess.run([*WORKSHOP, "lab", *args], env=env, capture_output=True, text=True, timeout=timeout,
                          cwd=REPO)  # fmt: skip


@pytest.fixture(scope="module")
def netlab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, float]]:
    if os.geteuid() != 0:
        pytest.skip("two network namespaces need root")
    engine_or_skip()
    root = tmp_path_factory.mktemp("nsl")
    t0 = time.monotonic()
    try:
        res = _cli(root, "up", "--engine", "vllm", "--netns", "--no-progress", "--timeout", "600", timeout=900)
        assert res.returncode == 0, res.stdout + res.stderr
        yield Lab(root=root), time.monotonic() - t0
    finally:
        Lab(root=root).down()


def test_workers_run_in_their_namespaces_and_advertise_their_veth_address(netlab: tuple[Lab, float]) -> None:
    lab, seconds = netlab
    st = lab.status()
    assert st.healthy and st.engine == "vllm" and st.net is not None, st.to_json()
    net = labnet.LabNet.from_json(st.net)
    for role in ("prefill", "decode"):
        p = st.processes[role]
        assert p.netns == net.namespace(role) and p.host == net.addr(role)
        assert p.metrics_url == f"http://{net.addr(role)}:{p.port}/metrics"
        ns_of_pid = subprocess.run(["ip", "netns", "identify", str(p.pid)], capture_output=True, text=True).stdout
        assert ns_of_pid.strip() == net.namespace(role)
    log = lab.log_path("prefill").read_text(errors="replace")
    assert f"bind_addr={net.addr('prefill')}" in log or f"Binding TCP server to {net.addr('prefill')}" in log
    state = json.loads(lab.state_path.read_text())
    assert state["hosts"]["etcd"] == net.bridge_addr
    print(f"lab up --netns (vllm, UCX) ready in {seconds:.1f} s")


def test_the_kv_cache_crosses_the_veth(netlab: tuple[Lab, float]) -> None:
    lab, _ = netlab
    ev = kv_over_veth(lab)
    print(f"one completion: {ev}")
    assert ev["crossed"], ev
    assert ev["nixl_bytes"] > 0 and ev["nixl_failed"] == 0
    assert ev["prefill_tx_bytes"] >= ev["nixl_bytes"] and ev["decode_rx_bytes"] >= ev["nixl_bytes"]


def test_the_kv_cache_arrives_intact_across_the_veth(netlab: tuple[Lab, float]) -> None:
    from workshop_lib.lab.kvcheck import check_kv

    rep = check_kv(netlab[0])
    print(f"check-kv across the namespaces (UCX over tcp): {rep['integrity']}, {rep['kv_bytes_during_check']:.0f} B, "
          f"{rep['seconds']} s")
    assert rep["integrity"] == "identical", rep.get("cause")
    assert rep["kv_bytes_during_check"] > 0 and rep["failed_transfers_during_check"] == 0


def test_status_json_and_plan_show_the_namespaces(netlab: tuple[Lab, float]) -> None:
    lab, _ = netlab
    js = json.loads(_cli(lab.root, "status", "--json", timeout=120).stdout)
    assert js["net"]["namespaces"]["decode"] == js["processes"]["decode"]["netns"]
    assert js["veth"]["decode"]["rx_bytes"] > 0 and js["kv"]["failed_transfers"] == 0
    text = _cli(lab.root, "status", timeout=120).stdout
    assert "network: two namespaces on bridge" in text
    plan = _cli(lab.root, "plan", "--engine", "vllm", "--netns", timeout=120).stdout
    assert "status.podIP" in plan and "ip netns exec wslab0-d" in plan


def test_kill_9_of_the_decode_worker_is_recovered_by_lab_up(netlab: tuple[Lab, float]) -> None:
    lab, _ = netlab
    before = lab.status()
    pids = {n: p.pid for n, p in before.processes.items()}
    os.killpg(before.processes["decode"].pid, signal.SIGKILL)  # the worker's whole process group, as the OOM killer
    deadline = time.monotonic() + 30
    while lab.status().processes["decode"].healthy and time.monotonic() < deadline:
        time.sleep(0.2)
    st = lab.status()
    assert not st.healthy and st.processes["decode"].detail.startswith("not running")
    t0 = time.monotonic()
    res = _cli(lab.root, "up", "--engine", "vllm", "--netns", "--no-progress", "--timeout", "600", timeout=900)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "restarting decode" in res.stderr
    after = lab.status()
    assert after.healthy
    assert {n: p.pid for n, p in after.processes.items() if n != "decode"} == {
        n: p for n, p in pids.items() if n != "decode"}  # only decode was restarted
    assert after.processes["decode"].pid != pids["decode"]
    assert after.processes["decode"].netns == before.processes["decode"].netns
    ev = kv_over_veth(lab)
    print(f"decode restarted in {time.monotonic() - t0:.1f} s; then one completion: {ev}")
    assert ev["crossed"] and ev["nixl_bytes"] > 0 and ev["nixl_failed"] == 0, ev


def test_down_leaves_no_process_namespace_or_veth(netlab: tuple[Lab, float]) -> None:
    lab, _ = netlab
    net = labnet.LabNet.from_json(lab.status().net or {})
    res = _cli(lab.root, "down", timeout=120)
    assert res.returncode == 0 and "decode" in res.stdout
    assert not lab.status().running
    assert not {net.namespace(r) for r in labnet.ROLES} & labnet.existing_namespaces()
    assert not ({net.bridge} | {net.peer(r) for r in labnet.ROLES}) & labnet.existing_links()
