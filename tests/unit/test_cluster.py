# ruff: noqa: F811  (pytest fixtures imported from tests.support.k8s_fixtures)
"""workshop_lib.cluster against the mock API server (real HTTP on 127.0.0.1)."""

from __future__ import annotations

import http.server
import socket
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support import k8s_objects as k
from tests.support.k8s_fixtures import mock_api, serve_scenario  # noqa: F401
from tests.support.mock_k8s import MockApiServer
from tests.support.scenarios import WORKSHOP_NS, base, build, serve_component_logs
from workshop_lib.cluster import (
    Cluster,
    apply_all,
    component_logs,
    event_problem,
    follow_log,
    pod_problems,
    port_forward,
    sort_for_apply,
    sort_for_delete,
    teardown,
    wait_for_dgd,
    wait_for_pods,
)
from workshop_lib.errors import ClusterError, ClusterTimeout

DGD_NAME = "vllm-disagg"


def dgd_manifest(decode_memory: str = "128Gi") -> dict:
    return {
        "apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeployment",
        "metadata": {"name": DGD_NAME, "namespace": WORKSHOP_NS},
        "spec": {"backendFramework": "vllm", "services": {
            "Frontend": {"componentType": "frontend", "replicas": 1},
            "VllmPrefillWorker": {"componentType": "worker", "resources": {"limits": {"memory": "128Gi"}}},
            "VllmDecodeWorker": {"componentType": "worker", "resources": {"limits": {"memory": decode_memory}}},
        }},
    }


def configmap(name: str, data: dict[str, str] | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": WORKSHOP_NS},
            "data": data or {"a": "1"}}


# ------------------------------------------------------------------------------------------- connect and errors
def test_connect_reads_version_and_context(mock_api) -> None:
    assert mock_api.cluster.version() == "v1.31.4-eks-2d5f260"
    assert mock_api.cluster.context == "mock"
    assert any(r.path == "/version/" for r in mock_api.mock.requests)


def test_typed_client_accepts_mock_objects(mock_api) -> None:
    """The mock's objects are complete enough for the kubernetes client's typed models."""
    from kubernetes import client

    v1 = client.CoreV1Api(mock_api.cluster.api_client)
    nodes = v1.list_node().items
    assert {n.status.node_info.architecture for n in nodes} == {"amd64"}
    pods = v1.list_namespaced_pod("dynamo-system").items
    assert sorted(len(p.status.container_statuses) for p in pods) == [1, 2, 2]
    ds = client.AppsV1Api(mock_api.cluster.api_client).list_daemon_set_for_all_namespaces().items
    assert all(d.spec.template.spec.containers for d in ds)
    assert client.VersionApi(mock_api.cluster.api_client).get_code().go_version == "go1.22.10"


def test_connect_missing_kubeconfig(tmp_path: Path) -> None:
    with pytest.raises(ClusterError, match="file not found.*update-kubeconfig"):
        Cluster.connect(tmp_path / "nope")


def test_connect_unknown_context_lists_contexts(mock_api) -> None:
    with pytest.raises(ClusterError, match="no usable kubeconfig context.*use one of the contexts: mock"):
        Cluster.connect(mock_api.kubeconfig, context="prod")


def test_connect_unreachable_is_one_line(tmp_path: Path) -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    srv = MockApiServer(build("healthy"), port=0)
    kc = tmp_path / "kc"
    import yaml

    from tests.support.mock_k8s import write_kubeconfig_dict

    kc.write_text(yaml.safe_dump(write_kubeconfig_dict(f"http://127.0.0.1:{port}")))
    srv._httpd.server_close()
    t = time.monotonic()
    with pytest.raises(ClusterError) as ei:
        Cluster.connect(kc)
    assert time.monotonic() - t < 5
    msg = str(ei.value)
    assert "\n" not in msg and "unreachable" in msg and "Connection refused" in msg and "kubectl --context mock" in msg


