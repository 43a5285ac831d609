"""The workshop's lint rules: mistakes that pass the CRD schema but break the lesson on a real cluster.

Each rule has a code, a message and a fix (FACTS.md gives the reasons):

| code  | rule |
|-------|------|
| WL001 | worker memory under 128Gi with NIXL LIBFABRIC on p5.48xlarge (OOMKilled at NIXL init) |
| WL002 | an env var the pinned stack does not read (``FI_EFA_ENABLE_SHM``, ``NIXL_BACKEND``...; table and sources in
|       | :mod:`workshop_lib.manifests.envaudit`) |
| WL003 | backend mechanism broken: vLLM ``--kv-transfer-config`` without ``--connector none``; bad TRT-LLM value |
| WL004 | prefill and decode able to land on one node in a cross-node graph |
| WL005 | EFA requested without ``privileged`` |
| WL006 | an unpinned or ``:latest`` image |
| WL007 | DGD name plus service name over 45 characters |
| WL008 | duplicate ``DYN_SYSTEM_PORT`` in the multi-DGD pattern |
| WL009 | ``DYN_SYSTEM_PORT`` other than 9090 (pod Running but never Ready) |
| WL010 | NIXL LIBFABRIC on a stock Dynamo runtime image (no libfabric in it: the plugin cannot load) |
| WL011 | the ``REPLACE_WITH_YOUR_EFA_IMAGE`` placeholder still in place (warning: replace before applying) |
| WL012 | TRT-LLM with NIXL LIBFABRIC: Dynamo 0.9.0 supports only UCX in its TRT-LLM runtime image (warning) |
| WL013 | a NIXL LIBFABRIC worker without EFA devices (NIXL falls back to a ``sockets`` device, GPU memory as host) |
| WL014 | a worker mounting the host's ``/dev/infiniband`` (can hide EFA where other RDMA NICs exist; warning) |
| WL015 | a silent fallback left on: frontend without ``--enforce-disagg``, vLLM ``kv_load_failure_policy`` not ``fail``
|       | (warning: a broken transfer then passes for a disaggregated one) |

Example:
    >>> from workshop_lib.manifests.documents import load_text
    >>> docs = load_text("kind: Pod\\nmetadata: {name: p}\\nspec: {containers: [{name: c, image: 'busybox:latest'}]}")
    >>> [f.code for f in lint(docs)]
    ['WL006']
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from workshop_lib import versions
from workshop_lib.config import LIBFABRIC_MIN_MEMORY, parse_quantity
from workshop_lib.errors import ConfigError
from workshop_lib.k8s import DGD_KIND, INSTANCE_LABEL
from workshop_lib.manifests.documents import Doc
from workshop_lib.manifests.envaudit import unread_env
from workshop_lib.manifests.findings import Finding, finding
from workshop_lib.manifests.views import EFA_RESOURCE, Service, container_efa, containers, pod_specs, services

MAX_NAME = 45
PROBE_PORT = "9090"
EFA_IMAGE_FIX = ("build the 0.9.0 EFA image from the Dynamo 0.9.0 tree with `container/build.sh --framework "
                 "vllm|trtllm --target runtime --make-efa`, push it and set worker_image (notebook WORKER_IMAGE) to "
                 "it; check a worker pod with `fi_info -p efa` (lists efa) and `ldd $NIXL_PLUGIN_DIR/"
                 "libplugin_LIBFABRIC.so` (no 'not found'), or use UCX")
TRTLLM_UCX_ONLY = ("Dynamo 0.9.0's TRT-LLM docs (docs/backends/trtllm/kv-cache-transfer.md) support only UCX in "
                   "tensorrtllm-runtime:0.9.0; the seed workshop's published LIBFABRIC numbers came from a TRT-LLM image "
                   "with a patched NIXL 0.8.0, not from this stack")
# TRT-LLM's NixlTransferAgent accepts exactly these (kSUPPORTED_BACKENDS in transferAgent.cpp; anything else: WARNING + UCX)
TRTLLM_BACKENDS = ("UCX", "LIBFABRIC")
BACKEND_FIX = {
    "vllm": "pass --connector none --kv-transfer-config "
            "'{\"kv_connector\":\"NixlConnector\",\"kv_role\":\"kv_both\",\"kv_connector_extra_config\":{\"backends\":[\"LIBFABRIC\"]}}'",
    "trtllm": "set TRTLLM_NIXL_KVCACHE_BACKEND=LIBFABRIC (or UCX) with cache_transceiver_config.backend: NIXL",
}


def _bytes(value: str) -> float | None:
    try:
        return parse_quantity(value)
    except ConfigError:
        return None


def _p5_like(svc: Service) -> bool:
    inst = (svc.pod.get("nodeSelector") or {}).get(INSTANCE_LABEL)
    return inst == "p5.48xlarge" if inst else svc.quantity(EFA_RESOURCE) is not None


def rule_libfabric_memory(docs: list[Doc]) -> Iterable[Finding]:
    floor = parse_quantity(LIBFABRIC_MIN_MEMORY)
    for doc in docs:
        for svc in services(doc):
            if svc.kv_backend != "LIBFABRIC" or not _p5_like(svc):
                continue
            mem = svc.quantity("memory")
            if mem and (b := _bytes(mem[1])) is not None and b < floor:
                yield finding(doc, "WL001", "error", mem[0],
                              f"worker memory {mem[1]} < {LIBFABRIC_MIN_MEMORY} with NIXL LIBFABRIC on p5.48xlarge "
                              "(33 rails register ~1 GiB at init; 64Gi was OOMKilled, exit 137)",
                              f"set worker_memory to {LIBFABRIC_MIN_MEMORY} or more (workshop render --set worker_memory=128Gi)")


def _container_env(c: dict[str, Any]) -> dict[str, tuple[int, str | None]]:
    out: dict[str, tuple[int, str | None]] = {}
    for i, e in enumerate(c.get("env") or []):
        if isinstance(e, dict) and "name" in e:
            out[str(e["name"])] = (i, None if "value" not in e else str(e["value"]))
    return out


def rule_unread_env(docs: list[Doc]) -> Iterable[Finding]:
    """WL002: every env var :mod:`~workshop_lib.manifests.envaudit` lists as not read by the pinned stack."""
    for doc in docs:
        if doc.kind == DGD_KIND:
            for svc in services(doc):
                env = svc.env()
                for u in unread_env({k: v[1] or "" for k, v in env.items()}, svc.framework or None):
                    yield finding(doc, "WL002", "error", env[u.name][0], u.message(), u.fix())
            continue
        for path, c, _ in containers(doc):
            cenv = _container_env(c)
            for u in unread_env({k: v[1] or "" for k, v in cenv.items()}):
                yield finding(doc, "WL002", "error", (*path, "env", cenv[u.name][0]), u.message(), u.fix())


def _libfabric_containers(doc: Doc) -> Iterable[tuple[tuple, dict[str, Any], str]]:
    """``(path, container, framework)`` of every container that moves data with NIXL LIBFABRIC."""
    if doc.kind == DGD_KIND:
        for svc in services(doc):
            if svc.role or svc.spec.get("componentType") == "worker":
                if svc.kv_backend == "LIBFABRIC":
                    yield (*svc.path, "extraPodSpec", "mainContainer"), svc.main, svc.framework
        return
    for path, c, _ in containers(doc):
        argv = [str(a) for a in (c.get("command") or []) + (c.get("args") or [])]
        if any(a == "--backend" and nxt.upper() == "LIBFABRIC" for a, nxt in zip(argv, argv[1:], strict=False)):
            yield path, c, ""


def rule_libfabric_image(docs: list[Doc]) -> Iterable[Finding]:
    """WL010 (stock image, error) and WL011 (the placeholder, warning) for LIBFABRIC containers."""
    for doc in docs:
        for path, c, _fw in _libfabric_containers(doc):
            image = str(c.get("image") or "")
            if versions.stock_runtime_without_libfabric(image):
                yield finding(doc, "WL010", "error", (*path, "image"),
                              f"NIXL LIBFABRIC on the stock image {image}: its runtime stage has no libfabric (and no "
                              "hwloc), so the LIBFABRIC plugin cannot load", EFA_IMAGE_FIX)
            elif versions.is_efa_placeholder(image):
                yield finding(doc, "WL011", "warning", (*path, "image"),
                              f"{image} is a placeholder: this LIBFABRIC graph needs an image built with EFA",
                              EFA_IMAGE_FIX)


def rule_trtllm_libfabric(docs: list[Doc]) -> Iterable[Finding]:
    """WL012: TRT-LLM over NIXL LIBFABRIC, which Dynamo 0.9.0 does not support in its TRT-LLM runtime image."""
    for doc in docs:
        for svc in services(doc):
            if svc.framework == "trtllm" and svc.role and svc.kv_backend == "LIBFABRIC":
                path = (svc.env().get("TRTLLM_NIXL_KVCACHE_BACKEND") or (svc.path, None))[0]
                yield finding(doc, "WL012", "warning", path, f"TRT-LLM with NIXL LIBFABRIC: {TRTLLM_UCX_ONLY}",
                              "use UCX with TRT-LLM on this stack, or vLLM for LIBFABRIC; if you keep it, build the "
                              "TRT-LLM image with EFA and check the worker log for 'Backend LIBFABRIC was instantiated'")


def rule_libfabric_without_efa(docs: list[Doc]) -> Iterable[Finding]:
    """WL013: a LIBFABRIC worker that requests no EFA device."""
    for doc in docs:
        for svc in services(doc):
            if svc.role and svc.kv_backend == "LIBFABRIC" and not svc.quantity(EFA_RESOURCE):
                yield finding(doc, "WL013", "error", (*svc.path, "resources"),
                              f"{svc.name} uses NIXL LIBFABRIC but requests no {EFA_RESOURCE}: NIXL then finds only a "
                              "'sockets' device (TCP fallback) and registers GPU memory as host memory",
                              "use the cross-node profile for LIBFABRIC (it adds the efa overlay), or UCX on one node")


def _host_infiniband(spec: dict[str, Any]) -> list[tuple[int, str]]:
    out = []
    for i, v in enumerate(spec.get("volumes") or []):
        hp = str(((v or {}).get("hostPath") or {}).get("path") or "") if isinstance(v, dict) else ""
        if hp.rstrip("/") == "/dev/infiniband" or hp.startswith("/dev/infiniband/"):
            out.append((i, hp))
    return out


def rule_host_infiniband(docs: list[Doc]) -> Iterable[Finding]:
    """WL014: a worker pod mounting the host's /dev/infiniband (the EFA device plugin's own DaemonSet is exempt)."""
    for doc in docs:
        if doc.kind == "DaemonSet":
            continue
        for path, spec in pod_specs(doc):
            for i, hp in _host_infiniband(spec):
                yield finding(doc, "WL014", "warning", (*path, "volumes", i),
                              f"mounts the host's {hp}: the container then sees every RDMA device of the node, which "
                              "can hide the EFA devices the pod was given where other RDMA NICs exist",
                              f"remove the hostPath volume and request {EFA_RESOURCE} instead (the device plugin "
                              "mounts the devices it assigns)")


def _vllm_failure_policy(svc: Service) -> str:
    raw = svc.arg_value("--kv-transfer-config")
    try:
        return str(json.loads(raw).get("kv_load_failure_policy", "recompute")) if raw else "recompute"
    except (ValueError, AttributeError):
        return "recompute"


def rule_silent_fallbacks(docs: list[Doc]) -> Iterable[Finding]:
    """WL015: a disaggregated graph that can fall back silently (frontend to decode-only, vLLM to local recompute)."""
    for doc in docs:
        svcs = services(doc)
        if not any(s.role == "prefill" for s in svcs):
            continue
        for svc in svcs:
            if svc.spec.get("componentType") == "frontend" and "dynamo.frontend" in " ".join(svc.argv) \
                    and "--enforce-disagg" not in svc.argv:
                yield finding(doc, "WL015", "warning", (*svc.path, "extraPodSpec", "mainContainer", "args"),
                              "frontend without --enforce-disagg: with no active prefill router Dynamo 0.9.0 serves "
                              "decode-only, and a benchmark reports aggregated numbers as disaggregated ones",
                              "add --enforce-disagg to the frontend args")
            if svc.framework == "vllm" and svc.role and svc.arg_value("--kv-transfer-config") \
                    and _vllm_failure_policy(svc) != "fail":
                yield finding(doc, "WL015", "warning", (*svc.path, "extraPodSpec", "mainContainer", "args"),
                              f"vLLM kv_load_failure_policy is {_vllm_failure_policy(svc)!r}: a failed KV load is "
                              "recomputed locally and the transfer failure stays hidden",
                              'add "kv_load_failure_policy":"fail" to --kv-transfer-config')


def rule_backend_mechanism(docs: list[Doc]) -> Iterable[Finding]:
    for doc in docs:
        for svc in services(doc):
            if svc.framework == "vllm" and svc.arg_value("--kv-transfer-config") and svc.arg_value("--connector") != "none":
                yield finding(doc, "WL003", "error", (*svc.path, "extraPodSpec", "mainContainer", "args"),
                              "--kv-transfer-config without --connector none: Dynamo refuses to start "
                              "('Cannot specify both --kv-transfer-config and --connector')", "add --connector none")
            value = (svc.env().get("TRTLLM_NIXL_KVCACHE_BACKEND") or ((), None))
            if svc.framework == "trtllm" and value[1] is not None and value[1] not in TRTLLM_BACKENDS:
                yield finding(doc, "WL003", "error", value[0],
                              f"TRTLLM_NIXL_KVCACHE_BACKEND={value[1]!r} is not a backend TRT-LLM knows: it logs the "
                              f"WARNING 'Unsupported NIXL backend: {value[1]}, fallback to UCX' and uses UCX",
                              "use LIBFABRIC or UCX, in upper case (TRT-LLM compares the value exactly)")


def _group(svc: Service) -> str:
    return str(svc.spec.get("dynamoNamespace") or f"{svc.doc.file}:{svc.doc.name}")


def _cross_node(svcs: list[Service]) -> bool:
    labels = lambda s: (s.doc.data.get("metadata") or {}).get("labels") or {}  # noqa: E731
    return any(str(labels(s).get("workshop.nvidia.com/profile", "")).startswith("cross-node") for s in svcs) or any(
        s.quantity(EFA_RESOURCE) for s in svcs if s.role)


def _host(svc: Service) -> str | None:
    return svc.pod.get("nodeName") or (svc.pod.get("nodeSelector") or {}).get("kubernetes.io/hostname")


def _anti_host(svc: Service) -> bool:
    terms = ((svc.pod.get("affinity") or {}).get("podAntiAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or []
    return any(isinstance(t, dict) and t.get("topologyKey") == "kubernetes.io/hostname" for t in terms)


def rule_same_node(docs: list[Doc]) -> Iterable[Finding]:
    groups: dict[str, list[Service]] = defaultdict(list)
    for doc in docs:
        for svc in services(doc):
            groups[_group(svc)].append(svc)
    for svcs in groups.values():
        prefill = [s for s in svcs if s.role == "prefill"]
        decode = [s for s in svcs if s.role == "decode"]
        if not prefill or not decode or not _cross_node(svcs):
            continue
        for p in prefill:
            for d in decode:
                hp, hd = _host(p), _host(d)
                apart = (hp and hd and hp != hd) or (not (hp and hd) and (_anti_host(p) or _anti_host(d)))
                if not apart:
                    what = f"both pinned to {hp!r}" if hp and hp == hd else "no node pinning or hostname anti-affinity"
                    yield finding(d.doc, "WL004", "error", (*d.path, "extraPodSpec"),
                                  f"{p.name} and {d.name} can land on one node ({what}); same-node EFA gives "
                                  "'fi_read still retrying EAGAIN'",
                                  "set prefill_node/decode_node to two nodes in one AZ, or keep the cross-node overlay's "
                                  "pod anti-affinity (topologyKey kubernetes.io/hostname)")


def rule_efa_privileged(docs: list[Doc]) -> Iterable[Finding]:
    fix = "set securityContext.privileged: true on the container (IPC_LOCK alone cannot register GPU memory)"
    for doc in docs:
        for svc in services(doc):
            if (efa := svc.quantity(EFA_RESOURCE)) and not svc.privileged:
                yield finding(doc, "WL005", "error", efa[0], f"{svc.name} requests {efa[1]} EFA devices but is not privileged", fix)
        if doc.kind != DGD_KIND:
            for path, c, _ in containers(doc):
                if container_efa(c) and not (c.get("securityContext") or {}).get("privileged"):
                    yield finding(doc, "WL005", "error", path, f"container {c.get('name', '?')} requests EFA but is not privileged", fix)


def image_problem(image: str) -> str | None:
    """Why ``image`` is not pinned, or None when it is (a tag other than latest, or a digest).

    >>> image_problem("nats:latest"), image_problem("nvcr.io/nvidia/ai-dynamo/vllm-runtime:0.9.0")
    ("tag 'latest' moves", None)
    """
    if "@sha256:" in image:
        return None
    name = image.rsplit("/", 1)[-1]
    if ":" not in name:
        return "no tag (means latest)"
    tag = name.rsplit(":", 1)[1]
    if not tag or tag == "latest":
        return f"tag {tag!r} moves"
    return None


def rule_unpinned_image(docs: list[Doc]) -> Iterable[Finding]:
    for doc in docs:
        for path, c, _ in containers(doc):
            image = c.get("image")
            if isinstance(image, str) and (why := image_problem(image)):
                yield finding(doc, "WL006", "error", (*path, "image"), f"image {image!r} is not pinned: {why}",
                              "use a fixed tag from workshop_lib/versions.py (workshop versions --kind image)")


def rule_name_length(docs: list[Doc]) -> Iterable[Finding]:
    for doc in docs:
        for svc in services(doc):
            full = f"{doc.name}-{svc.name.lower()}"
            if len(full) > MAX_NAME:
                yield finding(doc, "WL007", "error", svc.path,
                              f"{full!r} is {len(full)} characters (> {MAX_NAME}): operator-made names get too long",
                              "shorten the DGD name or the service name")


def _system_ports(docs: list[Doc]) -> list[tuple[Service, tuple, str]]:
    out = []
    for doc in docs:
        for svc in services(doc):
            env = svc.env().get("DYN_SYSTEM_PORT")
            if env and env[1] is not None:
                out.append((svc, env[0], env[1]))
    return out


def rule_duplicate_ports(docs: list[Doc]) -> Iterable[Finding]:
    seen: dict[tuple[str, str], Service] = {}
    for svc, path, port in _system_ports(docs):
        key = (_group(svc), port)
        if key in seen:
            yield finding(svc.doc, "WL008", "error", path,
                          f"DYN_SYSTEM_PORT {port} is also used by {seen[key].doc.name}/{seen[key].name} in the same Dynamo namespace",
                          "give each DGD its own port, e.g. 9090 frontend, 9091 prefill, 9190 decode")
        else:
            seen[key] = svc


def rule_probe_port(docs: list[Doc]) -> Iterable[Finding]:
    for svc, path, port in _system_ports(docs):
        if port != PROBE_PORT:
            yield finding(svc.doc, "WL009", "warning", path,
                          f"DYN_SYSTEM_PORT {port}: the operator probes {PROBE_PORT}, so the pod stays Running but not Ready "
                          "(inference still works)", "expect Ready=false, or use the single-DGD layout")


RULES: dict[str, Callable[[list[Doc]], Iterable[Finding]]] = {
    "WL001": rule_libfabric_memory,
    "WL002": rule_unread_env,
    "WL003": rule_backend_mechanism,
    "WL004": rule_same_node,
    "WL005": rule_efa_privileged,
    "WL006": rule_unpinned_image,
    "WL007": rule_name_length,
    "WL008": rule_duplicate_ports,
    "WL009": rule_probe_port,
    "WL010": rule_libfabric_image,
    "WL012": rule_trtllm_libfabric,
    "WL013": rule_libfabric_without_efa,
    "WL014": rule_host_infiniband,
    "WL015": rule_silent_fallbacks,
}


def lint(docs: list[Doc]) -> list[Finding]:
    """Every lint finding over ``docs`` (all files together: multi-DGD rules look across documents)."""
    return [f for rule in RULES.values() for f in rule(docs)]
