"""The failures attendees actually hit, per section: symptom, cause, fix and where it was reported.

Every row comes from a report in the pinned stack's documentation, issues or the seed workshop (the ``source`` column);
the notebooks show the rows of their section as a table. On local the EKS rows are shown too, labelled "on EKS": a
self-paced learner without a cluster still learns what goes wrong there. No source names a file a clone lacks.

Example:
    >>> frame = table("03", "eks")
    >>> "OOMKilled" in " ".join(frame["symptom"])
    True
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


@dataclass(frozen=True, slots=True)
class Trouble:
    """One known failure."""

    section: str
    target: str  # "eks", "local" or "both"
    symptom: str
    cause: str
    fix: str
    source: str


TROUBLES: list[Trouble] = [
    # ---------------------------------------------------------------- 01 setup
    Trouble("01", "eks", "operator pod runs image kubernetes-operator:0.7.1",
            "the dynamo-platform 0.9.0 chart falls back to an old operator tag",
            "--set dynamo-operator.controllerManager.manager.image.tag=0.9.0 (the kit sets it) or chart 0.9.0-post1",
            "Dynamo installation guide"),
    Trouble("01", "eks", "vpc.amazonaws.com/efa allocatable is 0 or missing on a GPU node",
            "the EFA device plugin DaemonSet is not running there (or the node has no EFA interfaces)",
            "install the EFA device plugin (manifests/01-platform add-on); create P5 nodes with EFA enabled",
            "awsome-distributed-training instance profiles: 32 EFA per p5.48xlarge"),
    Trouble("01", "eks", "a worker pod stays Pending, event mentions hugepages-2Mi",
            "the pod requests 2Mi hugepages the node never pre-allocated",
            "pre-allocate hugepages on the GPU nodes (node user data / sysctl vm.nr_hugepages) or set HUGEPAGES_2MI=0",
            "seed workshop"),
    Trouble("01", "eks", "model download fails with HTTP 401",
            "the HF token secret holds key 'token' instead of 'HF_TOKEN'",
            "recreate secret hf-token-secret with key HF_TOKEN (the notebook's secret cell does)",
            "seed workshop"),
    Trouble("01", "eks", "GDRCopy installer pods fewer than GPU nodes",
            "the DaemonSet's node selector misses a node, or its image pull failed",
            "kubectl -n kube-system describe ds gdrcopy-installer; it needs one pod per GPU node",
            "Dynamo EFA guide"),
    Trouble("01", "local", "etcd or NATS does not come up",
            "port 2379 or 4222 is taken by another process, or `workshop lab setup` was not run",
            "run `workshop lab setup`, then `workshop lab down` and retry; check `workshop lab status`",
            "seen on the local lab (the kit's lab tests)"),
    # ---------------------------------------------------------------- 02 single node
    Trouble("02", "eks", "worker Running but never Ready (probe retried 720 times), inference works",
            "its DYN_SYSTEM_PORT is not 9090, the port the operator probes",
            "keep the multi-DGD ports 9090/9091/9190 and the probe on the same port the kit renders",
            "seed workshop"),
    Trouble("02", "eks", "vLLM exits: Cannot specify both --kv-transfer-config and --connector",
            "Dynamo 0.9.0 adds its own connector unless told not to",
            "pass --connector none with --kv-transfer-config (the kit's manifests do)",
            "Dynamo 0.9.0 vLLM backend"),
    Trouble("02", "eks", "NIXL_BACKEND=LIBFABRIC set, logs still say Backend UCX was instantiated",
            "vLLM reads the backend only from kv_connector_extra_config.backends",
            "set kv_connector_extra_config: {backends: [LIBFABRIC]} (TRT-LLM: TRTLLM_NIXL_KVCACHE_BACKEND)",
            "vLLM 0.14 NixlConnector"),
    Trouble("02", "eks", "decode waits, then prefill frees the KV blocks after 480 s (VLLM_NIXL_ABORT_REQUEST_TIMEOUT)",
            "VLLM_NIXL_SIDE_CHANNEL_HOST is not the pod IP, so the peer cannot reach the side channel",
            "set VLLM_NIXL_SIDE_CHANNEL_HOST from status.podIP (the kit's manifests do)",
            "vLLM 0.14.1 NixlConnector, vllm/envs.py"),
    Trouble("02", "eks", "no NIXL lines at all in the worker log",
            "NIXL logs at WARN by default",
            "set NIXL_LOG_LEVEL=INFO (NIXL_LOG_LEVEL parameter)", "NIXL 0.9.0"),
    Trouble("02", "eks", "TRT-LLM worker sits in Running/not Ready for 15-20 minutes",
            "TensorRT-LLM compiles kernels (JIT) on first start on P5",
            "wait: the notebook's wait shows progress; do not delete the pod", "seed workshop"),
    Trouble("02", "local", "frontend log: Failed to fetch model ... from HuggingFace",
            "--model-name was given a local path",
            "start the frontend without --model-name (the lab does); the model id is the directory path",
            "seen on the local lab (the kit's lab tests)"),
    Trouble("02", "local", "libplugin_UCX.so: libcuda.so.1: cannot open shared object file",
            "NIXL 0.9.0 plugins link libcuda even for DRAM",
            "run `workshop lab setup` (it builds the no-device libcuda stub the lab puts on LD_LIBRARY_PATH)",
            "seen on the local lab (the kit's lab tests)"),
    # ---------------------------------------------------------------- 03 cross node
    Trouble("03", "eks", "worker OOMKilled (exit 137) during NIXL LIBFABRIC init",
            "64Gi is too little: one rail per EFA device (32) + 1 control rail, each with a 32 MiB registered pool",
            "give workers 128Gi (WORKER_MEMORY); the notebook computes the rail memory from the log",
            "seed workshop; NIXL 0.9.0 source"),
    Trouble("03", "eks", "fi_read still retrying EAGAIN",
            "prefill and decode share one node; same-node EFA reads stall",
            "pin PREFILL_NODE and DECODE_NODE to two different nodes in one AZ", "Dynamo disagg guide"),
    Trouble("03", "both", "Discovered 1 socket devices (TCP fallback) / provider sockets or tcp",
            "no EFA device inside the pod: libfabric fell back to TCP, silently",
            "request vpc.amazonaws.com/efa, run privileged, use an image built with EFA, FI_PROVIDER=efa",
            "NIXL 0.9.0 log lines"),
    Trouble("03", "eks", "fi_mr_reg fails for GPU buffers",
            "registering GPU memory with EFA needs privileged pods; IPC_LOCK alone is not enough",
            "securityContext.privileged: true (the EFA overlay sets it)", "Dynamo EFA guide"),
    Trouble("03", "eks", "TRT-LLM: rail/metadata deserialization error with 32 EFA devices",
            "the NIXL bundled with TRT-LLM 1.2.0rc5 (NIXL 0.8.0/0.9.0 serialize num_rails and accept unequal counts)",
            "use the pinned TRT-LLM 1.3 image; to limit EFA devices use FI_EFA_IFACE or the pod's EFA count "
            "(FI_EFA_DEV_LIST is read by nothing)", "TRT-LLM issue #10024; NIXL 0.9.0 libfabric_backend.cpp"),
    Trouble("03", "eks", "corrupted KV under load",
            "EFA SHM transfer on GPU buffers", "FI_EFA_ENABLE_SHM_TRANSFER=0 (FI_EFA_ENABLE_SHM is read by nothing)",
            "Dynamo EFA guide; seed workshop"),
    Trouble("03", "eks", "the two workers cannot connect at all",
            "they run in different availability zones; EFA does not cross AZs",
            "put both GPU nodes in one AZ (placement group)", "Dynamo EFA guide"),
    # ---------------------------------------------------------------- 04 performance
    Trouble("04", "eks", "TTFT around 100 s",
            "silent TCP fallback of the KV transfer", "check section 03's provider row: it must say efa",
            "Dynamo EFA guide"),
    Trouble("04", "eks", "TTFT around 10 s, KV transfer 1-5 GB/s",
            "UCX staging through host memory (no GPUDirect on EFA)", "use LIBFABRIC; label the UCX baseline 'UCX (TCP)'",
            "Dynamo EFA guide"),
    Trouble("04", "local", "aiperf: HFValidationError: Repo id must be in the form ...",
            "HF_HUB_OFFLINE=1 with a local tokenizer directory", "unset HF_HUB_OFFLINE for aiperf (the kit does)",
            "seen on the local lab (the kit's lab tests)"),
    Trouble("04", "local", "numbers jump between runs",
            "a shared 2-core machine; the transports are TCP and memory copies",
            "compare shapes, not absolute values; never compare them with P5 numbers", "local lab measurements"),
]


def rows(section: str, target: str) -> list[Trouble]:
    """The failures of ``section`` that apply to ``target`` (``both`` rows always)."""
    return [t for t in TROUBLES if t.section == section and t.target in (target, "both")]


WHERE = {"eks": "on EKS", "local": "on local", "both": "both"}


def table(section: str, target: str) -> pd.DataFrame:
    """The section's rows as a DataFrame (where, symptom, cause, fix, source).

    On ``eks`` only the rows that apply there (no ``where`` column); on ``local`` every row, the EKS ones labelled
    "on EKS" and listed after the local ones.
    """
    import pandas as pd

    picked = rows(section, target)
    if target == "local":
        picked = picked + [t for t in TROUBLES if t.section == section and t.target == "eks"]
    data = [{"where": WHERE[t.target], **asdict(t)} for t in picked]
    cols = ["symptom", "cause", "fix", "source"]
    return pd.DataFrame(data, columns=["where", *cols] if target == "local" else cols)
