"""The four notebooks executed with papermill on TARGET=eks against the mock Kubernetes API server.

Every eks cell runs: Helm through a recording fake ``helm`` on PATH, server-side apply and watches against the mock
(which plays the Dynamo operator), pod logs served from the real public excerpts in ``../shared/fixtures``, and the
completion (02) and serving sweep (04) through the notebooks' own port-forward: ``workshop_lib.cluster.port_forward``
opens a local port, each connection goes over the mock's ``pods/portforward`` WebSocket, and the mock connects
container port 8000 to a local stand-in streaming server with known timing. No frontend URL is passed in.
A fake HF token is set in the environment and must appear nowhere in the executed notebooks.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import shared_path
from tests.support.mock_k8s import MockApiServer, MockCluster
from tests.support.scenarios import GPU_NODES, build, serve_component_logs
from workshop_lib.bench.testserver import running_server
from workshop_lib.checks import assert_agree
from workshop_lib.logs.diagnose import diagnose_files
from workshop_lib.runner import NOTEBOOK_DIR, NotebookRun, run_one
from workshop_lib.targets.eks import WARMUP_BATCH

pytestmark = [pytest.mark.notebook, pytest.mark.slow]

FAKE_TOKEN = "hf_fake_eks_token_for_tests_987654"
LOGS = {  # Dynamo component -> fixture served as that component's pod log
    "PrefillWorker": "01-nixl-libfabric-activation-plugin-load.log",
    "DecodeWorker": "20-doc-expected-efa-handshake-and-backend-lines.log",
    "Frontend": "21-dynamo-disagg-completions-cross-node.log",
}
NIXLBENCH = "nixlbench-libfabric-efa-pod-a.log"
SWEEP = {"CONCURRENCY": "1,2", "REQUESTS": 4, "ISL": 32, "OSL": 8}  # notebook 04: 2 levels x 4 requests per graph


def _fake_helm(bin_dir: Path, record: Path) -> None:
    helm = bin_dir / "helm"
    helm.write_text(f'#!/bin/sh\necho "$@" >> {record}\nexit 0\n')
    helm.chmod(helm.stat().st_mode | stat.S_IEXEC)


def nixlbench_logs(fixtures: Path) -> dict[str, str]:
    """A different log per pod pair (by its ``workshop.nvidia.com/nixlbench`` label): the LIBFABRIC pair serves the
    public LIBFABRIC nixlbench log with the documented EFA handshake lines after it (fixture 20: the provider is named),
    the UCX pair the same table with its banner saying ``UCX`` and no provider line."""
    lf = (fixtures / "nixlbench" / NIXLBENCH).read_text()
    efa = [ln for ln in (fixtures / "logs" / LOGS["DecodeWorker"]).read_text().splitlines() if not ln.startswith("#")]
    banner = next(ln for ln in lf.splitlines() if ln.startswith("Backend (--backend="))
    ucx = lf.replace(banner, banner.rsplit(":", 1)[0] + ": UCX")
    return {"nixlbench-libfabric-vram": lf + "\n".join(efa) + "\n", "nixlbench-ucx-vram": ucx}


def _nixlbench_hook(texts: dict[str, str]):  # noqa: ANN202 - a MockCluster hook
    """Pods labelled as nixlbench finish (phase Succeeded) shortly after they are applied, with their pair's log."""

    def on_apply(c: MockCluster, obj: dict[str, Any]) -> None:
        run = (obj["metadata"].get("labels") or {}).get("workshop.nvidia.com/nixlbench")
        if obj["kind"] != "Pod" or run is None:
            return
        text = texts[run]
        ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        c.set_log(ns, name, text, container="nixlbench")
        c.set_log(ns, name, text)

        def finish(cl: MockCluster) -> None:
            pod = cl.get("pods", ns, name)
            if pod is not None:
                pod = dict(pod)
                pod["spec"] = {**pod.get("spec", {}), "nodeName": GPU_NODES[0]}
                pod["status"] = {"phase": "Succeeded", "conditions": [], "containerStatuses": []}
                cl.put(pod)

        c.later(0.3, finish)

    return on_apply


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, NotebookRun]:
    fixtures = shared_path("fixtures")
    out = tmp_path_factory.mktemp("nb-eks")
    bin_dir = out / "bin"
    bin_dir.mkdir()
    helm_log = out / "helm-calls.txt"
    _fake_helm(bin_dir, helm_log)
    cluster = build("healthy")
    for comp, name in LOGS.items():
        serve_component_logs(cluster, comp, (fixtures / "logs" / name).read_text())
    cluster.hooks.append(_nixlbench_hook(nixlbench_logs(fixtures)))
    results: dict[str, NotebookRun] = {}
    served: dict[str, int] = {}  # notebook -> completions the stand-in streamed while it ran
    with (MockApiServer(cluster) as srv, running_server(ttft_s=0.02, itl_s=0.002, tokens=16) as stand_in,
          pytest.MonkeyPatch.context() as mp):
        cluster.forward_to[8000] = ("127.0.0.1", stand_in.port)  # every frontend pod's :8000 is the stand-in
        kubeconfig = srv.write_kubeconfig(out / "kubeconfig")
        mp.setenv("HF_TOKEN", FAKE_TOKEN)
        mp.setenv("KUBECONFIG", str(kubeconfig))
        mp.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
        mp.setenv("WORKSHOP_WORK_DIR", str(out / "work"))
        # an instructor sets WORKER_IMAGE to an image built with EFA: without it, LIBFABRIC renders a placeholder that
        # preflight fails on purpose (tests/unit/test_preflight.py holds that side)
        common = {"TARGET": "eks", "PREFILL_NODE": GPU_NODES[0], "DECODE_NODE": GPU_NODES[1], "DEPLOY_TIMEOUT_S": 60,
                  "WORKER_IMAGE": EFA_IMAGE}
        for nb in sorted(NOTEBOOK_DIR.glob("[0-9][0-9]-*.ipynb")):
            sec = nb.stem[:2]
            before = stand_in.stats.requests
            results[sec] = run_one(nb, out, {**common, **(SWEEP if sec == "04" else {})}, timeout_s=300, html=False)
            served[sec] = stand_in.stats.requests - before
        results["stand_in_port"] = stand_in.port  # type: ignore[assignment]
    results["helm"] = helm_log  # type: ignore[assignment]
    results["cluster"] = cluster  # type: ignore[assignment]
    results["served"] = served  # type: ignore[assignment]
    return results


