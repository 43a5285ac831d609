"""Failure codes: each signature's stable code, title and fix, and the layer (the failure taxonomy) it belongs to.

Data only, read by :mod:`workshop_lib.logs.accumulator` when it reports an error; the rules that produce the codes are
in :mod:`workshop_lib.logs.patterns`.

Example:
    >>> ERROR_CODES["OOM_KILLED"].title, CODE_LAYER["OOM_KILLED"], LAYER_OF["nixl"]
    ('container OOMKilled (exit 137)', 'kubernetes', 'nixl')
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ErrorCode:
    """A failure signature's stable code, a one-line title and the fix an attendee can act on."""

    code: str
    title: str
    fix: str


ERROR_CODES: dict[str, ErrorCode] = {e.code: e for e in (
    ErrorCode("OOM_KILLED", "container OOMKilled (exit 137)",
              "raise the worker memory limit to 128Gi on p5.48xlarge with LIBFABRIC (one registered pool per EFA rail; "
              "64Gi was OOMKilled during NIXL LIBFABRIC init)"),
    ErrorCode("NIXL_ERR", "a NIXL call returned an error status",
              "read the NIXL lines just before it (NIXL_LOG_LEVEL=INFO); NIXL_ERR_BACKEND usually means the backend "
              "plugin could not start: check the plugin directory, libfabric/UCX libraries and the backend name"),
    ErrorCode("NIXL_BACKEND_CREATE_FAILED", "a NIXL backend or plugin could not be created or loaded",
              "check that the plugin and its libraries load (libfabric >= 2.x and libhwloc for LIBFABRIC, libcuda on "
              "GPU nodes), that one NIXL install is on the path, and the backend name (UCX or LIBFABRIC)"),
    ErrorCode("NIXL_REMOTE_METADATA_MISSING", "NIXL metadata for the remote agent is not loaded",
              "the peer's metadata never arrived: check the side channel (VLLM_NIXL_SIDE_CHANNEL_HOST = pod IP, ports "
              "open between pods) and that both sides run the same NIXL version and backend"),
    ErrorCode("RAIL_DESERIALIZE_FAILED", "LIBFABRIC rail endpoint metadata could not be deserialized",
              "the peers' rail metadata does not match (different NIXL versions or a different number of EFA devices "
              "per pod; NIXL 0.9.0 opens one rail per EFA device it sees): run the same NIXL version on prefill and "
              "decode and request the same vpc.amazonaws.com/efa count for both (NIXL 0.9.0 reads no rail-count knob)"),
    ErrorCode("EFA_EAGAIN_SAME_NODE", "fi_read keeps retrying EAGAIN",
              "prefill and decode share a node: pin them to different nodes (anti-affinity or nodeName) in the same AZ"),
    ErrorCode("EFA_CAPS_UNSUPPORTED", "the efa provider rejected the requested capabilities",
              "the EFA device lacks RDMA read for this request: use an instance with EFA RDMA (p5/p5en/p4d), set "
              "FI_EFA_USE_DEVICE_RDMA=1 and FI_PROVIDER=efa, and check the EFA installer version"),
    ErrorCode("EFA_PROVIDER_ABORT", "the application aborted because it could not use the efa provider",
              "check that the pod requests vpc.amazonaws.com/efa, runs privileged, sees /dev/infiniband, and that "
              "FI_PROVIDER=efa; `fi_info -p efa` in the pod must list the devices"),
    ErrorCode("UCX_UNREACHABLE", "UCX could not reach the destination",
              "with hostNetwork UCX may pick a 169.254.x link-local or docker address: set UCX_NET_DEVICES to the "
              "routable interface (or drop hostNetwork), or use the LIBFABRIC backend on EFA"),
    ErrorCode("UCX_CUDA_TRANSPORTS_MISSING", "UCX has no CUDA transports (cuda_ipc/cuda_copy)",
              "the UCX in use was built without CUDA or cannot load libcuda: use the UCX bundled with NIXL/the runtime "
              "image, or switch the NIXL backend to LIBFABRIC on EFA"),
    ErrorCode("TRTLLM_TRANSFER_AGENT_ASSERT", "TRT-LLM's NIXL transfer agent failed (status != NIXL_SUCCESS)",
              "several NIXL copies in one image conflict: keep one NIXL install (the runtime image's), check "
              "TRTLLM_NIXL_KVCACHE_BACKEND (UCX or LIBFABRIC) and the NIXL_LOG_LEVEL=INFO lines before the assertion"),
    ErrorCode("TRTLLM_BACKEND_FALLBACK", "TRT-LLM did not accept the NIXL backend and fell back to UCX",
              "set TRTLLM_NIXL_KVCACHE_BACKEND to exactly LIBFABRIC or UCX"),
    ErrorCode("DYNAMO_CONNECTOR_CONFLICT", "Dynamo refused both --kv-transfer-config and --connector",
              "add `--connector none` when passing --kv-transfer-config with the NixlConnector"),
    ErrorCode("DYNAMO_ETCD_UNREACHABLE", "a Dynamo process could not reach etcd",
              "start etcd (or the platform chart) and check ETCD_ENDPOINTS"),
    ErrorCode("EFA_INTERNAL_ABORT", "the libfabric EFA provider hit an internal error and aborted the process",
              "read the 'EFA internal error: (<n>)' line: 4111 (RMA address verification failed) means the peer "
              "rejected a remote key/address (a peer that restarted or stale agent metadata: restart prefill and "
              "decode together, same NIXL version on both); otherwise check the EFA installer / libfabric pair and "
              "`fi_info -p efa` in the pod"),
    ErrorCode("FI_CALL_FAILED", "a libfabric call failed or returned a negative error code",
              "the number is -errno: -12 ENOMEM (raise the memlock ulimit and the pod memory limit), -13 EACCES "
              "(pod not privileged / no access to /dev/infiniband), -22 EINVAL (mismatched peer address or "
              "attributes), -110 ETIMEDOUT (peer unreachable: security group must allow all traffic to itself)"),
    ErrorCode("NO_GPUDIRECT_RAIL", "a LIBFABRIC rail has no FI_HMEM (GPUDirect RDMA) support",
              "GPU memory on that rail is staged through host memory: use the efa provider with FI_HMEM (EFA installer "
              "with GPUDirect, FI_EFA_USE_DEVICE_RDMA=1, the nvidia peermem / dmabuf support on the node); a tcp or "
              "sockets rail never has it"),
    ErrorCode("NIXL_REMOTE_DISCONNECT", "NIXL lost the remote agent (NIXL_ERR_REMOTE_DISCONNECT)",
              "the peer process died or restarted, or its endpoint failed: read the peer pod's log at the same time "
              "(kubectl logs --previous), then check the transport errors just before this line"),
    ErrorCode("NIXL_REGISTER_FAILED", "NIXL could not register the memory with any backend",
              "the backend cannot handle this memory type (VRAM with a UCX without CUDA transports, or a provider "
              "without FI_HMEM): fix the transport first (see the UCX/libfabric lines before it)"),
    ErrorCode("NIXL_HANDSHAKE_FAILED", "the vLLM NixlConnector handshake with the remote engine failed",
              "check the side channel between the pods (VLLM_NIXL_SIDE_CHANNEL_HOST is the pod IP, the port is open, "
              "no NetworkPolicy blocks it) and that both engines run the same model, dtype and NIXL version"),
    ErrorCode("KV_TRANSFER_FAILED", "a NIXL KV-cache transfer failed in vLLM",
              "read the failure type and the transport errors before it; with kv_load_failure_policy=recompute vLLM "
              "hides this behind a local prefill (set \"fail\" where you verify)"),
    ErrorCode("ENGINE_DEAD", "the inference engine process failed to start or died",
              "scroll up to the first error or traceback before this line: it names the cause (memory, NIXL, CUDA)"),
    ErrorCode("PROCESS_ABORTED", "the process aborted or crashed (abort, segfault, fatal Python error)",
              "the lines just before it name the failing library; run again with NIXL_LOG_LEVEL=INFO and "
              "FI_LOG_LEVEL=warn to see it"),
    ErrorCode("K8S_CRASHLOOP", "a container keeps crashing (CrashLoopBackOff)",
              "read the previous container's log (kubectl logs POD --previous) and its Last State / Exit Code in "
              "kubectl describe pod"),
    ErrorCode("GENERIC_ERROR", "an error line", "read the evidence line and the lines before it"),
)}



