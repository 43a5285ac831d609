"""The four notebooks executed with papermill on TARGET=eks against the mock Kubernetes API server.

Every eks cell runs: Helm through a recording fake ``helm`` on PATH, server-side apply and watches against the mock
(which plays the Dynamo operator), pod logs served from the real public excerpts in ``../shared/fixtures``, and the
completion and serving sweep against a local stand-in server with known timing (the mock has no port-forward).
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
from workshop_lib.runner import NOTEBOOK_DIR, NotebookRun, run_one

pytestmark = [pytest.mark.notebook, pytest.mark.slow]

FAKE_TOKEN = "hf_fake_eks_token_for_tests_987654"
LOGS = {  # Dynamo component -> fixture served as that component's pod log
    "PrefillWorker": "01-nixl-libfabric-activation-plugin-load.log",
    "DecodeWorker": "20-doc-expected-efa-handshake-and-backend-lines.log",
    "Frontend": "21-dynamo-disagg-completions-cross-node.log",
}
NIXLBENCH = "nixlbench-libfabric-efa-pod-a.log"


def _fake_helm(bin_dir: Path, record: Path) -> None:
    helm = bin_dir / "helm"
    helm.write_text(f'#!/bin/sh\necho "$@" >> {record}\nexit 0\n')
    helm.chmod(helm.stat().st_mode | stat.S_IEXEC)


def _nixlbench_hook(text: str):  # noqa: ANN202 - a MockCluster hook
    """Pods labelled as nixlbench finish (phase Succeeded) shortly after they are applied, with the fixture as log."""

    def on_apply(c: MockCluster, obj: dict[str, Any]) -> None:
        if obj["kind"] != "Pod" or "workshop.nvidia.com/nixlbench" not in (obj["metadata"].get("labels") or {}):
            return
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
    cluster.hooks.append(_nixlbench_hook((fixtures / "nixlbench" / NIXLBENCH).read_text()))
    results: dict[str, NotebookRun] = {}
    with (MockApiServer(cluster) as srv, running_server(ttft_s=0.02, itl_s=0.002, tokens=16) as stand_in,
          pytest.MonkeyPatch.context() as mp):
        mp.setenv("HF_TOKEN", FAKE_TOKEN)
        mp.setenv("KUBECONFIG", str(srv.write_kubeconfig(out / "kubeconfig")))
        mp.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
        mp.setenv("WORKSHOP_WORK_DIR", str(out / "work"))
        common = {"TARGET": "eks", "PREFILL_NODE": GPU_NODES[0], "DECODE_NODE": GPU_NODES[1], "DEPLOY_TIMEOUT_S": 60}
        extra = {
            "02": {"FRONTEND_URL": stand_in.url},
            "04": {"UCX_URL": stand_in.url, "LIBFABRIC_URL": stand_in.url, "CONCURRENCY": "1,2", "REQUESTS": 4,
                   "ISL": 32, "OSL": 8},
        }
        for nb in sorted(NOTEBOOK_DIR.glob("[0-9][0-9]-*.ipynb")):
            sec = nb.stem[:2]
            results[sec] = run_one(nb, out, {**common, **extra.get(sec, {})}, timeout_s=300, html=False)
    results["helm"] = helm_log  # type: ignore[assignment]
    results["cluster"] = cluster  # type: ignore[assignment]
    return results


def _ok(run: NotebookRun) -> dict:
    assert run.status == "ok", run.error
    assert run.output is not None and FAKE_TOKEN not in run.output.read_text()
    return run.records


def test_01_platform_and_secret(runs: dict[str, Any]) -> None:
    rec = _ok(runs["01"])
    calls = runs["helm"].read_text().splitlines()
    assert calls[0].startswith("upgrade --install dynamo-crds oci://") and "--version 0.9.0" in calls[0]
    assert "dynamo-platform" in calls[1] and "controllerManager.manager.image.tag=0.9.0" in calls[1]
    checks = {c["check"]: c for c in rec["checks_setup"]}
    efa = [c for name, c in checks.items() if name.startswith("EFA allocatable on")]
    assert len(efa) == 2 and all(c["found"] == "32" and c["status"] == "PASS" for c in efa)
    assert checks["GDRCopy DaemonSet"]["status"] == "PASS"
    assert rec["verdict_setup"] == "PASS" and rec["preflight_failed"] == []
    secret = runs["cluster"].get("secrets", "dynamo-workshop", "hf-token-secret")
    assert set(secret["data"]) == {"HF_TOKEN"}
    assert rec["cost_usd"] >= 0


def test_02_single_node(runs: dict[str, Any]) -> None:
    rec = _ok(runs["02"])
    assert rec["dgds_ready"] == ["vllm-disagg-libfabric"]
    assert rec["worker_nixl_backend"] == "LIBFABRIC"
    assert rec["completion_tokens"] == 32  # MAX_TOKENS
    assert rec["prefill_router_active"] is False  # the served frontend excerpt has no router line: reported, not faked


def test_03_cross_node(runs: dict[str, Any]) -> None:
    rec = _ok(runs["03"])
    assert rec["decode_handshakes"] == 1 and rec["decode_backend"] == "LIBFABRIC"
    assert rec["oomkilled_pods"] == 0
    assert rec["verdict_kv_transfer"] in ("efa-rdma", "tcp-fallback", "error", "ucx", "unknown")
    assert rec["p5_registered_mib"] == 1056.0


def test_04_performance(runs: dict[str, Any]) -> None:
    rec = _ok(runs["04"])
    assert rec["serving_levels"] == 4 and rec["serving_errors"] == 0
    assert rec["nixlbench_libfabric_phase"] == "Succeeded"
    assert rec["transfer_rows"] > 0 and rec["transfer_backends"] == ["LIBFABRIC", "UCX"]