EFA_IMAGE = "registry.example.com/dynamo/vllm-runtime:0.9.0-efa"


def _ok(run: NotebookRun) -> dict:
    assert run.status == "ok", run.error
    assert run.output is not None and FAKE_TOKEN not in run.output.read_text()
    assert_agree(run.records)  # every recorded verdict follows from its recorded rows: no PASS over a FAIL row
    return run.records


def _forwarded_pods(runs: dict[str, Any], dgd: str) -> list[str]:
    """Pods of ``dgd``'s frontend that a ``pods/portforward`` WebSocket was opened to (one per local connection)."""
    return [r.path.split("/")[-2] for r in runs["cluster"].requests
            if r.path.endswith("/portforward") and f"/pods/{dgd}-frontend-" in r.path and r.query == {"ports": "8000"}]


def _local_forward(url: str, stand_in_port: int) -> bool:
    """A port-forward's local end: http://127.0.0.1:<port> with a port of its own (not the stand-in's)."""
    host, _, port = url.removeprefix("http://").partition(":")
    return host == "127.0.0.1" and port.isdigit() and int(port) not in (0, stand_in_port)


def test_01_platform_and_secret(runs: dict[str, Any]) -> None:
    rec = _ok(runs["01"])
    calls = runs["helm"].read_text().splitlines()
    assert calls[0].startswith("upgrade --install dynamo-crds oci://") and "--version 0.9.0" in calls[0]
    assert "dynamo-platform" in calls[1] and "controllerManager.manager.image.tag=0.9.0" in calls[1]
    checks = {c["check"]: c for c in rec["checks_setup"]}
    efa = [c for name, c in checks.items() if name.startswith("EFA allocatable on")]
    assert len(efa) == 2 and all(c["found"] == "32" and c["status"] == "PASS" for c in efa)
    assert checks["GDRCopy DaemonSet"]["status"] == "PASS"
    # with an EFA worker image the healthy scenario passes preflight outright
    assert rec["verdict_setup"] == "PASS" and rec["preflight_failed"] == []
    secret = runs["cluster"].get("secrets", "dynamo-workshop", "hf-token-secret")
    assert set(secret["data"]) == {"HF_TOKEN"}
    assert rec["cost_usd"] >= 0


def test_02_single_node(runs: dict[str, Any]) -> None:
    rec = _ok(runs["02"])
    from workshop_lib.config import WorkshopConfig
    from workshop_lib.manifests import render
    from workshop_lib.targets import dgd_names

    assert rec["dgds_ready"] == dgd_names(render(WorkshopConfig(target="eks"), "single-node"))
    assert rec["worker_nixl_backend"] == "LIBFABRIC"
    assert rec["completion_tokens"] == 32  # MAX_TOKENS
    # The completion went through the notebook's port-forward to the graph's frontend Service, not a passed-in URL.
    graph = rec["dgds_ready"][0]
    assert rec["port_forwards"] == {f"{graph}-frontend": rec["frontend_url"]}
    assert _local_forward(rec["frontend_url"], runs["stand_in_port"])
    assert _forwarded_pods(runs, graph)
    assert rec["completion_text"] == "".join(f"tok{i} " for i in range(32))[:200]  # what the stand-in streamed
    assert runs["served"]["02"] == 1
    assert rec["prefill_router_active"] is False  # the served frontend excerpt has no router line: reported, not faked


