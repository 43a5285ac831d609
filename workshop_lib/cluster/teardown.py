"""Apply many objects in dependency order, and tear down exactly what the workshop created.

:func:`apply_all` applies in rank order (CRDs, namespaces, secrets, config, workloads, DGDs). :func:`teardown`
deletes, in reverse order, the objects labelled ``app.kubernetes.io/managed-by: workshop`` (which
:meth:`Cluster.apply` adds) in the workshop namespace, plus the namespace itself only when the workshop created it.
Objects without the label are never touched; a second run finds nothing and deletes nothing.

Example:
    >>> teardown(cluster, "dynamo-workshop")  # doctest: +SKIP
    ['DynamoGraphDeployment dynamo-workshop/vllm-disagg', 'Secret dynamo-workshop/hf-token-secret', ...]
"""

from __future__ import annotations

from typing import Any

from tqdm.auto import tqdm

from workshop_lib.cluster.client import MANAGED_BY, MANAGED_BY_VALUE, Cluster, describe
from workshop_lib.cluster.order import sort_for_apply, sort_for_delete
from workshop_lib.errors import ClusterError
from workshop_lib.k8s import DGD_API, DGD_KIND

# Kinds the workshop creates in its namespace, swept by label (apiVersion, kind).
SWEPT_KINDS: list[tuple[str, str]] = [
    (DGD_API, DGD_KIND),
    ("batch/v1", "Job"),
    ("apps/v1", "Deployment"),
    ("v1", "Pod"),
    ("v1", "Service"),
    ("v1", "PersistentVolumeClaim"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
]
SELECTOR = f"{MANAGED_BY}={MANAGED_BY_VALUE}"


def apply_all(cluster: Cluster, objs: list[dict[str, Any]], *, force_conflicts: bool = False,
              progress: bool = True) -> list[dict[str, Any]]:
    """Server-side apply ``objs`` in dependency order; returns the stored objects in that order."""
    out = []
    for obj in tqdm(sort_for_apply(objs), desc="apply", unit="obj", disable=not progress):
        out.append(cluster.apply(obj, force_conflicts=force_conflicts))
    return out


def delete_all(cluster: Cluster, objs: list[dict[str, Any]]) -> list[str]:
    """Delete ``objs`` in reverse dependency order; returns what was deleted (absent ones are skipped)."""
    deleted = []
    for obj in sort_for_delete(objs):
        meta = obj.get("metadata") or {}
        ns = meta.get("namespace")
        if cluster.delete(obj["apiVersion"], obj["kind"], meta["name"], ns):
            deleted.append(describe(obj["kind"], meta["name"], ns))
    return deleted


def managed_objects(cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    """Objects labelled as created by the workshop in ``namespace`` (kinds the cluster does not serve are skipped)."""
    found: list[dict[str, Any]] = []
    for api_version, kind in SWEPT_KINDS:
        if not cluster.has_kind(api_version, kind):
            continue
        for o in cluster.list(api_version, kind, namespace, label_selector=SELECTOR):
            o.setdefault("apiVersion", api_version)
            o.setdefault("kind", kind)
            found.append(o)
    return found


def teardown(cluster: Cluster, namespace: str, *, delete_namespace: bool = True, dry_run: bool = False) -> list[str]:
    """Delete what the workshop created in ``namespace``; returns the deleted (or, with ``dry_run``, doomed) objects.

    The namespace goes too when ``delete_namespace`` and it carries the workshop label. Safe to run twice.
    """
    objs = managed_objects(cluster, namespace)
    ns_obj = cluster.get("v1", "Namespace", namespace)
    if delete_namespace and ns_obj and (ns_obj["metadata"].get("labels") or {}).get(MANAGED_BY) == MANAGED_BY_VALUE:
        objs.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    if dry_run:
        return [describe(o["kind"], o["metadata"]["name"], o["metadata"].get("namespace")) for o in sort_for_delete(objs)]
    try:
        return delete_all(cluster, objs)
    except ClusterError:
        raise