def test_401_names_context_and_refresh(mock_api) -> None:
    mock_api.mock.token = "rotated"
    with pytest.raises(ClusterError, match=r"401 Unauthorized.*aws eks update-kubeconfig"):
        Cluster.connect(mock_api.kubeconfig)


def test_403_names_verb_resource_and_fix(mock_api) -> None:
    mock_api.mock.forbidden.add(("list", "nodes"))
    with pytest.raises(ClusterError) as ei:
        mock_api.cluster.list("v1", "Node")
    msg = str(ei.value)
    assert 'list nodes is forbidden for context \'mock\'' in msg
    assert 'cannot list resource "nodes"' in msg
    assert "ask your admin for RBAC permission to list nodes" in msg and "kubectl config get-contexts" in msg


def test_404_get_none_delete_false_and_missing_crd() -> None:
    with serve_scenario("empty") as s:
        assert s.cluster.get("v1", "ConfigMap", "nope", WORKSHOP_NS) is None
        assert s.cluster.delete("v1", "ConfigMap", "nope", WORKSHOP_NS) is False
        with pytest.raises(ClusterError, match="DynamoGraphDeployment: this kind is not served.*workshop platform install"):
            s.cluster.apply(dgd_manifest())


def test_409_conflict_then_force(mock_api) -> None:
    mock_api.cluster.apply(configmap("shared", {"a": "1"}), field_manager="kubectl-client-side-apply")
    with pytest.raises(ClusterError) as ei:
        mock_api.cluster.apply(configmap("shared", {"a": "2"}))
    msg = str(ei.value)
    assert msg.startswith("ConfigMap dynamo-workshop/shared: server-side apply conflicts")
    assert 'conflict with "kubectl-client-side-apply": .data.a' in msg and "--force-conflicts" in msg
    out = mock_api.cluster.apply(configmap("shared", {"a": "2"}), force_conflicts=True)
    assert out["data"] == {"a": "2"}


def test_request_timeout_is_cluster_error(tmp_path: Path) -> None:
    lsock = socket.create_server(("127.0.0.1", 0))  # accepts, never answers
    import yaml

    from tests.support.mock_k8s import write_kubeconfig_dict

    kc = tmp_path / "kc"
    kc.write_text(yaml.safe_dump(write_kubeconfig_dict(f"http://127.0.0.1:{lsock.getsockname()[1]}")))
    try:
        t = time.monotonic()
        with pytest.raises(ClusterError, match="did not answer within 1 s"):
            Cluster.connect(kc, timeout_s=1)
        assert time.monotonic() - t < 5
    finally:
        lsock.close()


# ------------------------------------------------------------------------------------------- apply order
def test_sort_order_is_dependency_order() -> None:
    kinds = ["DynamoGraphDeployment", "Service", "Secret", "Namespace", "CustomResourceDefinition", "ConfigMap", "Job"]
    objs = [{"kind": x} for x in kinds]
    assert [o["kind"] for o in sort_for_apply(objs)] == [
        "CustomResourceDefinition", "Namespace", "Secret", "ConfigMap", "Service", "Job", "DynamoGraphDeployment"]
    assert [o["kind"] for o in sort_for_delete(objs)][0] == "DynamoGraphDeployment"
    assert [o["kind"] for o in sort_for_delete(objs)][-1] == "CustomResourceDefinition"


