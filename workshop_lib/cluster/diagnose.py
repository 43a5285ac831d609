"""Turn pod statuses and events into problems an attendee can act on (pure functions).

Recognised: ImagePullBackOff / ErrImagePull, Pending for ``Insufficient vpc.amazonaws.com/efa``, hugepages, memory,
``nvidia.com/gpu`` or cpu, CrashLoopBackOff, and OOMKilled (exit 137), explained by the 128Gi rule for NIXL LIBFABRIC
on many-EFA instances (FACTS.md: the seed workshop's worker OOMKilled at 64Gi during LIBFABRIC init).

Example:
    >>> ev = {"reason": "FailedScheduling", "message": "0/3 nodes are available: 2 Insufficient vpc.amazonaws.com/efa.",
    ...       "involvedObject": {"kind": "Pod", "name": "p", "namespace": "ns"}}
    >>> event_problem(ev).kind
    'Insufficient vpc.amazonaws.com/efa'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from workshop_lib.config import LIBFABRIC_MIN_MEMORY, parse_quantity
from workshop_lib.errors import ConfigError
from workshop_lib.k8s import EFA_RESOURCE, GPU_RESOURCE


@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong with a pod: what, where, the evidence and the fix. ``fatal`` ones end a wait early."""

    kind: str
    obj: str
    message: str
    fix: str
    fatal: bool = False

    def __str__(self) -> str:
        return f"{self.obj}: {self.kind}: {self.message}. Fix: {self.fix}"


_INSUFFICIENT = re.compile(r"Insufficient ([\w./-]+)")
_INSUFFICIENT_FIX = {
    EFA_RESOURCE: "no node has that many free EFA devices: check the EFA device plugin DaemonSet runs on "
    "the GPU nodes (workshop preflight), lower efa_per_worker, or free the EFA devices other pods hold",
    "hugepages-2Mi": "pre-allocate 2Mi hugepages on the GPU nodes (node group user data: vm.nr_hugepages) or lower "
    "hugepages_2mi in the config",
    "hugepages-1Gi": "pre-allocate 1Gi hugepages on the GPU nodes or drop the request",
    "memory": "lower worker_memory, or use a larger instance / free node memory (kubectl describe node)",
    GPU_RESOURCE: "free GPUs (kubectl get pods -A -o wide on the GPU nodes) or lower gpus_per_worker",
    "cpu": "lower worker_cpu or free CPU on the GPU nodes",
}


def memory_explanation(limit: str | None) -> str:
    """Why exit 137 happened, using the 128Gi rule.

    >>> "64Gi < 128Gi" in memory_explanation("64Gi")
    True
    """
    rule = (f"NIXL LIBFABRIC opens one rail per EFA device plus a control rail (33 on p5.48xlarge), each with a "
            f"32 MiB registered pool, about 1 GiB of pinned host memory per agent before provider buffers; "
            f"the seed workshop's worker was OOMKilled at 64Gi and ran at {LIBFABRIC_MIN_MEMORY}")
    try:
        below = limit is not None and parse_quantity(limit) < parse_quantity(LIBFABRIC_MIN_MEMORY)
    except ConfigError:
        below = False
    if below:
        return f"memory limit {limit} < {LIBFABRIC_MIN_MEMORY} required for LIBFABRIC on many-EFA nodes: {rule}"
    return f"memory limit {limit or 'unset'} was exceeded; {rule}"


def _limit(pod: dict[str, Any], container: str) -> str | None:
    for c in (pod.get("spec") or {}).get("containers", []):
        if c.get("name") == container:
            return ((c.get("resources") or {}).get("limits") or {}).get("memory")
    return None


