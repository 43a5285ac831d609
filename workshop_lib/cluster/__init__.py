"""The EKS target: talk to a real cluster from Python.

- :class:`Cluster` (``client``): connect from kubeconfig/context, generic get/list/apply/delete/watch on any kind.
- ``order``: apply in dependency order, delete in reverse.
- ``wait``: watch-based waits for a DGD or pods, with tqdm progress and problems surfaced as they happen.
- ``diagnose``: pod status and events -> problems with fixes (ImagePullBackOff, Insufficient EFA/hugepages/memory,
  CrashLoopBackOff, OOMKilled and the 128Gi rule).
- ``podlogs``: logs by Dynamo component; ``portforward``: local URL to the frontend; ``teardown``.

Example:
    >>> from workshop_lib.cluster import Cluster, apply_all, wait_for_dgd, port_forward  # doctest: +SKIP
    >>> cl = Cluster.connect(context="my-eks")  # doctest: +SKIP
    >>> apply_all(cl, docs); wait_for_dgd(cl, "vllm-disagg", "dynamo-workshop")  # doctest: +SKIP
"""

from workshop_lib.cluster.client import FIELD_MANAGER, MANAGED_BY, Cluster, ResourceInfo, describe, translate
from workshop_lib.cluster.diagnose import Problem, dgd_ready, event_problem, pod_problems, pod_ready, ready_counts
from workshop_lib.cluster.order import rank, sort_for_apply, sort_for_delete
from workshop_lib.cluster.podlogs import component_logs, component_pods, component_selector, follow_log, pod_log
from workshop_lib.cluster.portforward import port_forward, service_target
from workshop_lib.cluster.teardown import apply_all, delete_all, managed_objects, teardown
from workshop_lib.cluster.wait import WaitState, wait_for_dgd, wait_for_pod_phase, wait_for_pods, wait_for_pods_gone

__all__ = [
    "FIELD_MANAGER", "MANAGED_BY", "Cluster", "ResourceInfo", "describe", "translate", "Problem", "dgd_ready",
    "event_problem", "pod_problems", "pod_ready", "ready_counts", "rank", "sort_for_apply", "sort_for_delete",
    "component_logs", "component_pods", "component_selector", "follow_log", "pod_log", "port_forward",
    "service_target", "apply_all", "delete_all", "managed_objects", "teardown", "WaitState", "wait_for_dgd",
    "wait_for_pods", "wait_for_pod_phase", "wait_for_pods_gone",
]
