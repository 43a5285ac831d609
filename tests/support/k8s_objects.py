"""Builders of Kubernetes objects as complete as a real API server returns them.

The typed ``kubernetes`` client rejects objects missing required fields (``status.nodeInfo.bootID``, a container
status without ``imageID``, a DaemonSet without ``spec.template``), so every builder fills them.
"""

from __future__ import annotations

import uuid
from typing import Any

from tests.support.k8s_model import now_iso

GIB = 2**30


def _meta(name: str, namespace: str | None = None, labels: dict[str, str] | None = None,
          annotations: dict[str, str] | None = None) -> dict[str, Any]:
    m: dict[str, Any] = {"name": name, "uid": str(uuid.uuid4()), "creationTimestamp": now_iso(), "labels": labels or {}}
    if namespace is not None:
        m["namespace"] = namespace
    if annotations:
        m["annotations"] = annotations
    return m


def namespace(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(name, labels=labels),
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}


def node(name: str, instance_type: str = "p5.48xlarge", zone: str = "us-east-2a", gpus: int = 8, efa: int | None = 32,
         hugepages: str = "5120Mi", ready: bool = True, memory_gi: int = 2000) -> dict[str, Any]:
    """A GPU worker node as EKS reports it (labels, capacity/allocatable, nodeInfo)."""
    alloc = {"cpu": "191450m", "memory": f"{memory_gi * 1024 * 1024 - 2 * 1024 * 1024}Ki", "pods": "100",
             "ephemeral-storage": "95551679124", "hugepages-1Gi": "0", "hugepages-2Mi": hugepages,
             "nvidia.com/gpu": str(gpus)}
    if efa is not None:
        alloc["vpc.amazonaws.com/efa"] = str(efa)
    if not gpus:
        alloc.pop("nvidia.com/gpu")
    cap = dict(alloc, cpu="192", memory=f"{memory_gi * 1024 * 1024}Ki")
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": _meta(name, labels={
            "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
            "node.kubernetes.io/instance-type": instance_type, "topology.kubernetes.io/zone": zone,
            "topology.kubernetes.io/region": zone[:-1], "eks.amazonaws.com/nodegroup": "gpu"}),
        "spec": {"providerID": f"aws:///{zone}/i-0{uuid.uuid4().hex[:16]}"},
        "status": {
            "capacity": cap,
            "allocatable": alloc,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False", "reason": "KubeletReady",
                            "message": "kubelet is posting ready status", "lastHeartbeatTime": now_iso(),
                            "lastTransitionTime": now_iso()}],
            "addresses": [{"type": "InternalIP", "address": "10.0.1.10"}, {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {"architecture": "amd64", "bootID": str(uuid.uuid4()), "containerRuntimeVersion": "containerd://1.7.25",
                         "kernelVersion": "5.10.234-225.895.amzn2.x86_64", "kubeProxyVersion": "v1.31.4-eks-aeac579",
                         "kubeletVersion": "v1.31.4-eks-aeac579", "machineID": uuid.uuid4().hex,
                         "operatingSystem": "linux", "osImage": "Amazon Linux 2", "systemUUID": str(uuid.uuid4())},
        },
    }


def container_status(name: str, image: str, ready: bool, state: dict[str, Any] | None = None, restarts: int = 0,
                     last_state: dict[str, Any] | None = None) -> dict[str, Any]:
    st = state or ({"running": {"startedAt": now_iso()}} if ready else {"waiting": {"reason": "ContainerCreating"}})
    return {"name": name, "image": image, "imageID": f"{image.split(':')[0]}@sha256:{uuid.uuid4().hex}{uuid.uuid4().hex}",
            "ready": ready, "restartCount": restarts, "started": ready, "state": st, "lastState": last_state or {},
            **({"containerID": f"containerd://{uuid.uuid4().hex}"} if "waiting" not in st else {})}


def pod(name: str, ns: str, containers: list[str] | None = None, ready: bool = True, image: str = "nvcr.io/nvidia/ai-dynamo/vllm-runtime:0.9.0",
        labels: dict[str, str] | None = None, node_name: str | None = "gpu-node-1", phase: str | None = None,
        statuses: list[dict[str, Any]] | None = None, conditions: list[dict[str, Any]] | None = None,
        memory_limit: str | None = None) -> dict[str, Any]:
    """A pod; ``statuses`` overrides the container statuses built from ``ready``."""
    names = containers or ["main"]
    res = {"limits": {"memory": memory_limit}, "requests": {"memory": memory_limit}} if memory_limit else {}
    cs = statuses if statuses is not None else [container_status(c, image, ready) for c in names]
    all_ready = all(s["ready"] for s in cs) and bool(cs)
    conds = conditions or [
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": now_iso()},
        {"type": "Initialized", "status": "True", "lastTransitionTime": now_iso()},
        {"type": "ContainersReady", "status": str(all_ready), "lastTransitionTime": now_iso()},
        {"type": "Ready", "status": str(all_ready), "lastTransitionTime": now_iso()},
    ]
    spec: dict[str, Any] = {"containers": [{"name": c, "image": image, "resources": res} for c in names],
                            "restartPolicy": "Always", "schedulerName": "default-scheduler"}
    if node_name:
        spec["nodeName"] = node_name
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": _meta(name, ns, labels), "spec": spec,
        "status": {"phase": phase or ("Running" if node_name else "Pending"), "conditions": conds,
                   "containerStatuses": cs if node_name else [], "podIP": "10.0.1.20" if node_name else None,
                   "hostIP": "10.0.1.10" if node_name else None, "qosClass": "Burstable",
                   **({"startTime": now_iso()} if node_name else {})},
    }