def test_apply_all_server_side_in_order(mock_api) -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": WORKSHOP_NS},
              "stringData": {"HF_TOKEN": "x"}}
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": WORKSHOP_NS}}
    stored = apply_all(mock_api.cluster, [dgd_manifest(), configmap("c"), secret, ns], progress=False)
    assert [o["kind"] for o in stored] == ["Namespace", "Secret", "ConfigMap", "DynamoGraphDeployment"]
    patches = [r for r in mock_api.mock.requests if r.method == "PATCH"]
    assert [p.path.rsplit("/", 2)[-2] for p in patches] == ["namespaces", "secrets", "configmaps", "dynamographdeployments"]
    assert {p.content_type for p in patches} == {"application/apply-patch+yaml"}
    assert {p.query["fieldManager"] for p in patches} == {"workshop"}
    assert all(o["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "workshop" for o in stored)
    # Idempotent: a second apply by the same manager is no conflict and no new generation.
    again = mock_api.cluster.apply(configmap("c"))
    assert again["metadata"]["generation"] == stored[2]["metadata"]["generation"]


# ------------------------------------------------------------------------------------------- waits
def test_wait_for_dgd_uses_watches_not_polling(mock_api) -> None:
    apply_all(mock_api.cluster, [dgd_manifest()], progress=False)
    t = time.monotonic()
    st = wait_for_dgd(mock_api.cluster, DGD_NAME, WORKSHOP_NS, timeout_s=20, progress=False)
    assert time.monotonic() - t < 10
    assert len(st.pods) == 3 and st.ready_pods() == 3
    assert st.target["status"]["conditions"][0]["reason"] == "AllResourcesAreReady"
    watches = mock_api.mock.watches()
    assert {w.path.rsplit("/", 1)[-1] for w in watches} == {"dynamographdeployments", "pods", "events"}
    assert mock_api.mock.gets("pods") == [] and mock_api.mock.gets("dynamographdeployments") == []


def test_wait_oomkilled_explained_by_128gi_rule() -> None:
    seen = []
    with serve_scenario("oom") as s:
        apply_all(s.cluster, [dgd_manifest(decode_memory="64Gi")], progress=False)
        with pytest.raises(ClusterError) as ei:
            wait_for_dgd(s.cluster, DGD_NAME, WORKSHOP_NS, timeout_s=20, progress=False, on_problem=seen.append)
    msg = str(ei.value)
    assert "vllmdecodeworker" in msg and "OOMKilled" in msg and "exit code 137" in msg
    assert "memory limit 64Gi < 128Gi required for LIBFABRIC" in msg and "set worker_memory to 128Gi" in msg
    assert "OOMKilled" in {p.kind for p in seen}


def test_wait_image_pull_backoff_fails_fast() -> None:
    with serve_scenario("imagepull") as s:
        apply_all(s.cluster, [dgd_manifest()], progress=False)
        with pytest.raises(ClusterError, match=r"ImagePullBackOff: Back-off pulling image.*check the image name"):
            wait_for_dgd(s.cluster, DGD_NAME, WORKSHOP_NS, timeout_s=20, progress=False)


def test_wait_pending_insufficient_efa_surfaces_then_times_out() -> None:
    seen = []
    with serve_scenario("pending-efa") as s:
        apply_all(s.cluster, [dgd_manifest()], progress=False)
        t = time.monotonic()
        with pytest.raises(ClusterTimeout) as ei:
            wait_for_dgd(s.cluster, DGD_NAME, WORKSHOP_NS, timeout_s=2, progress=False, on_problem=seen.append)
        assert time.monotonic() - t < 6
    kinds = {p.kind for p in seen}
    assert kinds == {"Insufficient vpc.amazonaws.com/efa"}
    assert "EFA device plugin" in seen[0].fix
    assert "not ready after 2 s" in str(ei.value) and "vllmdecodeworker" in str(ei.value)


def test_wait_for_pods_platform(mock_api) -> None:
    st = wait_for_pods(mock_api.cluster, "dynamo-system", names=["dynamo-platform-etcd-0", "dynamo-platform-nats-0"],
                       timeout_s=5, progress=False)
    assert st.ready_pods() == 3


# ------------------------------------------------------------------------------------------- diagnose (pure)
def test_pod_problems_pending_hugepages_event() -> None:
    ev = k.event("ns", "Pod", "p", "FailedScheduling",
                 "0/3 nodes are available: 2 Insufficient hugepages-2Mi, 1 node(s) had untolerated taint.")
    p = event_problem(ev)
    assert p is not None and p.kind == "Insufficient hugepages-2Mi" and "vm.nr_hugepages" in p.fix
    assert event_problem(k.event("ns", "Pod", "p", "Scheduled", "assigned", "Normal")) is None


def test_pod_problems_crashloop_without_oom() -> None:
    cs = k.container_status("main", "img:1", False, {"waiting": {"reason": "CrashLoopBackOff"}}, restarts=4,
                            last_state=k.terminated("Error", 1))
    probs = pod_problems(k.pod("w", "ns", statuses=[cs]))
    assert [(p.kind, p.fatal) for p in probs] == [("CrashLoopBackOff", True)]
    assert "restarted 4 times; last exit code 1" in probs[0].message and "--previous" in probs[0].fix


# ------------------------------------------------------------------------------------------- logs
def test_component_logs_serve_fixture_lines(fixtures_dir: Path) -> None:
    log = fixtures_dir / "logs" / "14-nixl-example-libfabric-pass-vs-default-ucx.log"
    text = log.read_text()
    cluster = build("healthy")
    serve_component_logs(cluster, "VllmDecodeWorker", text)
    with serve_scenario(cluster=cluster) as s:
        apply_all(s.cluster, [dgd_manifest()], progress=False)
        wait_for_dgd(s.cluster, DGD_NAME, WORKSHOP_NS, timeout_s=20, progress=False)
        logs = component_logs(s.cluster, WORKSHOP_NS, "VllmDecodeWorker", dgd=DGD_NAME, since_s=600)
        (pod, lines), = logs.items()
        assert pod.startswith("vllm-disagg-vllmdecodeworker-") and lines == text.splitlines()
        from workshop_lib.logs import parse_lines

        events = parse_lines(lines, source=pod).events
        assert events["backend"].dropna().tolist() == ["LIBFABRIC", "UCX"]
        req = [r for r in s.mock.requests if r.path.endswith("/log")][-1]
        assert req.query == {"container": "main", "sinceSeconds": "600"}
        followed = list(follow_log(s.cluster, WORKSHOP_NS, pod, tail_lines=3, timeout_s=10))
        assert followed == text.splitlines()[-3:]
        with pytest.raises(ClusterError, match="no pod has label nvidia.com/dynamo-component=Nope"):
            component_logs(s.cluster, WORKSHOP_NS, "Nope")


def test_previous_container_log_after_oom() -> None:
    with serve_scenario("oom") as s:
        apply_all(s.cluster, [dgd_manifest(decode_memory="64Gi")], progress=False)
        with pytest.raises(ClusterError):
            wait_for_dgd(s.cluster, DGD_NAME, WORKSHOP_NS, timeout_s=20, progress=False)
        logs = component_logs(s.cluster, WORKSHOP_NS, "VllmDecodeWorker", previous=True)
        assert list(logs.values()) == [["I0101 00:00:01.000000 1 libfabric_backend.cpp:120] Discovered 32 EFA devices"]]
        with pytest.raises(ClusterError, match=r"waiting to start: ContainerCreating \(400 Bad Request\).*previous=True"):
            component_logs(s.cluster, WORKSHOP_NS, "VllmDecodeWorker")


# ------------------------------------------------------------------------------------------- port-forward
class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        body = b'{"status":"healthy"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a: object) -> None:
        pass


def test_port_forward_to_frontend_service(mock_api) -> None:
    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    calls = []

    def connect(ns: str, pod: str, port: int) -> socket.socket:
        calls.append((ns, pod, port))
        return socket.create_connection(upstream.server_address)

    try:
        apply_all(mock_api.cluster, [dgd_manifest()], progress=False)
        wait_for_dgd(mock_api.cluster, DGD_NAME, WORKSHOP_NS, timeout_s=20, progress=False)
        with port_forward(mock_api.cluster, WORKSHOP_NS, f"{DGD_NAME}-frontend", 8000, connect=connect) as url:
            assert url.startswith("http://127.0.0.1:")
            with urllib.request.urlopen(f"{url}/health", timeout=5) as r:
                assert r.read() == b'{"status":"healthy"}'
        assert calls == [(WORKSHOP_NS, calls[0][1], 8000)] and calls[0][1].startswith("vllm-disagg-frontend-")
        with pytest.raises(ClusterError, match="Service dynamo-workshop/nope: not found"):
            with port_forward(mock_api.cluster, WORKSHOP_NS, "nope", 8000, connect=connect):
                pass
    finally:
        upstream.shutdown()
        upstream.server_close()


def test_port_forward_through_the_api_server_websocket(mock_api) -> None:
    """The default connector: kubernetes.stream.portforward over the pods/portforward WebSocket subresource."""
    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    mock_api.mock.forward_to[8000] = upstream.server_address
    try:
        apply_all(mock_api.cluster, [dgd_manifest()], progress=False)
        wait_for_dgd(mock_api.cluster, DGD_NAME, WORKSHOP_NS, timeout_s=20, progress=False)
        with port_forward(mock_api.cluster, WORKSHOP_NS, f"{DGD_NAME}-frontend", 8000) as url:
            for _ in range(2):  # one WebSocket stream per local connection
                with urllib.request.urlopen(f"{url}/health", timeout=5) as r:
                    assert r.read() == b'{"status":"healthy"}'
        pf = [r for r in mock_api.mock.requests if r.path.endswith("/portforward")]
        assert len(pf) == 2 and pf[0].query == {"ports": "8000"}
        assert "/pods/vllm-disagg-frontend-" in pf[0].path
    finally:
        upstream.shutdown()
        upstream.server_close()


# ------------------------------------------------------------------------------------------- teardown
def test_teardown_deletes_only_labelled_and_is_idempotent() -> None:
    c = base()
    c.put(k.secret("someone-elses", WORKSHOP_NS, {"k": "dg=="}))
    c.put(configmap("keep-me"))
    with serve_scenario(cluster=c) as s:
        apply_all(s.cluster, [configmap("ours"), dgd_manifest()], progress=False)
        assert teardown(s.cluster, WORKSHOP_NS, dry_run=True) == [
            f"DynamoGraphDeployment {WORKSHOP_NS}/{DGD_NAME}", f"ConfigMap {WORKSHOP_NS}/ours"]
        deleted = teardown(s.cluster, WORKSHOP_NS)
        assert deleted == [f"DynamoGraphDeployment {WORKSHOP_NS}/{DGD_NAME}", f"ConfigMap {WORKSHOP_NS}/ours"]
        assert teardown(s.cluster, WORKSHOP_NS) == []
        assert s.mock.list("pods", WORKSHOP_NS) == []  # the operator's pods went with their DGD (ownerReferences)
        assert s.mock.get("configmaps", WORKSHOP_NS, "keep-me") is not None
        assert s.mock.get("secrets", WORKSHOP_NS, "someone-elses") is not None
        assert s.mock.get("secrets", WORKSHOP_NS, "hf-token-secret") is not None
        assert s.mock.get("namespaces", "", WORKSHOP_NS) is not None  # not created by the workshop


def test_teardown_deletes_workshop_namespace_last() -> None:
    c = base(hf_keys={})
    c.delete("namespaces", "", WORKSHOP_NS)
    with serve_scenario(cluster=c) as s:
        apply_all(s.cluster, [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": WORKSHOP_NS}},
                              configmap("ours")], progress=False)
        assert teardown(s.cluster, WORKSHOP_NS) == [f"ConfigMap {WORKSHOP_NS}/ours", f"Namespace {WORKSHOP_NS}"]
        assert s.mock.get("namespaces", "", WORKSHOP_NS) is None