def test_03_cross_node(runs: dict[str, Any]) -> None:
    rec = _ok(runs["03"])
    # vLLM's NIXL handshake is lazy: the notebook sent one completion and a concurrent batch through the cross-node
    # graph's own port-forward before it read the workers' logs (all reached the stand-in)
    assert rec["warmup_requests"] == 1 + WARMUP_BATCH and rec["warmup_ok"] == rec["warmup_requests"]
    assert runs["served"]["03"] >= rec["warmup_requests"]
    assert _forwarded_pods(runs, "vllm-xnode-libfabric")
    assert rec["decode_handshakes"] == 1 and rec["decode_backend"] == "LIBFABRIC"
    assert rec["oomkilled_pods"] == 0
    # The served excerpts: the decode side (fixture 20) proves efa with one handshake, the prefill side (fixture 01)
    # never names a provider or a handshake. Combined that reads efa-rdma, but the side-by-side check must fail.
    assert (rec["prefill_handshakes"], rec["prefill_provider"], rec["decode_provider"]) == (0, None, "efa")
    # the notebook reports the diagnosis's combined verdict of the two served logs as it is
    fx = shared_path("fixtures") / "logs"
    combined = diagnose_files([fx / LOGS["PrefillWorker"], fx / LOGS["DecodeWorker"]]).combined.verdict
    assert rec["verdict_kv_transfer"] == combined
    assert rec["verdict_cross_node"] == "FAIL"
    assert rec["p5_registered_mib"] == 1056.0


def _dgd_writes(runs: dict[str, Any]) -> list[tuple[str, str]]:
    """(PATCH or DELETE, DGD name) of every apply/delete of a cross-node graph the mock saw, in order."""
    return [(r.method, r.path.split("/")[-1]) for r in runs["cluster"].requests
            if r.method in ("PATCH", "DELETE") and "/dynamographdeployments/" in r.path and "-xnode-" in r.path]


def test_04_deploys_one_graph_at_a_time(runs: dict[str, Any]) -> None:
    rec = _ok(runs["04"])
    ucx, lf = "vllm-xnode-ucx", "vllm-xnode-libfabric"
    # Notebook 03 left the LIBFABRIC graph Ready; both workers of each graph ask for all 32 EFA devices of a node,
    # so 04 sweeps UCX first by deleting LIBFABRIC, then swaps back, and ends as 03 left the cluster.
    assert rec["graphs_plan"] == [f"delete {lf}", f"apply {ucx}", f"sweep {ucx}", f"delete {ucx}", f"apply {lf}",
                                  f"sweep {lf}"]
    assert rec["graphs_applied"] == [ucx, lf] and rec["graphs_deleted"] == [lf, ucx]
    assert rec["graphs_left"] == {ucx: "absent", lf: "Ready"}
    writes = [w for w in _dgd_writes(runs) if w != ("PATCH", lf)][-3:]  # 03's apply of lf comes before
    assert writes == [("DELETE", lf), ("PATCH", ucx), ("DELETE", ucx)]
    assert _dgd_writes(runs)[-1] == ("PATCH", lf)
    cl = runs["cluster"]
    assert cl.get("dynamographdeployments", "dynamo-workshop", ucx) is None
    assert cl.get("dynamographdeployments", "dynamo-workshop", lf) is not None
    assert not [p for p in cl.list("pods", "dynamo-workshop") if p["metadata"]["name"].startswith(f"{ucx}-")]


def test_04_performance(runs: dict[str, Any]) -> None:
    rec = _ok(runs["04"])
    assert rec["serving_levels"] == 4 and rec["serving_errors"] == 0
    # Both deployments were swept through their own port-forward (two local ports, one per frontend Service).
    graphs = {"UCX": "vllm-xnode-ucx", "LIBFABRIC": "vllm-xnode-libfabric"}
    assert set(rec["port_forwards"]) == {f"{g}-frontend" for g in graphs.values()}
    assert sorted(rec["serving_urls"].values()) == sorted(rec["port_forwards"].values())
    assert len(set(rec["serving_urls"].values())) == 2
    assert all(_local_forward(u, runs["stand_in_port"]) for u in rec["serving_urls"].values())
    assert all(len(_forwarded_pods(runs, g)) >= 1 for g in graphs.values())
    assert runs["served"]["04"] >= 2 * 2 * SWEEP["REQUESTS"]  # every request of both sweeps reached the stand-in
    assert rec["nixlbench_libfabric_phase"] == "Succeeded"
    assert rec["transfer_rows"] > 0 and rec["transfer_backends"] == ["LIBFABRIC", "UCX"]  # as each pair's log says
    # Labels from evidence: EFA only where the log names the efa provider (the LIBFABRIC pair's), else not confirmed.
    assert rec["transfer_transports"] == ["EFA", "transport not confirmed"]
    checks = {c["check"]: c for c in rec["checks_performance"]}
    assert checks["LIBFABRIC: transport (from the logs)"]["found"] == "EFA"
    assert checks["UCX: transport (from the logs)"]["found"] == "transport not confirmed"
