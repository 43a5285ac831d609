"""DynamoGraphDeployment builders: one disaggregated base (frontend + prefill + decode) and small named overlays.

The base is what section 2 deploys on one node. Section 3 applies two overlays on top of it (Dynamo-recipes style):
``efa`` (EFA devices, hugepages, ``FI_*`` env, ``privileged``) and ``cross-node`` (prefill and decode on two nodes
of one availability zone). The NIXL backend is chosen through the mechanism each framework really reads
(FACTS.md, "Choosing the NIXL backend"): vLLM's ``--kv-transfer-config`` backends list, TRT-LLM's
``TRTLLM_NIXL_KVCACHE_BACKEND`` with ``cache_transceiver_config.backend: NIXL`` in the engine yaml.

Example:
    >>> from workshop_lib.config import WorkshopConfig
    >>> dgd = base_dgd(WorkshopConfig(), "single-node")
    >>> sorted(dgd["spec"]["services"])
    ['DecodeWorker', 'Frontend', 'PrefillWorker']
"""

from __future__ import annotations

import copy
import json
from typing import Any

from workshop_lib import versions
from workshop_lib.config import WorkshopConfig
from workshop_lib.k8s import DGD_API, DGD_KIND, EFA_RESOURCE, INSTANCE_LABEL, ZONE_LABEL
from workshop_lib.manifests.documents import dump_yaml

FRONTEND, PREFILL, DECODE = "Frontend", "PrefillWorker", "DecodeWorker"
WORKERS = (PREFILL, DECODE)
ENGINE_MOUNT = "/opt/workshop/engine"
# Pod labels the Dynamo operator puts on every pod of a graph (used by the placement overlay).
LABEL_GRAPH = "nvidia.com/dynamo-graph-deployment-name"
LABEL_COMPONENT = "nvidia.com/dynamo-component-type"
LABEL_PROFILE = "workshop.nvidia.com/profile"
LABEL_BACKEND = "workshop.nvidia.com/kv-backend"
# EFA env of the overlay (FACTS.md "Choosing the NIXL backend": SHM transfer corrupted GPU buffers under load).
# Only variables libfabric 2.1-2.3.1 reads: FI_EFA_ENABLE_SHM / FI_EFA_DEV_LIST are no-ops (manifests/envaudit.py).
EFA_ENV = {"FI_PROVIDER": "efa", "FI_EFA_USE_DEVICE_RDMA": "1", "FI_EFA_ENABLE_SHM_TRANSFER": "0"}
# The frontend flag that turns the 0.9.0 frontend's silent decode-only fallback (no active prefill router) into an
# error (`python -m dynamo.frontend --help`, Dynamo 0.9.0).
ENFORCE_DISAGG = "--enforce-disagg"
# vLLM 0.14.1 KVTransferConfig.kv_load_failure_policy: "recompute" (default) hides a failed KV load behind a local
# prefill; "fail" makes the request fail, so a broken transfer cannot pass for a disaggregated one.
KV_LOAD_FAILURE_POLICY = "fail"


def dgd_name(cfg: WorkshopConfig, placement: str) -> str:
    """``<framework>-<disagg|xnode>-<backend>``, e.g. ``vllm-xnode-libfabric`` (short: the operator prefixes it)."""
    kind = "xnode" if placement == "cross-node" else "disagg"
    return f"{cfg.framework}-{kind}-{cfg.kv_backend.lower()}"


def vllm_kv_transfer_config(backend: str) -> str:
    """The ``--kv-transfer-config`` JSON that makes vLLM's NixlConnector use ``backend`` and fail a failed KV load.

    >>> vllm_kv_transfer_config("LIBFABRIC")
    '{"kv_connector":"NixlConnector","kv_role":"kv_both","kv_load_failure_policy":"fail","kv_connector_extra_config":{"backends":["LIBFABRIC"]}}'
    """
    cfg = {"kv_connector": "NixlConnector", "kv_role": "kv_both", "kv_load_failure_policy": KV_LOAD_FAILURE_POLICY,
           "kv_connector_extra_config": {"backends": [backend]}}
    return json.dumps(cfg, separators=(",", ":"))


