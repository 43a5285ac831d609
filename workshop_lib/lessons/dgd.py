"""Show the thing: the rendered DynamoGraphDeployment, part by part, and the commands behind each library call.

The DGD comes from :func:`workshop_lib.manifests.render` (never re-rendered here). :func:`annotate` walks it and
returns one row per part a learner should read (service, component type, the backend flags, resources, envs...),
each with what it does. An env var the pinned stack does not read is said to be a no-op (from
:mod:`workshop_lib.manifests.envaudit`, the one table of those); a part the kit has no explanation for is listed
as such, never dropped.

Example:
    >>> from workshop_lib.config import WorkshopConfig
    >>> view = dgd_view(WorkshopConfig(), "single-node")
    >>> view.name.startswith("vllm-disagg-"), "PrefillWorker" in set(view.parts["service"])
    (True, True)
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workshop_lib.manifests.dgd import DGD_KIND, EFA_RESOURCE

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from workshop_lib.config import WorkshopConfig

PART_COLUMNS = ["service", "part", "value", "what it does"]

# What each worker/frontend flag means (Dynamo 0.9.0 / vLLM 0.14.1 / TRT-LLM 1.3; FACTS "DynamoGraphDeployment").
FLAGS: dict[str, str] = {
    "--is-prefill-worker": "registers this worker as prefill: the frontend's prefill router sends every request here first",
    "--is-decode-worker": "registers this worker as decode: it receives the KV cache from prefill and generates tokens",
    "--disaggregation-mode": "TRT-LLM's role flag (prefill | decode), the same split as vLLM's --is-*-worker",
    "--connector": "'none' stops Dynamo adding its own KV connector, so --kv-transfer-config is used as given",
    "--kv-transfer-config": "vLLM's NixlConnector and the NIXL backend list: the only place vLLM reads the backend",
    "--distributed-executor-backend": "'mp' (multiprocessing) is needed with this connector route for TP=1",
    "--model": "the model the worker loads (downloaded with the HF token from envFromSecret)",
    "--model-path": "the model TRT-LLM loads",
    "--http-port": "the port of the OpenAI-compatible API (/v1/chat/completions, /v1/models, /metrics)",
    "--extra-engine-args": "TRT-LLM's engine yaml (cache_transceiver_config.backend: NIXL), mounted from a ConfigMap",
    "--tensor-parallel-size": "GPUs one worker spans",
    "--served-model-name": "the model id clients ask for",
    "--enforce-disagg": "the frontend refuses to fall back to decode-only when no prefill worker is registered "
                        "(without it the 0.9.0 frontend silently serves without disaggregation)",
}

ENVS: dict[str, str] = {
    "NIXL_LOG_LEVEL": "NIXL's C++ log level (default WARN); INFO prints the backend, devices and rails the checks read",
    "FI_LOG_LEVEL": "libfabric's log level; info prints the provider (efa vs tcp) and EFA handshakes",
    "VLLM_NIXL_SIDE_CHANNEL_HOST": "where the peer worker reaches this one's NIXL side channel: the pod IP",
    "FI_PROVIDER": "asks libfabric for the efa provider only (no silent tcp provider)",
    "FI_EFA_USE_DEVICE_RDMA": "lets EFA read/write GPU memory directly (GPUDirect RDMA)",
    "FI_EFA_ENABLE_SHM_TRANSFER": "0: no shared-memory path inside the node (it corrupted GPU buffers under load)",
    "TRTLLM_NIXL_KVCACHE_BACKEND": "TRT-LLM's NIXL backend choice (an unknown value falls back to UCX)",
    "DYN_SYSTEM_PORT": "the worker's system/health port; the operator probes 9090, so other ports never turn Ready",
}

TOP_LEVEL: dict[str, str] = {
    "apiVersion": "the CRD's group/version the Dynamo operator watches",
    "kind": "a DynamoGraphDeployment (short name dgd): one graph of services the operator turns into pods",
    "metadata.name": "the graph's name; pods and services are named after it",
    "spec.backendFramework": "the inference engine every worker of this graph runs",
}


def _container(svc: dict[str, Any]) -> dict[str, Any]:
    return (svc.get("extraPodSpec") or {}).get("mainContainer") or {}


def _flag_rows(service: str, args: list[str]) -> list[dict[str, Any]]:
    rows = []
    i = 0
    while i < len(args):
        flag = str(args[i])
        has_value = i + 1 < len(args) and not str(args[i + 1]).startswith("--")
        value = str(args[i + 1]) if has_value else ""
        i += 2 if has_value else 1
        if not flag.startswith("--"):
            continue
        meaning = FLAGS.get(flag, "not explained by the kit: see the engine's --help")
        if flag == "--kv-transfer-config" and value:
            backends = json.loads(value).get("kv_connector_extra_config", {}).get("backends")
            extra = json.loads(value)
            meaning += f" (here: {backends}"
            if "kv_load_failure_policy" in extra:
                meaning += f"; kv_load_failure_policy={extra['kv_load_failure_policy']}: a failed KV load is an "
                meaning += "error, not a silent local recompute" if extra["kv_load_failure_policy"] == "fail" else "policy"
            meaning += ")"
        rows.append({"service": service, "part": f"args {flag}", "value": value, "what it does": meaning})
    return rows


def _env_rows(service: str, envs: list[dict[str, Any]], framework: str | None) -> list[dict[str, Any]]:
    from workshop_lib.manifests.envaudit import unread_env

    rows = []
    for e in envs:
        name = str(e.get("name"))
        value = e.get("value")
        if value is None and "valueFrom" in e:
            ref = e["valueFrom"].get("fieldRef", {}).get("fieldPath")
            value = f"from the pod ({ref})" if ref else json.dumps(e["valueFrom"])
        unread = unread_env({name: str(value)}, framework)
        if unread:
            meaning = f"NO-OP: {unread[0].message()}"
        else:
            meaning = ENVS.get(name, "not explained by the kit")
        rows.append({"service": service, "part": f"env {name}", "value": str(value), "what it does": meaning})
    return rows


def _resource_rows(service: str, svc: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    limits = (svc.get("resources") or {}).get("limits") or {}
    for key in ("cpu", "memory", "gpu"):
        if key in limits:
            meaning = {"cpu": "CPU cores reserved for the worker",
                       "memory": "the pod's memory limit: over it the kernel OOM-kills the worker (exit 137); "
                                 "LIBFABRIC on 32 EFA needs 128Gi (notebook 03)",
                       "gpu": "GPUs per worker (nvidia.com/gpu)"}[key]
            rows.append({"service": service, "part": f"resources.limits.{key}", "value": str(limits[key]),
                         "what it does": meaning})
    for key, value in (limits.get("custom") or {}).items():
        meaning = ("EFA devices given to the pod: NIXL opens one rail per device (memory!), but VRAM is registered "
                   "only on the GPU's own 4 on P5" if key == EFA_RESOURCE else
                   "2 MiB hugepages; the node must pre-allocate them or the pod stays Pending"
                   if key.startswith("hugepages") else "an extended resource")
        rows.append({"service": service, "part": f"resources.limits.custom.{key}", "value": str(value),
                     "what it does": meaning})
    if "sharedMemory" in svc:
        rows.append({"service": service, "part": "sharedMemory.size", "value": str(svc["sharedMemory"].get("size")),
                     "what it does": "/dev/shm of the pod (counts against the memory limit when used)"})
    return rows


def _pod_rows(service: str, svc: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    pod = svc.get("extraPodSpec") or {}
    sec = _container(svc).get("securityContext") or {}
    if sec.get("privileged"):
        rows.append({"service": service, "part": "securityContext.privileged", "value": "true",
                     "what it does": "needed to register GPU memory with EFA (fi_mr_reg); IPC_LOCK alone is not enough"})
    if "affinity" in pod:
        rows.append({"service": service, "part": "affinity", "value": ", ".join(sorted(pod["affinity"])),
                     "what it does": "anti-affinity: prefill and decode on two nodes; affinity: one zone (EFA "
                                     "does not cross availability zones)"})
    sel = pod.get("nodeSelector") or {}
    if sel:
        rows.append({"service": service, "part": "nodeSelector", "value": ", ".join(f"{k}={v}" for k, v in sel.items()),
                     "what it does": "which nodes may run the pod (instance type, or a pinned node)"})
    return rows


def annotate(dgd: dict[str, Any]) -> pd.DataFrame:
    """One row per part of ``dgd`` a learner should read: service, part, value, what it does.

    Raises:
        ValueError: ``dgd`` is not a DynamoGraphDeployment.
    """
    import pandas as pd

    if not isinstance(dgd, dict) or dgd.get("kind") != DGD_KIND:
        raise ValueError(f"annotate() needs a {DGD_KIND} document, got kind {dgd.get('kind') if isinstance(dgd, dict) else type(dgd).__name__!r}")
    framework = (dgd.get("spec") or {}).get("backendFramework")
    rows: list[dict[str, Any]] = []
    for path, meaning in TOP_LEVEL.items():
        node: Any = dgd
        for key in path.split("."):
            node = node.get(key) if isinstance(node, dict) else None
        if node is not None:
            rows.append({"service": "(graph)", "part": path, "value": str(node), "what it does": meaning})
    for name, svc in (dgd.get("spec") or {}).get("services", {}).items():
        ctype = svc.get("componentType", "")
        sub = svc.get("subComponentType")
        role = f"{ctype}/{sub}" if sub else ctype
        rows.append({"service": name, "part": "componentType", "value": role,
                     "what it does": "frontend: the HTTP API and router; worker/prefill and worker/decode: the two "
                                     "halves of a disaggregated request"})
        c = _container(svc)
        if c.get("image"):
            rows.append({"service": name, "part": "image", "value": c["image"],
                         "what it does": "the container image (pinned; LIBFABRIC on EFA needs an image built with EFA)"})
        if c.get("command"):
            rows.append({"service": name, "part": "command", "value": shlex.join(c["command"]),
                         "what it does": "the process the pod runs (the local lab runs the same module)"})
        rows += _flag_rows(name, [str(a) for a in c.get("args") or []])
        rows += _env_rows(name, svc.get("envs") or [], framework)
        if svc.get("envFromSecret"):
            rows.append({"service": name, "part": "envFromSecret", "value": svc["envFromSecret"],
                         "what it does": "the HF token comes in from this Secret (key HF_TOKEN), never from the manifest"})
        rows += _resource_rows(name, svc)
        rows += _pod_rows(name, svc)
    return pd.DataFrame(rows, columns=PART_COLUMNS)


def dgd_documents(cfg: WorkshopConfig, profile: str) -> list[tuple[str, dict[str, Any]]]:
    """(file path, DGD document) of ``profile`` as :func:`workshop_lib.manifests.render` renders it for ``cfg``."""
    from workshop_lib.manifests import render

    return [(f.path, d) for f in render(cfg, profile) for d in f.docs if isinstance(d, dict) and d.get("kind") == DGD_KIND]


@dataclass(frozen=True)
class DgdView:
    """A rendered DGD as YAML, its file, and its annotated parts; shows both in Jupyter."""

    name: str
    path: str
    yaml: str
    parts: pd.DataFrame

    def _repr_markdown_(self) -> str:
        return (f"**`manifests/{self.path}`**: DynamoGraphDeployment `{self.name}`, as the kit renders it "
                f"(`kubectl apply --server-side -f manifests/{self.path}`)\n\n```yaml\n{self.yaml}```\n")

    def __repr__(self) -> str:
        return f"manifests/{self.path}\n{self.yaml}"


def dgd_view(cfg: WorkshopConfig, profile: str, index: int = 0) -> DgdView:
    """The ``index``-th DGD of ``profile`` rendered for ``cfg``, with its YAML and :func:`annotate` parts.

    Raises:
        ValueError: the profile renders no DGD.
    """
    from workshop_lib.manifests.documents import dump_yaml

    docs = dgd_documents(cfg, profile)
    if not docs:
        raise ValueError(f"profile {profile!r} renders no DynamoGraphDeployment: use single-node or cross-node")
    path, doc = docs[index]
    return DgdView(doc["metadata"]["name"], path, dump_yaml(doc), annotate(doc))


# ------------------------------------------------------------------------------------------------ commands
TARGET_STEPS = ("platform", "verify", "secret", "deploy", "logs", "metrics", "frontend", "teardown")
OWN_STEPS = ("wait", "pods", "discovery", "port-forward", "oom", "uninstall")


def commands(step: str, cfg: WorkshopConfig, dgd: str | None = None, path: str | None = None) -> list[str]:
    """The ``kubectl``/``helm`` commands a library step corresponds to on a cluster (copyable, in order).

    The steps the eks target itself knows (:data:`TARGET_STEPS`) come from ``EksTarget.commands`` (one table); this
    adds the ones a lesson shows beside it (:data:`OWN_STEPS`). ``path`` (a rendered file under ``manifests/``)
    replaces the placeholder of ``deploy``.

    >>> from workshop_lib.config import WorkshopConfig
    >>> commands("wait", WorkshopConfig(), "vllm-disagg-ucx")[0]
    'kubectl -n dynamo-workshop wait dynamographdeployment/vllm-disagg-ucx --for=condition=Ready --timeout=1800s'

    Raises:
        ValueError: an unknown step (the message lists the known ones).
    """
    from workshop_lib.manifests import platform_releases
    from workshop_lib.targets.eks import EksTarget

    target = EksTarget(cfg)
    if dgd:
        target.graphs = [dgd]
    ns = cfg.namespace
    if step in TARGET_STEPS:
        out = target.commands(step)
        if step == "deploy" and path:
            out = [c.replace("<rendered manifests>", f"manifests/{path}") for c in out]
        return out
    sel = f"nvidia.com/dynamo-graph-deployment-name={dgd}" if dgd else "nvidia.com/dynamo-component-type"
    table = {
        "wait": [c for c in target.commands("deploy") if " wait " in c] + [f"kubectl -n {ns} get dgd,pods -w"],
        "pods": [f"kubectl -n {ns} get pods,svc -l {sel} -o wide",
                 f"kubectl -n {ns} get dgd {dgd or ''} -o yaml".replace("  ", " ")],
        "discovery": [f"kubectl -n {ns} get endpointslices,svc -l {sel}",
                      f"kubectl -n {cfg.platform_namespace} exec dynamo-platform-etcd-0 -- etcdctl get --prefix "
                      "--keys-only /   # only when the operator's discovery backend is etcd"],
        "port-forward": [*target.commands("frontend"), f"curl -s localhost:{cfg.frontend_port}/v1/models"],
        "uninstall": [f"kubectl delete namespace {ns}   # the workshop's graphs and secret"]
        + [f"helm uninstall {r.name} --namespace {r.namespace}" for r in reversed(platform_releases(cfg))],
        "oom": [f"kubectl -n {ns} get pods -o custom-columns=POD:.metadata.name,"
                "LAST:.status.containerStatuses[0].lastState.terminated.reason",
                f"kubectl -n {ns} describe pod <worker-pod> | grep -A3 'Last State'",
                f"kubectl -n {ns} exec <worker-pod> -- cat /sys/fs/cgroup/memory.peak"],
    }
    if step not in table:
        raise ValueError(f"unknown step {step!r}: use one of {', '.join(TARGET_STEPS + OWN_STEPS)}")
    return table[step]


def command_block(step: str, cfg: WorkshopConfig, dgd: str | None = None, path: str | None = None) -> str:
    """:func:`commands` as one printable block headed "On EKS, by hand:"."""
    return "On EKS, by hand:\n" + "\n".join(f"  {c}" for c in commands(step, cfg, dgd, path))


# ------------------------------------------------------------------------------------------------ what became of it
def process_rows(status: Any) -> pd.DataFrame:
    """The local lab's processes from a ``LabStatus``: role, pid, port, healthy, RSS and the real command line.

    The command line is read from the running process (``/proc``), so it shows what really runs, not what was meant to.
    """
    import pandas as pd
    import psutil

    rows = []
    for name, p in (getattr(status, "processes", None) or {}).items():
        cmd = ""
        if p.pid:
            try:
                cmd = shlex.join(psutil.Process(p.pid).cmdline())
            except (psutil.Error, OSError) as exc:
                cmd = f"(not readable: {type(exc).__name__})"
        rows.append({"process": name, "pid": p.pid, "port": p.port, "healthy": p.healthy, "rss_mb": p.rss_mb,
                     "command": cmd})
    return pd.DataFrame(rows, columns=["process", "pid", "port", "healthy", "rss_mb", "command"])


def registration_rows(keys: list[str]) -> pd.DataFrame:
    """etcd keys (Dynamo's registrations on local) grouped by what registered them.

    >>> registration_rows(["v1/instances/dynamo/prefill/generate/694d9a", "v1/mdc/dynamo/backend/x"]).shape[0]
    2
    """
    import pandas as pd

    rows = []
    for k in keys:
        parts = [p for p in k.split("/") if p]
        kind = parts[1] if len(parts) > 1 else parts[0] if parts else ""
        component = parts[3] if len(parts) > 3 else ""
        rows.append({"key": k, "kind": kind, "component": component})
    return pd.DataFrame(rows, columns=["key", "kind", "component"])


def pod_rows(pods: list[Any], services: list[Any]) -> pd.DataFrame:
    """What the operator made on eks: pods (phase, node, restarts) and services, from API objects (dicts)."""
    import pandas as pd

    def get(obj: Any, *path: str) -> Any:
        for p in path:
            obj = obj.get(p) if isinstance(obj, dict) else getattr(obj, p, None)
        return obj

    rows = []
    for p in pods:
        statuses = get(p, "status", "containerStatuses") or []
        restarts = sum(int(get(s, "restartCount") or 0) for s in statuses)
        rows.append({"kind": "Pod", "name": get(p, "metadata", "name"), "status": get(p, "status", "phase"),
                     "node": get(p, "spec", "nodeName"), "restarts": restarts})
    for s in services:
        ports = ",".join(str(get(x, "port")) for x in (get(s, "spec", "ports") or []))
        rows.append({"kind": "Service", "name": get(s, "metadata", "name"), "status": f"ports {ports}",
                     "node": None, "restarts": None})
    return pd.DataFrame(rows, columns=["kind", "name", "status", "node", "restarts"])
