"""Named cluster scenarios for the mock API server: two p5.48xlarge GPU nodes and what can go wrong with them.

``build(name)`` returns a fresh :class:`~tests.support.mock_k8s.MockCluster`. ``healthy`` is a cluster ready for the
workshop (EFA device plugin and GDRCopy on both GPU nodes, same AZ, Dynamo 0.9.0 CRDs and platform pods, HF secret).
Every other scenario changes one thing. Scenarios with an operator (all of them) react to an applied
DynamoGraphDeployment like the Dynamo operator: pods per service appear, go Ready (or fail the way the scenario
says), and the DGD's Ready condition follows.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from typing import Any

from tests.support import k8s_objects as k
from tests.support.k8s_model import MockCluster

WORKSHOP_NS = "dynamo-workshop"
PLATFORM_NS = "dynamo-system"
GPU_NODES = ("gpu-node-1", "gpu-node-2")
EFA_DS = "aws-efa-k8s-device-plugin-daemonset"
GDRCOPY_DS = "gdrcopy-installer"
CRDS = [
    ("dynamographdeployments", "DynamoGraphDeployment", ["dgd"]),
    ("dynamocomponentdeployments", "DynamoComponentDeployment", ["dcd"]),
    ("dynamographdeploymentrequests", "DynamoGraphDeploymentRequest", ["dgdr"]),
    ("dynamomodels", "DynamoModel", []),
]
OPERATOR_POD = "dynamo-platform-dynamo-operator-controller-manager-6d8f9c7b5-x2k9q"
READY_AFTER_S = 0.3


def _b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def base(*, efa: tuple[int | None, int | None] = (32, 32), zones: tuple[str, str] = ("us-east-2a", "us-east-2a"),
         instance: str = "p5.48xlarge", hugepages: str = "5120Mi", efa_ds: tuple[int, int] | None = (2, 2),
         gdr_ds: tuple[int, int] | None = (2, 2), crd_version: str | None = "0.9.0", platform: bool = True,
         hf_keys: dict[str, str] | None = None, failures: dict[str, str] | None = None) -> MockCluster:
    """A cluster with the given knobs (defaults: the healthy one)."""
    c = MockCluster()
    for ns in ("default", "kube-system", PLATFORM_NS, WORKSHOP_NS):
        c.put(k.namespace(ns))
    c.put(k.node("ip-10-0-0-5.us-east-2.compute.internal", "m5.2xlarge", zones[0], gpus=0, efa=None, hugepages="0"))
    for i, name in enumerate(GPU_NODES):
        n = k.node(name, instance, zones[i], efa=efa[i], hugepages=hugepages)
        if efa[i] is None:
            n["status"]["capacity"].pop("vpc.amazonaws.com/efa", None)
        c.put(n)
    c.put(k.daemonset("nvidia-device-plugin-daemonset", "kube-system", 2, 2, "nvcr.io/nvidia/k8s-device-plugin:v0.17.0"))
    if efa_ds:
        c.put(k.daemonset(EFA_DS, "kube-system", *efa_ds, "602401143452.dkr.ecr.us-west-2.amazonaws.com/eks/aws-efa-k8s-device-plugin:v0.5.6"))
    if gdr_ds:
        c.put(k.daemonset(GDRCOPY_DS, "kube-system", *gdr_ds))
    if crd_version:
        for plural, kind, short in CRDS:
            c.put(k.crd(plural, kind, chart_version=crd_version, short_names=short))
    if platform:
        op = "nvcr.io/nvidia/ai-dynamo/kubernetes-operator:0.9.0"
        c.put(k.pod(OPERATOR_POD, PLATFORM_NS, ["manager", "kube-rbac-proxy"], image=op,
                    labels={"app.kubernetes.io/name": "dynamo-operator", "control-plane": "controller-manager"}))
        c.put(k.pod("dynamo-platform-etcd-0", PLATFORM_NS, ["etcd"], image="docker.io/bitnamilegacy/etcd:3.5.18-debian-12-r5",
                    labels={"app.kubernetes.io/name": "etcd"}))
        c.put(k.pod("dynamo-platform-nats-0", PLATFORM_NS, ["nats", "reloader"], image="nats:2.10.21-alpine",
                    labels={"app.kubernetes.io/name": "nats"}))
    if hf_keys is None:
        hf_keys = {"HF_TOKEN": _b64("hf_not_a_real_token_000000")}
    if hf_keys:
        c.put(k.secret("hf-token-secret", WORKSHOP_NS, hf_keys))
    c.hooks.append(operator(failures or {}))
    return c


# ---------------------------------------------------------------------------- a simulated Dynamo operator
def _pod_name(dgd: str, svc: str) -> str:
    return f"{dgd}-{svc.lower()}-{hashlib.sha1(f'{dgd}/{svc}'.encode()).hexdigest()[:5]}"


def _set_ready(c: MockCluster, ns: str, name: str) -> None:
    p = c.get("pods", ns, name)
    if p is None:
        return
    img = p["spec"]["containers"][0]["image"]
    p["status"]["containerStatuses"] = [k.container_status(x["name"], img, True) for x in p["spec"]["containers"]]
    for cond in p["status"]["conditions"]:
        cond["status"] = "True"
    c.put(p)


def _fail(c: MockCluster, ns: str, name: str, mode: str) -> None:
    """Make pod ``name`` fail the way ``mode`` says, with the events a kubelet/scheduler would emit."""
    p = c.get("pods", ns, name)
    if p is None:
        return
    img = p["spec"]["containers"][0]["image"]
    cname = p["spec"]["containers"][0]["name"]
    st = p["status"]
    if mode == "imagepull":
        msg = f'Back-off pulling image "{img}"'
        st["containerStatuses"] = [k.container_status(cname, img, False, {"waiting": {"reason": "ImagePullBackOff", "message": msg}})]
        c.put(k.event(ns, "Pod", name, "Failed", f'Failed to pull image "{img}": rpc error: code = NotFound desc = failed to resolve reference "{img}": not found'))
        c.put(p)
    elif mode.startswith("pending-"):
        what = {"pending-efa": "vpc.amazonaws.com/efa", "pending-hugepages": "hugepages-2Mi", "pending-memory": "memory"}[mode]
        p["spec"].pop("nodeName", None)
        st.update({"phase": "Pending", "containerStatuses": [], "podIP": None, "hostIP": None})
        msg = f"0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 2 Insufficient {what}. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod."
        st["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": msg, "lastTransitionTime": k.now_iso()}]
        c.put(p)
        c.put(k.event(ns, "Pod", name, "FailedScheduling", msg))
    elif mode in ("oom", "crashloop"):
        reason, code = ("OOMKilled", 137) if mode == "oom" else ("Error", 1)
        last = k.terminated(reason, code)
        msg = f"back-off 10s restarting failed container={cname} pod={name}_{ns}"
        st["containerStatuses"] = [k.container_status(cname, img, False, {"waiting": {"reason": "CrashLoopBackOff", "message": msg}},
                                                      restarts=2, last_state=last)]
        c.set_log(ns, name, "I0101 00:00:01.000000 1 libfabric_backend.cpp:120] Discovered 32 EFA devices\n", cname, previous=True)
        c.put(p)
        c.put(k.event(ns, "Pod", name, "BackOff", f"Back-off restarting failed container {cname} in pod {name}_{ns}({p['metadata']['uid']})"))


def operator(failures: dict[str, str], ready_after_s: float = READY_AFTER_S) -> Callable[[MockCluster, dict[str, Any]], None]:
    """A hook that plays the Dynamo operator for applied DGDs; ``failures`` maps a service name to a failure mode."""

    def on_apply(c: MockCluster, obj: dict[str, Any]) -> None:
        if obj["kind"] != "DynamoGraphDeployment":
            return
        ns, dgd = obj["metadata"]["namespace"], obj["metadata"]["name"]
        services: dict[str, Any] = (obj.get("spec") or {}).get("services") or {}
        owner = [{"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": dgd, "uid": obj["metadata"]["uid"],
                  "controller": True, "blockOwnerDeletion": True}]
        pods = []
        for i, (svc, spec) in enumerate(services.items()):
            spec = spec or {}
            ctype = spec.get("componentType", "frontend" if svc.lower() == "frontend" else "worker")
            image = (((spec.get("extraPodSpec") or {}).get("mainContainer") or {}).get("image")
                     or "nvcr.io/nvidia/ai-dynamo/vllm-runtime:0.9.0")
            mem = ((spec.get("resources") or {}).get("limits") or {}).get("memory")
            labels = {"nvidia.com/dynamo-graph-deployment-name": dgd, "nvidia.com/dynamo-component": svc,
                      "nvidia.com/dynamo-component-type": ctype, "nvidia.com/dynamo-namespace": spec.get("dynamoNamespace", ns)}
            for r in range(int(spec.get("replicas", 1))):
                name = _pod_name(dgd, svc) + (f"-{r}" if r else "")
                if c.get("pods", ns, name) is None:
                    p = k.pod(name, ns, ["main"], ready=False, image=image, labels=labels,
                              node_name=GPU_NODES[i % 2], memory_limit=mem)
                    p["metadata"]["ownerReferences"] = owner
                    c.put(p)
                pods.append((name, svc))
            if ctype == "frontend":
                c.put({"apiVersion": "v1", "kind": "Service",
                       "metadata": {"name": f"{dgd}-{svc.lower()}", "namespace": ns, "labels": labels,
                                    "ownerReferences": owner},
                       "spec": {"selector": labels, "ports": [{"name": "http", "port": 8000, "targetPort": 8000, "protocol": "TCP"}],
                                "type": "ClusterIP", "clusterIP": "172.20.0.10"}})
        obj.setdefault("status", k.dgd_status(False))
        c.put(obj)

        def progress(cl: MockCluster) -> None:
            failed = False
            for name, svc in pods:
                if svc in failures:
                    _fail(cl, ns, name, failures[svc])
                    failed = True
                else:
                    _set_ready(cl, ns, name)
            cur = cl.get("dynamographdeployments", ns, dgd)
            if cur is not None and not failed:
                cur["status"] = k.dgd_status(True)
                cl.put(cur)

        c.later(ready_after_s, progress)

    return on_apply


def serve_component_logs(c: MockCluster, component: str, text: str) -> None:
    """Serve ``text`` as the log of every pod (now or later) labelled ``nvidia.com/dynamo-component=<component>``."""
    c.component_logs[component] = text


def forbid(verbs: set[tuple[str, str]]) -> MockCluster:
    """The healthy cluster for a user whose RBAC refuses the given ``(verb, plural)`` pairs (``"*"``: every kind)."""
    c = base()
    c.forbidden |= verbs
    return c


CONFLICT_MANAGER = "kubectl-client-side-apply"


def owned_elsewhere(name: str = "vllm-disagg-ucx", replicas: int = 2) -> MockCluster:
    """The healthy cluster where another field manager already owns the single-node DGD's Frontend replicas (so the
    workshop's server-side apply of that DGD meets a 409 FieldManagerConflict, as after a ``kubectl apply``)."""
    c = base()
    dgd = {"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeployment",
           "metadata": {"name": name, "namespace": WORKSHOP_NS},
           "spec": {"services": {"Frontend": {"componentType": "frontend", "replicas": replicas}}}}
    c.apply(c.resource_for("nvidia.com/v1alpha1", "DynamoGraphDeployment"), WORKSHOP_NS, name, dgd,
            CONFLICT_MANAGER, False)
    return c