def worker_image(cfg: WorkshopConfig) -> str:
    """The worker image to render: ``cfg.worker_image``, except a stock runtime image in a LIBFABRIC graph.

    The stock 0.9.0 runtime images cannot load NIXL's LIBFABRIC plugin (no libfabric in the runtime stage), so a
    LIBFABRIC graph gets the ``REPLACE_WITH_YOUR_EFA_IMAGE/...:0.9.0-efa`` placeholder instead: it cannot be pulled
    by accident, and ``workshop validate`` and preflight say how to build the image.

    >>> worker_image(WorkshopConfig(kv_backend="LIBFABRIC"))
    'REPLACE_WITH_YOUR_EFA_IMAGE/vllm-runtime:0.9.0-efa'
    >>> worker_image(WorkshopConfig(kv_backend="UCX"))
    'nvcr.io/nvidia/ai-dynamo/vllm-runtime:0.9.0'
    """
    image = str(cfg.worker_image)
    if cfg.kv_backend == "LIBFABRIC" and versions.stock_runtime_without_libfabric(image):
        return versions.image(f"{'vllm' if cfg.framework == 'vllm' else 'tensorrtllm'}-runtime-efa")
    return image


def gpu_local_efa(cfg: WorkshopConfig) -> int:
    """EFA devices local to the worker's GPUs (4 per GPU on p5.48xlarge): the only ones NIXL 0.9.0 registers VRAM on.

    >>> gpu_local_efa(WorkshopConfig())
    4
    """
    inst = cfg.instance
    return max(1, inst.efa // inst.gpus) * cfg.gpus_per_worker


def env(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "value": value}


def _worker_args(cfg: WorkshopConfig, role: str, engine_file: str) -> tuple[list[str], list[str]]:
    if cfg.framework == "vllm":
        args = ["--model", cfg.model, f"--is-{role}-worker", "--connector", "none",
                "--kv-transfer-config", vllm_kv_transfer_config(cfg.kv_backend),
                "--distributed-executor-backend", "mp"]
        if cfg.gpus_per_worker > 1:
            args += ["--tensor-parallel-size", str(cfg.gpus_per_worker)]
        return ["python3", "-m", "dynamo.vllm"], args
    args = ["--model-path", cfg.model, "--served-model-name", cfg.model,
            "--extra-engine-args", engine_file, "--disaggregation-mode", role]
    return ["python3", "-m", "dynamo.trtllm"], args


def _worker_env(cfg: WorkshopConfig) -> list[dict[str, Any]]:
    out = [env("NIXL_LOG_LEVEL", cfg.nixl_log_level.upper()), env("FI_LOG_LEVEL", cfg.fi_log_level)]
    if cfg.framework == "vllm":
        out.append({"name": "VLLM_NIXL_SIDE_CHANNEL_HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}})
    else:
        out.append(env("TRTLLM_NIXL_KVCACHE_BACKEND", cfg.kv_backend))
    return out


def _worker(cfg: WorkshopConfig, role: str, name: str) -> dict[str, Any]:
    engine_file = f"{ENGINE_MOUNT}/{role}.yaml"
    command, args = _worker_args(cfg, role, engine_file)
    quantities = {"cpu": cfg.worker_cpu, "memory": cfg.worker_memory, "gpu": str(cfg.gpus_per_worker)}
    container: dict[str, Any] = {"image": worker_image(cfg), "workingDir": "/workspace", "command": command, "args": args}
    svc: dict[str, Any] = {
        "componentType": "worker",
        "subComponentType": role,
        "replicas": 1,
        "envFromSecret": cfg.hf_token_secret,
        "envs": _worker_env(cfg),
        "resources": {"requests": dict(quantities), "limits": dict(quantities)},
        "sharedMemory": {"size": cfg.shm_size},
        "extraPodSpec": {"mainContainer": container},
    }
    if cfg.framework == "trtllm":
        container["volumeMounts"] = [{"name": "engine-config", "mountPath": ENGINE_MOUNT, "readOnly": True}]
        svc["extraPodSpec"]["volumes"] = [{"name": "engine-config", "configMap": {"name": engine_configmap_name(name)}}]
    return svc


def _frontend(cfg: WorkshopConfig) -> dict[str, Any]:
    return {
        "componentType": "frontend",
        "replicas": 1,
        "extraPodSpec": {
            "mainContainer": {
                "image": cfg.frontend_image,
                "command": ["python3", "-m", "dynamo.frontend"],
                "args": ["--http-port", str(cfg.frontend_port), ENFORCE_DISAGG],
            }
        },
    }


def base_dgd(cfg: WorkshopConfig, placement: str = "single-node") -> dict[str, Any]:
    """The disaggregated graph: frontend + prefill worker + decode worker, ``cfg.gpus_per_worker`` GPUs each."""
    name = dgd_name(cfg, placement)
    return {
        "apiVersion": DGD_API,
        "kind": DGD_KIND,
        "metadata": {
            "name": name,
            "namespace": cfg.namespace,
            "labels": {LABEL_PROFILE: placement, LABEL_BACKEND: cfg.kv_backend.lower()},
        },
        "spec": {
            "backendFramework": cfg.framework,
            "services": {FRONTEND: _frontend(cfg), PREFILL: _worker(cfg, "prefill", name), DECODE: _worker(cfg, "decode", name)},
        },
    }


def engine_configmap_name(dgd: str) -> str:
    return f"{dgd}-engine"


def trtllm_engine_config(cfg: WorkshopConfig, role: str) -> dict[str, Any]:
    """TRT-LLM engine arguments for one role; ``cache_transceiver_config.backend: NIXL`` lets the env pick UCX/LIBFABRIC."""
    return {
        "tensor_parallel_size": cfg.gpus_per_worker,
        "moe_expert_parallel_size": 1,
        "enable_attention_dp": False,
        "max_num_tokens": 8192,
        "trust_remote_code": True,
        "backend": "pytorch",
        "enable_chunked_prefill": True,
        "disable_overlap_scheduler": role == "prefill",  # the overlap scheduler is not supported on prefill-only workers
        "kv_cache_config": {"free_gpu_memory_fraction": 0.85},
        "cache_transceiver_config": {"backend": "NIXL"},
    }


def trtllm_engine_configmap(cfg: WorkshopConfig, dgd: dict[str, Any]) -> dict[str, Any]:
    """The ConfigMap mounted at ``ENGINE_MOUNT`` in the TRT-LLM workers (``prefill.yaml``, ``decode.yaml``)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": engine_configmap_name(dgd["metadata"]["name"]), "namespace": cfg.namespace},
        "data": {f"{role}.yaml": dump_yaml(trtllm_engine_config(cfg, role)) for role in ("prefill", "decode")},
    }


# --------------------------------------------------------------------------- overlays
def merge(base: Any, overlay: Any) -> Any:
    """Deep-merge ``overlay`` onto ``base`` (a copy): maps recursively, lists of named items by ``name``, else replace.

    >>> merge({"env": [{"name": "A", "value": "1"}]}, {"env": [{"name": "A", "value": "2"}, {"name": "B", "value": "3"}]})
    {'env': [{'name': 'A', 'value': '2'}, {'name': 'B', 'value': '3'}]}
    """
    if isinstance(base, dict) and isinstance(overlay, dict):
        out = copy.deepcopy(base)
        for k, v in overlay.items():
            out[k] = merge(out[k], v) if k in out else copy.deepcopy(v)
        return out
    if isinstance(base, list) and isinstance(overlay, list) and all(isinstance(i, dict) and "name" in i for i in base + overlay):
        out_list = copy.deepcopy(base)
        index = {item["name"]: i for i, item in enumerate(out_list)}
        for item in overlay:
            if item["name"] in index:
                out_list[index[item["name"]]] = merge(out_list[index[item["name"]]], item)
            else:
                out_list.append(copy.deepcopy(item))
        return out_list
    return copy.deepcopy(overlay)


def efa_overlay(cfg: WorkshopConfig) -> dict[str, Any]:
    """EFA devices, 2 MiB hugepages, ``FI_*`` env and ``privileged`` (needed for ``fi_mr_reg`` of GPU memory)."""
    custom = {EFA_RESOURCE: str(cfg.efa_devices), "hugepages-2Mi": cfg.hugepages_2mi}
    worker = {
        "envs": [env(k, v) for k, v in EFA_ENV.items()],
        "resources": {"requests": {"custom": dict(custom)}, "limits": {"custom": dict(custom)}},
        "extraPodSpec": {
            "mainContainer": {"securityContext": {"privileged": True, "capabilities": {"add": ["IPC_LOCK"]}}},
        },
    }
    return {"spec": {"services": {w: copy.deepcopy(worker) for w in WORKERS}}}


def cross_node_overlay(cfg: WorkshopConfig, name: str) -> dict[str, Any]:
    """Prefill and decode on two nodes of one zone: pinned nodes when given, else anti-affinity + zone affinity."""
    services: dict[str, Any] = {}
    selector = {"matchLabels": {LABEL_GRAPH: name, LABEL_COMPONENT: "worker"}}
    for svc, node in ((PREFILL, cfg.prefill_node), (DECODE, cfg.decode_node)):
        pod: dict[str, Any] = {"nodeSelector": {INSTANCE_LABEL: cfg.instance_type}}
        if cfg.prefill_node and cfg.decode_node:
            pod["nodeSelector"]["kubernetes.io/hostname"] = node
        else:
            pod["affinity"] = {
                "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                    {"labelSelector": selector, "topologyKey": "kubernetes.io/hostname"}]},
                "podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                    {"labelSelector": selector, "topologyKey": ZONE_LABEL}]},
            }
        services[svc] = {"extraPodSpec": copy.deepcopy(pod)}
    return {"spec": {"services": services}}


OVERLAYS = ("efa", "cross-node")


def apply_overlays(cfg: WorkshopConfig, dgd: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """``dgd`` with the named overlays of :data:`OVERLAYS` merged on, in order."""
    out = dgd
    for n in names:
        out = merge(out, efa_overlay(cfg) if n == "efa" else cross_node_overlay(cfg, dgd["metadata"]["name"]))
    return out


def split_multi_dgd(cfg: WorkshopConfig, dgd: dict[str, Any]) -> list[dict[str, Any]]:
    """The seed workshop's multi-DGD pattern: one DGD per service, sharing ``cfg.dynamo_namespace``, own DYN_SYSTEM_PORT.

    Ports other than 9090 leave pods Running but not Ready (the operator probes 9090); see manifests/README.md.
    """
    ports = {FRONTEND: cfg.frontend_system_port, PREFILL: cfg.prefill_system_port, DECODE: cfg.decode_system_port}
    short = {FRONTEND: "frontend", PREFILL: "prefill", DECODE: "decode"}
    out = []
    for svc_name, svc in dgd["spec"]["services"].items():
        one = copy.deepcopy(dgd)
        one["metadata"]["name"] = f"{dgd['metadata']['name']}-{short[svc_name]}"
        svc = merge(svc, {"dynamoNamespace": cfg.dynamo_namespace, "envs": [env("DYN_SYSTEM_PORT", str(ports[svc_name]))]})
        for term in _affinity_terms(svc):
            term["labelSelector"]["matchLabels"].pop(LABEL_GRAPH, None)
        one["spec"]["services"] = {svc_name: svc}
        out.append(one)
    return out


def _affinity_terms(svc: dict[str, Any]) -> list[dict[str, Any]]:
    aff = svc.get("extraPodSpec", {}).get("affinity", {})
    return [t for kind in aff.values() for t in kind.get("requiredDuringSchedulingIgnoredDuringExecution", [])]