def pod_problems(pod: dict[str, Any]) -> list[Problem]:
    """Problems visible in one pod's status (waiting reasons, last termination, unschedulable condition)."""
    meta = pod.get("metadata") or {}
    where = f"pod {meta.get('namespace', '')}/{meta.get('name', '')}"
    status = pod.get("status") or {}
    out: list[Problem] = []
    for cs in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or []):
        name = cs.get("name", "")
        waiting = (cs.get("state") or {}).get("waiting") or {}
        last = (cs.get("lastState") or {}).get("terminated") or {}
        term = (cs.get("state") or {}).get("terminated") or {}
        for t in (term, last):
            if t.get("reason") == "OOMKilled" or t.get("exitCode") == 137:
                out.append(Problem("OOMKilled", f"{where} container {name}",
                                   f"killed with exit code 137 (out of memory): {memory_explanation(_limit(pod, name))}",
                                   f"set worker_memory to {LIBFABRIC_MIN_MEMORY} (WorkshopConfig.worker_memory), "
                                   "render and apply again", fatal=True))
                break
        reason = waiting.get("reason", "")
        if reason in ("ImagePullBackOff", "ErrImagePull", "InvalidImageName"):
            out.append(Problem(reason, f"{where} container {name}", waiting.get("message") or f"cannot pull {cs.get('image')}",
                               "check the image name and tag (workshop versions), that it exists for 0.9.0 (no -efa "
                               "images were published for 0.9.0) and the node can reach the registry (imagePullSecrets "
                               "for private registries)", fatal=True))
        elif reason == "CrashLoopBackOff" and not any(p.kind == "OOMKilled" for p in out):
            out.append(Problem("CrashLoopBackOff", f"{where} container {name}",
                               f"restarted {cs.get('restartCount', 0)} times; last exit code {last.get('exitCode', '?')}",
                               f"read the crash: cluster.component_logs(..., previous=True) or kubectl logs -n "
                               f"{meta.get('namespace', '')} {meta.get('name', '')} -c {name} --previous", fatal=True))
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            p = scheduling_problem(where, cond.get("message") or "")
            if p:
                out.append(p)
    return out


def scheduling_problem(where: str, message: str) -> Problem | None:
    """A Pending pod's scheduler message -> a problem for the first ``Insufficient X`` it names."""
    m = _INSUFFICIENT.search(message)
    if not m:
        return None
    res = m[1].rstrip(".,")
    return Problem(f"Insufficient {res}", where, f"Pending: {message.strip()}",
                   _INSUFFICIENT_FIX.get(res, f"free or add {res} on the nodes"))


def event_problem(event: dict[str, Any]) -> Problem | None:
    """A Warning event -> a problem, or None for events that are not one of the recognised failures."""
    inv = event.get("involvedObject") or {}
    where = f"{str(inv.get('kind', '')).lower()} {inv.get('namespace', '')}/{inv.get('name', '')}"
    reason, msg = event.get("reason", ""), event.get("message", "") or ""
    if reason == "FailedScheduling":
        return scheduling_problem(where, msg)
    if reason in ("Failed", "ErrImagePull") and ("pull" in msg.lower() or "image" in msg.lower()):
        return Problem("ImagePullBackOff", where, msg, "check the image name and tag (workshop versions) and registry access",
                       fatal=False)
    if reason == "BackOff" and "restarting failed container" in msg:
        return Problem("CrashLoopBackOff", where, msg, "read the previous container's log (previous=True)", fatal=False)
    if reason == "OOMKilling" or "OOMKilled" in msg:
        return Problem("OOMKilled", where, msg, f"set worker_memory to {LIBFABRIC_MIN_MEMORY}", fatal=False)
    return None


def pod_ready(pod: dict[str, Any]) -> bool:
    """True when the pod's Ready condition is True."""
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def ready_counts(pod: dict[str, Any]) -> tuple[int, int]:
    """``(ready containers, containers)`` as kubectl's READY column shows them (e.g. 2/2)."""
    cs = (pod.get("status") or {}).get("containerStatuses") or []
    total = len((pod.get("spec") or {}).get("containers") or []) or len(cs)
    return sum(1 for c in cs if c.get("ready")), total


def dgd_ready(dgd: dict[str, Any]) -> bool:
    """True when a DynamoGraphDeployment's ``Ready`` condition is True."""
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (dgd.get("status") or {}).get("conditions") or [])
