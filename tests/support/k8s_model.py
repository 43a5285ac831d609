"""The mock API server's cluster model: resources it serves, objects, selectors, server-side apply, watch history.

Used by :mod:`tests.support.mock_k8s` (HTTP) and :mod:`tests.support.scenarios` (what is in the cluster).
"""

from __future__ import annotations

import copy
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

TOKEN = "workshop-test-token"


@dataclass(frozen=True, slots=True)
class Resource:
    """One API resource the mock serves."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


RESOURCES: list[Resource] = [
    Resource("", "v1", "Namespace", "namespaces", False, ("ns",)),
    Resource("", "v1", "Node", "nodes", False, ("no",)),
    Resource("", "v1", "Pod", "pods", True, ("po",)),
    Resource("", "v1", "Service", "services", True, ("svc",)),
    Resource("", "v1", "Secret", "secrets", True),
    Resource("", "v1", "ConfigMap", "configmaps", True, ("cm",)),
    Resource("", "v1", "Event", "events", True, ("ev",)),
    Resource("", "v1", "ServiceAccount", "serviceaccounts", True, ("sa",)),
    Resource("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", True, ("pvc",)),
    Resource("apps", "v1", "DaemonSet", "daemonsets", True, ("ds",)),
    Resource("apps", "v1", "Deployment", "deployments", True, ("deploy",)),
    Resource("apps", "v1", "StatefulSet", "statefulsets", True, ("sts",)),
    Resource("batch", "v1", "Job", "jobs", True),
    Resource("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", False, ("crd", "crds")),
    Resource("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", True, ("netpol",)),
    Resource("rbac.authorization.k8s.io", "v1", "Role", "roles", True),
    Resource("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", True),
    Resource("nvidia.com", "v1alpha1", "DynamoGraphDeployment", "dynamographdeployments", True, ("dgd",)),
]


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_body(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """A ``meta/v1 Status`` as the API server sends with an error."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": details or {},
        "code": code,
    }