def daemonset(name: str, ns: str, desired: int, ready: int, image: str = "docker.io/library/ubuntu:22.04") -> dict[str, Any]:
    sel = {"matchLabels": {"name": name}}
    return {
        "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": _meta(name, ns, {"name": name}),
        "spec": {"selector": sel, "template": {"metadata": {"labels": {"name": name}},
                                               "spec": {"containers": [{"name": name, "image": image}]}},
                 "updateStrategy": {"type": "RollingUpdate"}},
        "status": {"currentNumberScheduled": desired, "desiredNumberScheduled": desired, "numberMisscheduled": 0,
                   "numberReady": ready, "numberAvailable": ready, "updatedNumberScheduled": desired, "observedGeneration": 1},
    }


def crd(plural: str, kind: str, group: str = "nvidia.com", version: str = "v1alpha1", chart_version: str | None = "0.9.0",
        short_names: list[str] | None = None) -> dict[str, Any]:
    labels = {"app.kubernetes.io/managed-by": "Helm"}
    annotations = {"controller-gen.kubebuilder.io/version": "v0.16.4", "helm.sh/resource-policy": "keep"}
    if chart_version:
        labels["helm.sh/chart"] = f"dynamo-crds-{chart_version}"
        annotations |= {"meta.helm.sh/release-name": "dynamo-crds", "meta.helm.sh/release-namespace": "default"}
    names = {"kind": kind, "listKind": f"{kind}List", "plural": plural, "singular": kind.lower()}
    if short_names:
        names["shortNames"] = short_names
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": _meta(f"{plural}.{group}", labels=labels, annotations=annotations),
        "spec": {"group": group, "names": names, "scope": "Namespaced",
                 "versions": [{"name": version, "served": True, "storage": True,
                               "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]},
        "status": {"acceptedNames": names, "storedVersions": [version],
                   "conditions": [{"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                                   "message": "the initial names have been accepted", "lastTransitionTime": now_iso()}]},
    }


def secret(name: str, ns: str, keys: dict[str, str], labels: dict[str, str] | None = None) -> dict[str, Any]:
    """``keys`` values must already be base64 (as the API returns them)."""
    return {"apiVersion": "v1", "kind": "Secret", "metadata": _meta(name, ns, labels), "type": "Opaque", "data": keys}


def event(ns: str, obj_kind: str, obj_name: str, reason: str, message: str, type_: str = "Warning") -> dict[str, Any]:
    name = f"{obj_name}.{uuid.uuid4().hex[:16]}"
    return {"apiVersion": "v1", "kind": "Event", "metadata": _meta(name, ns),
            "involvedObject": {"kind": obj_kind, "name": obj_name, "namespace": ns, "apiVersion": "v1"},
            "reason": reason, "message": message, "type": type_, "count": 1, "firstTimestamp": now_iso(),
            "lastTimestamp": now_iso(), "source": {"component": "kubelet"}, "reportingComponent": "kubelet"}


def dgd(name: str, ns: str, ready: bool | None = None, labels: dict[str, str] | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeployment",
                           "metadata": _meta(name, ns, labels), "spec": {"backendFramework": "vllm", "services": {}}}
    if ready is not None:
        obj["status"] = dgd_status(ready)
    return obj


def dgd_status(ready: bool, message: str = "") -> dict[str, Any]:
    return {"state": "successful" if ready else "pending",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                            "reason": "AllResourcesAreReady" if ready else "SomeResourcesAreNotReady",
                            "message": message or ("All resources are ready" if ready else "Resources not ready: decode"),
                            "lastTransitionTime": now_iso()}]}


def terminated(reason: str, exit_code: int) -> dict[str, Any]:
    return {"terminated": {"reason": reason, "exitCode": exit_code, "startedAt": now_iso(), "finishedAt": now_iso(),
                           "containerID": f"containerd://{uuid.uuid4().hex}"}}
