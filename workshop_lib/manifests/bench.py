"""Section 4: the in-cluster aiperf Job and the nixlbench initiator/target pair.

The aiperf Job sweeps concurrency against the frontend Service of the cross-node graph and prints each CSV to its
log (the notebooks read them back with the bench parsers). The nixlbench pods coordinate through the platform's etcd.

Example:
    >>> from workshop_lib.config import WorkshopConfig
    >>> job = aiperf_job(WorkshopConfig(), "vllm-xnode-libfabric")
    >>> job["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"]
    'http://vllm-xnode-libfabric-frontend.dynamo-workshop.svc.cluster.local:8000'
"""

from __future__ import annotations

from typing import Any

from workshop_lib import versions
from workshop_lib.config import WorkshopConfig
from workshop_lib.k8s import GPU_RESOURCE, INSTANCE_LABEL
from workshop_lib.manifests.dgd import EFA_ENV, EFA_RESOURCE, env, worker_image

CONCURRENCY = (1, 5, 10, 20)
SEG_TYPES = ("VRAM", "DRAM")
LABEL_NIXLBENCH = "workshop.nvidia.com/nixlbench"
TARGET_DELAY_S = 15


def frontend_url(cfg: WorkshopConfig, dgd: str) -> str:
    """The in-cluster URL of a graph's frontend Service (the operator names it ``<dgd>-frontend``)."""
    return f"http://{dgd}-frontend.{cfg.namespace}.svc.cluster.local:{cfg.frontend_port}"


def etcd_url(cfg: WorkshopConfig) -> str:
    return f"http://dynamo-platform-etcd.{cfg.platform_namespace}.svc.cluster.local:2379"


def request_count(concurrency: int) -> int:
    """Requests per sweep point: ten per concurrent stream, at least 20."""
    return max(20, 10 * concurrency)


def aiperf_script(cfg: WorkshopConfig, concurrency: tuple[int, ...] = CONCURRENCY) -> str:
    """The Job's shell script: install the pinned aiperf, sweep concurrency, print each CSV between markers."""
    lines = [
        "set -eu",
        f"pip install --no-cache-dir --quiet aiperf=={versions.COMPONENTS['aiperf'].version}",
        f"for c in {' '.join(str(c) for c in concurrency)}; do",
        "  n=$(( c * 10 > 20 ? c * 10 : 20 ))",
        "  aiperf profile --model \"$MODEL\" --url \"$FRONTEND_URL\" --endpoint-type chat --streaming"
        " --concurrency \"$c\" --request-count \"$n\" --isl \"$ISL\" --osl \"$OSL\""
        " --artifact-dir \"/results/c$c\" --ui simple",
        "  echo \"=== aiperf concurrency=$c begin ===\"",
        "  cat \"/results/c$c/profile_export_aiperf.csv\"",
        "  echo \"=== aiperf concurrency=$c end ===\"",
        "done",
    ]
    return "\n".join(lines) + "\n"


def aiperf_job(cfg: WorkshopConfig, dgd: str, concurrency: tuple[int, ...] = CONCURRENCY) -> dict[str, Any]:
    """A Job running the aiperf sweep against ``dgd``'s frontend (ISL/OSL from ``cfg``)."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": f"aiperf-{dgd}", "namespace": cfg.namespace},
        "spec": {
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": 86400,
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": "aiperf"}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{
                        "name": "aiperf",
                        "image": versions.image("aiperf"),
                        "command": ["/bin/sh", "-c", aiperf_script(cfg, concurrency)],
                        "env": [
                            env("FRONTEND_URL", frontend_url(cfg, dgd)),
                            env("MODEL", cfg.model),
                            env("ISL", str(cfg.isl)),
                            env("OSL", str(cfg.osl)),
                        ],
                        "envFrom": [{"secretRef": {"name": cfg.hf_token_secret, "optional": True}}],
                        "resources": {"requests": {"cpu": "4", "memory": "8Gi"}, "limits": {"cpu": "8", "memory": "16Gi"}},
                        "volumeMounts": [{"name": "results", "mountPath": "/results"}],
                    }],
                    "volumes": [{"name": "results", "emptyDir": {}}],
                },
            },
        },
    }


def nixlbench_args(cfg: WorkshopConfig, seg_type: str = "VRAM") -> list[str]:
    """nixlbench flags: etcd coordination, the cfg's backend, ``seg_type`` on both sides, 4 KiB to 64 MiB READs."""
    return [
        "nixlbench", "--etcd_endpoints", etcd_url(cfg), "--backend", cfg.kv_backend,
        "--initiator_seg_type", seg_type, "--target_seg_type", seg_type, "--op_type", "READ",
        "--start_block_size", "4096", "--max_block_size", str(64 * 2**20), "--num_iter", "1000",
    ]


def nixlbench_pods(cfg: WorkshopConfig, seg_type: str = "VRAM") -> list[dict[str, Any]]:
    """Two pods on two nodes running the same nixlbench command.

    nixlbench ranks processes in the order they register in etcd (rank 0 is the initiator, which prints the result
    table), so the target starts ``TARGET_DELAY_S`` later to make the pod named ``initiator`` rank 0.
    """
    run = f"nixlbench-{cfg.kv_backend.lower()}-{seg_type.lower()}"
    gpus = {GPU_RESOURCE: "1"} if seg_type == "VRAM" else {}
    res = {EFA_RESOURCE: str(cfg.efa_devices), "hugepages-2Mi": cfg.hugepages_2mi, "memory": cfg.worker_memory,
           "cpu": cfg.worker_cpu, **gpus}
    pods = []
    for role in ("initiator", "target"):
        pods.append({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"{run}-{role}", "namespace": cfg.namespace, "labels": {LABEL_NIXLBENCH: run}},
            "spec": {
                "restartPolicy": "Never",
                "nodeSelector": {INSTANCE_LABEL: cfg.instance_type},
                "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                    {"labelSelector": {"matchLabels": {LABEL_NIXLBENCH: run}}, "topologyKey": "kubernetes.io/hostname"}]}},
                "containers": [{
                    "name": "nixlbench",
                    "image": worker_image(cfg),
                    "command": nixlbench_args(cfg, seg_type) if role == "initiator" else
                    ["/bin/sh", "-c", f"sleep {TARGET_DELAY_S} && exec \"$0\" \"$@\"", *nixlbench_args(cfg, seg_type)],
                    "env": [env("NIXL_LOG_LEVEL", cfg.nixl_log_level.upper()), env("FI_LOG_LEVEL", cfg.fi_log_level),
                            *[env(k, v) for k, v in EFA_ENV.items()]],
                    "securityContext": {"privileged": True, "capabilities": {"add": ["IPC_LOCK"]}},
                    "resources": {"requests": dict(res), "limits": dict(res)},
                    "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}],
                }],
                "volumes": [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": cfg.shm_size}}],
            },
        })
    return pods