def _leaves(obj: Any, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """Flatten a manifest to ``{path: value}`` (lists count as one leaf), ignoring identity fields."""
    out: dict[tuple[str, ...], Any] = {}
    if isinstance(obj, dict) and obj:
        for k, v in obj.items():
            if not prefix and k in ("apiVersion", "kind"):
                continue
            if prefix == ("metadata",) and k in ("name", "namespace"):
                continue
            out.update(_leaves(v, (*prefix, k)))
    else:
        out[prefix] = obj
    return out


_SERVER_FIELDS = ("uid", "resourceVersion", "creationTimestamp", "managedFields", "generation")


def _spec_only(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` without server-set metadata and status (what a generation bump compares)."""
    out = {k: v for k, v in obj.items() if k != "status"}
    out["metadata"] = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _SERVER_FIELDS}
    return out


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in patch.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def match_labels(labels: dict[str, str], selector: str | None) -> bool:
    """Equality- and existence-based label selectors (``a=b,c!=d,e,!f``)."""
    if not selector:
        return True
    for term in selector.split(","):
        term = term.strip()
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k.strip()) == v.strip():
                return False
        elif "=" in term:
            k, v = term.replace("==", "=").split("=", 1)
            if labels.get(k.strip()) != v.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def _field(obj: dict[str, Any], path: str) -> Any:
    cur: Any = obj
    for part in path.split("."):
        cur = cur.get(part) if isinstance(cur, dict) else None
    return cur


def match_fields(obj: dict[str, Any], selector: str | None) -> bool:
    """Field selectors (``metadata.name=x,involvedObject.kind=Pod,spec.nodeName!=y``)."""
    if not selector:
        return True
    for term in selector.split(","):
        neg = "!=" in term
        k, v = term.split("!=" if neg else "=", 1)
        val = _field(obj, k.strip())
        if (str(val) == v.strip()) == neg:
            return False
    return True


@dataclass
class Request:
    """One request the server saw (for assertions: watched, not polled)."""

    method: str
    path: str
    query: dict[str, str]
    content_type: str = ""

    @property
    def watch(self) -> bool:
        return self.query.get("watch") in ("1", "true")


@dataclass
class MockCluster:
    """The simulated cluster: objects, logs, auth rules and a timeline of scheduled changes.

    Mutate it from tests with :meth:`put`, :meth:`delete`, :meth:`later`; every change feeds watches.
    """

    objects: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    logs: dict[tuple[str, str, str, bool], str] = field(default_factory=dict)
    token: str | None = TOKEN
    forbidden: set[tuple[str, str]] = field(default_factory=set)  # (verb, plural)
    git_version: str = "v1.31.4-eks-2d5f260"
    requests: list[Request] = field(default_factory=list)
    rv: int = 1000
    history: list[tuple[int, str, str, dict[str, Any]]] = field(default_factory=list)  # (rv, type, plural, obj)
    managers: dict[tuple[str, str, str], dict[str, dict[tuple[str, ...], Any]]] = field(default_factory=dict)
    cond: threading.Condition = field(default_factory=lambda: threading.Condition(threading.RLock()))
    timers: list[threading.Timer] = field(default_factory=list)
    # Called as hook(cluster, applied_object) after each server-side apply (e.g. a simulated Dynamo operator).
    hooks: list[Callable[[MockCluster, dict[str, Any]], None]] = field(default_factory=list)
    # Log text served for every pod (present or future) of a Dynamo component: {component: text}.
    component_logs: dict[str, str] = field(default_factory=dict)
    # Where pods/portforward connects: {container port: (host, port)} on 127.0.0.1 (e.g. a local frontend).
    forward_to: dict[int, tuple[str, int]] = field(default_factory=dict)

    # ----------------------------------------------------------------- model
    @staticmethod
    def resource_for(api_version: str, kind: str) -> Resource:
        for r in RESOURCES:
            if r.api_version == api_version and r.kind == kind:
                return r
        raise KeyError(f"{api_version} {kind}")

    def put(self, obj: dict[str, Any], event: str | None = None) -> dict[str, Any]:
        """Create or replace ``obj`` (fills uid, resourceVersion, creationTimestamp) and notify watchers."""
        res = self.resource_for(obj["apiVersion"], obj["kind"])
        meta = obj.setdefault("metadata", {})
        ns = meta.get("namespace", "") if res.namespaced else ""
        key = (res.plural, ns, meta["name"])
        with self.cond:
            old = self.objects.get(key)
            self.rv += 1
            meta.setdefault("uid", old["metadata"]["uid"] if old else str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", old["metadata"]["creationTimestamp"] if old else now_iso())
            meta["resourceVersion"] = str(self.rv)
            meta.setdefault("generation", 1)
            self.objects[key] = obj
            self.history.append((self.rv, event or ("MODIFIED" if old else "ADDED"), res.plural, copy.deepcopy(obj)))
            self.cond.notify_all()
        return obj

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((plural, namespace, name))

    def delete(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        """Delete an object and (garbage collection) everything whose ownerReferences name its uid."""
        with self.cond:
            obj = self.objects.pop((plural, namespace, name), None)
            self.managers.pop((plural, namespace, name), None)
            if obj is not None:
                self.rv += 1
                self.history.append((self.rv, "DELETED", plural, copy.deepcopy(obj)))
                self.cond.notify_all()
                uid = obj["metadata"]["uid"]
                for key, child in list(self.objects.items()):
                    if any(r.get("uid") == uid for r in child["metadata"].get("ownerReferences") or []):
                        self.delete(*key)
        return obj

    def list(self, plural: str, namespace: str | None, labels: str | None = None, fields: str | None = None) -> list[dict[str, Any]]:
        return [
            o
            for (p, ns, _), o in sorted(self.objects.items())
            if p == plural
            and (namespace is None or ns == namespace)
            and match_labels(o["metadata"].get("labels") or {}, labels)
            and match_fields(o, fields)
        ]

    def later(self, delay_s: float, change: Callable[[MockCluster], None]) -> None:
        """Run ``change(self)`` after ``delay_s`` seconds (a pod going Ready, an OOM kill, ...)."""
        t = threading.Timer(delay_s, change, args=(self,))
        t.daemon = True
        self.timers.append(t)
        t.start()

    def set_log(self, namespace: str, pod: str, text: str, container: str = "main", previous: bool = False) -> None:
        self.logs[(namespace, pod, container, previous)] = text

    def watches(self, plural: str | None = None) -> list[Request]:
        """Watch requests seen (optionally for one resource plural)."""
        return [r for r in self.requests if r.watch and (plural is None or f"/{plural}" in r.path)]

    def gets(self, plural: str) -> list[Request]:
        """Non-watch GET requests for a resource plural (list or read)."""
        return [r for r in self.requests if r.method == "GET" and not r.watch and f"/{plural}" in r.path]

    # ----------------------------------------------------------------- server-side apply
    def apply(self, res: Resource, ns: str, name: str, patch: dict[str, Any], manager: str, force: bool) -> tuple[int, dict[str, Any]]:
        key = (res.plural, ns, name)
        leaves = _leaves(patch)
        owners = self.managers.setdefault(key, {})
        conflicts = []
        for other, owned in owners.items():
            if other == manager:
                continue
            for path, value in leaves.items():
                if path in owned and owned[path] != value:
                    conflicts.append(f'conflict with "{other}": .{".".join(path)}')
        if conflicts and not force:
            return 409, status_body(
                409, "Conflict", f"Apply failed with {len(conflicts)} conflict: {'; '.join(conflicts)}",
                {"name": name, "kind": res.plural, "causes": [{"reason": "FieldManagerConflict", "message": c} for c in conflicts]},
            )
        for other, owned in owners.items():
            if other != manager:
                for path in leaves:
                    owned.pop(path, None)
        owners[manager] = leaves
        old = self.get(res.plural, ns, name)
        merged = _merge(copy.deepcopy(old) if old else {}, patch)
        merged["apiVersion"], merged["kind"] = res.api_version, res.kind
        merged.setdefault("metadata", {}).update({"name": name, **({"namespace": ns} if res.namespaced else {})})
        merged["metadata"]["managedFields"] = [
            {"manager": m, "operation": "Apply", "apiVersion": res.api_version, "fieldsType": "FieldsV1", "time": now_iso()}
            for m in owners
        ]
        if old and _leaves(_spec_only(old)) != _leaves(_spec_only(merged)):
            merged["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1
        return (200 if old else 201), self.put(merged)

    def stop(self) -> None:
        for t in self.timers:
            t.cancel()
