"""Dependency order for apply (CRDs, namespaces, RBAC, secrets, config, storage, services, workloads, DGDs) and its
reverse for delete. Pure functions on manifest dicts.

Example:
    >>> objs = [{"kind": "DynamoGraphDeployment"}, {"kind": "Secret"}, {"kind": "Namespace"}]
    >>> [o["kind"] for o in sort_for_apply(objs)]
    ['Namespace', 'Secret', 'DynamoGraphDeployment']
    >>> [o["kind"] for o in sort_for_delete(objs)]
    ['DynamoGraphDeployment', 'Secret', 'Namespace']
"""

from __future__ import annotations

from typing import Any

from workshop_lib.k8s import DGD_KIND

RANK: dict[str, int] = {
    "CustomResourceDefinition": 0,
    "Namespace": 1,
    "ServiceAccount": 2,
    "ClusterRole": 2,
    "Role": 2,
    "ClusterRoleBinding": 3,
    "RoleBinding": 3,
    "Secret": 4,
    "ConfigMap": 5,
    "StorageClass": 5,
    "PersistentVolume": 5,
    "PersistentVolumeClaim": 6,
    "Service": 7,
    "DaemonSet": 8,
    "Deployment": 8,
    "StatefulSet": 8,
    "Job": 8,
    "Pod": 8,
    DGD_KIND: 9,
}
DEFAULT_RANK = 8  # unknown kinds go with the workloads


def rank(obj: dict[str, Any]) -> int:
    """The apply rank of ``obj`` (lower first).

    >>> rank({"kind": "CustomResourceDefinition"}), rank({"kind": "Widget"})
    (0, 8)
    """
    return RANK.get(str(obj.get("kind", "")), DEFAULT_RANK)


def sort_for_apply(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Objects in apply order (stable within a rank)."""
    return sorted(objs, key=rank)


def sort_for_delete(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Objects in delete order: the reverse ranks (stable within a rank)."""
    return sorted(objs, key=rank, reverse=True)