SCENARIOS: dict[str, tuple[str, Callable[[], MockCluster]]] = {
    "healthy": ("2 x p5.48xlarge in one AZ, EFA plugin + GDRCopy ready, CRDs/platform 0.9.0, HF secret", lambda: base()),
    "no-efa": ("gpu-node-2 advertises no vpc.amazonaws.com/efa", lambda: base(efa=(32, None))),
    "efa-short": ("gpu-node-2 advertises 16 of 32 EFA devices", lambda: base(efa=(32, 16))),
    "split-az": ("the two GPU nodes are in different AZs", lambda: base(zones=("us-east-2a", "us-east-2b"))),
    "no-gdrcopy": ("no GDRCopy installer DaemonSet", lambda: base(gdr_ds=None)),
    "gdrcopy-partial": ("GDRCopy DaemonSet ready on 1 of 2 nodes", lambda: base(gdr_ds=(2, 1))),
    "no-efa-plugin": ("no EFA device plugin, so no EFA allocatable", lambda: base(efa_ds=None, efa=(None, None))),
    "no-hugepages": ("no 2Mi hugepages on the GPU nodes", lambda: base(hugepages="0")),
    "token-key": ("hf-token-secret has key 'token' (the 401 trap)", lambda: base(hf_keys={"token": _b64("hf_not_a_real_token_000000")})),
    "no-secret": ("no hf-token-secret", lambda: base(hf_keys={})),
    "crds-old": ("Dynamo CRDs from chart 0.7.1", lambda: base(crd_version="0.7.1")),
    "empty": ("GPU nodes only: no CRDs, no platform, no secret", lambda: base(crd_version=None, platform=False, hf_keys={})),
    "p5en": ("2 x p5en.48xlarge (16 EFA each)", lambda: base(instance="p5en.48xlarge", efa=(16, 16))),
    "oom": ("the decode worker is OOMKilled (exit 137) and crash-loops", lambda: base(failures={"VllmDecodeWorker": "oom", "decode": "oom"})),
    "imagepull": ("the frontend image cannot be pulled", lambda: base(failures={"Frontend": "imagepull", "frontend": "imagepull"})),
    "forbid-list-nodes": ("RBAC: the user may not list nodes (403)", lambda: forbid({("list", "nodes")})),
    "forbid-apply": ("RBAC: a read-only user, every server-side apply (patch) is forbidden (403)",
                     lambda: forbid({("patch", "*")})),
    "forbid-delete": ("RBAC: the user may not delete anything (403)", lambda: forbid({("delete", "*")})),
    "apply-conflict": (f"the single-node DGD's Frontend replicas are owned by {CONFLICT_MANAGER!r} (409 on apply)",
                       lambda: owned_elsewhere()),
    "pending-efa": ("the decode worker stays Pending: Insufficient vpc.amazonaws.com/efa",
                    lambda: base(failures={"VllmDecodeWorker": "pending-efa", "decode": "pending-efa"})),
}


def build(name: str) -> MockCluster:
    """A fresh cluster for scenario ``name`` (see :data:`SCENARIOS`)."""
    return SCENARIOS[name][1]()