# The failure taxonomy: which layer a component belongs to (an error no signature names is "unrecognised error in
# <layer>", never dropped).
LAYER_OF: dict[str | None, str] = {
    "nixl": "nixl", "libfabric": "libfabric (EFA provider)", "ucx": "ucx", "vllm": "engine (vLLM)",
    "trtllm": "engine (TensorRT-LLM)", "sglang": "engine (SGLang)", "python": "engine (Python process)",
    "dynamo": "dynamo", "kubernetes": "kubernetes", "nixlbench": "nixlbench", None: "unknown layer",
}
# Named codes' layers (the component of the line that carried them can be a wrapper, e.g. vLLM printing NIXL errors).
CODE_LAYER: dict[str, str] = {
    "OOM_KILLED": "kubernetes", "K8S_CRASHLOOP": "kubernetes", "NIXL_ERR": "nixl", "NIXL_BACKEND_CREATE_FAILED": "nixl",
    "NIXL_REMOTE_METADATA_MISSING": "nixl", "RAIL_DESERIALIZE_FAILED": "nixl", "NIXL_REMOTE_DISCONNECT": "nixl",
    "NIXL_REGISTER_FAILED": "nixl", "NO_GPUDIRECT_RAIL": "nixl", "EFA_EAGAIN_SAME_NODE": "libfabric (EFA provider)",
    "EFA_CAPS_UNSUPPORTED": "libfabric (EFA provider)", "EFA_PROVIDER_ABORT": "libfabric (EFA provider)",
    "EFA_INTERNAL_ABORT": "libfabric (EFA provider)", "FI_CALL_FAILED": "libfabric (EFA provider)",
    "UCX_UNREACHABLE": "ucx", "UCX_CUDA_TRANSPORTS_MISSING": "ucx", "TRTLLM_TRANSFER_AGENT_ASSERT": "engine (TensorRT-LLM)",
    "TRTLLM_BACKEND_FALLBACK": "engine (TensorRT-LLM)", "NIXL_HANDSHAKE_FAILED": "engine (vLLM)",
    "KV_TRANSFER_FAILED": "engine (vLLM)", "ENGINE_DEAD": "engine", "PROCESS_ABORTED": "process",
    "DYNAMO_CONNECTOR_CONFLICT": "dynamo", "DYNAMO_ETCD_UNREACHABLE": "dynamo",
}
