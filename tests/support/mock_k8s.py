"""A small Kubernetes API server for tests: real HTTP on 127.0.0.1, a simulated cluster you vary per test.

It speaks enough of the API for ``workshop_lib.cluster``, ``preflight`` and ``kubectl``-style discovery: ``/version``,
``/api``, ``/apis``, resource lists with ``shortNames``, get/list (label and field selectors), watch (``?watch=1``,
chunked JSON lines, resourceVersion semantics), server-side apply (``PATCH application/apply-patch+yaml`` with
``fieldManager`` and ``force``, 409 on a conflict with another manager), delete, pod logs (``container``, ``previous``,
``sinceSeconds``, ``tailLines``, ``follow``) and events. Bearer-token auth (401), per-verb RBAC denials (403) and a
request log (to assert a client watched rather than polled) are built in.

Objects come from :mod:`tests.support.k8s_objects` (complete enough for the typed ``kubernetes`` client) and the
scenarios in :mod:`tests.support.scenarios`.

In-process (pytest)::

    from tests.support.mock_k8s import MockApiServer
    from tests.support.scenarios import build
    with MockApiServer(build("healthy")) as srv:
        kubeconfig = srv.write_kubeconfig(tmp_path / "kubeconfig")
        ...

As a process (for notebooks run headless against it)::

    python -m tests.support.mock_k8s --scenario healthy --port 18443 --kubeconfig /tmp/kc \
        --logs frontend=/work/shared/fixtures/logs/x.log

then run the notebook with ``KUBECONFIG=/tmp/kc``. ``--scenario list`` prints the scenario names.
"""

from __future__ import annotations

import argparse
import copy
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

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
    cond: threading.Condition = field(default_factory=threading.Condition)
    timers: list[threading.Timer] = field(default_factory=list)
    # Called as hook(cluster, applied_object) after each server-side apply (e.g. a simulated Dynamo operator).
    hooks: list[Callable[[MockCluster, dict[str, Any]], None]] = field(default_factory=list)
    # Log text served for every pod (present or future) of a Dynamo component: {component: text}.
    component_logs: dict[str, str] = field(default_factory=dict)

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
        with self.cond:
            obj = self.objects.pop((plural, namespace, name), None)
            self.managers.pop((plural, namespace, name), None)
            if obj is not None:
                self.rv += 1
                self.history.append((self.rv, "DELETED", plural, copy.deepcopy(obj)))
                self.cond.notify_all()
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


# --------------------------------------------------------------------------------------------- HTTP
def _served(c: MockCluster) -> list[Resource]:
    """Built-in resources plus custom ones whose CRD exists (``nvidia.com`` kinds appear with the Dynamo CRDs)."""
    return [r for r in RESOURCES if r.group != "nvidia.com" or c.get("customresourcedefinitions", "", f"{r.plural}.{r.group}")]


def _discovery_list(c: MockCluster, group_version: str) -> dict[str, Any] | None:
    rs = [r for r in _served(c) if r.api_version == group_version]
    if not rs:
        return None
    verbs = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
    items = []
    for r in rs:
        items.append({"name": r.plural, "singularName": r.kind.lower(), "namespaced": r.namespaced, "kind": r.kind,
                      "verbs": verbs, **({"shortNames": list(r.short_names)} if r.short_names else {})})
        if r.plural == "pods":
            items += [{"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod", "verbs": ["get"]},
                      {"name": "pods/portforward", "singularName": "", "namespaced": True, "kind": "PodPortForwardOptions",
                       "verbs": ["create", "get"]}]
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": items}


def _api_groups(c: MockCluster) -> dict[str, Any]:
    groups: dict[str, list[str]] = {}
    for r in _served(c):
        if r.group:
            groups.setdefault(r.group, [])
            if r.version not in groups[r.group]:
                groups[r.group].append(r.version)
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [
            {"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in vs],
             "preferredVersion": {"groupVersion": f"{g}/{vs[0]}", "version": vs[0]}}
            for g, vs in groups.items()
        ],
    }


def _parse_path(c: MockCluster, path: str) -> tuple[Resource, str | None, str | None, str | None] | None:
    """``/api/v1/namespaces/ns/pods/name/log`` -> (resource, namespace, name, subresource)."""
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"] and len(parts) >= 3:
        gv, rest = parts[1], parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 4:
        gv, rest = f"{parts[1]}/{parts[2]}", parts[3:]
    else:
        return None
    ns = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        ns, rest = rest[1], rest[2:]
    elif len(rest) == 2 and rest[0] == "namespaces":
        rest = ["namespaces", rest[1]]
    for r in _served(c):
        if r.api_version == gv and r.plural == rest[0]:
            name = rest[1] if len(rest) > 1 else None
            sub = rest[2] if len(rest) > 2 else None
            return r, ns, name, sub
    return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # no 40 ms delayed-ACK stalls between header and body writes
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass

    # ------------------------------------------------------------ plumbing
    def _send(self, code: int, body: Any, ctype: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else (body.encode() if isinstance(body, str) else json.dumps(body).encode())
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _dispatch(self, method: str) -> None:
        c = self.server.cluster
        url = urlsplit(self.path)
        q = {k: v[-1] for k, v in parse_qs(url.query).items()}
        c.requests.append(Request(method, url.path, q, self.headers.get("Content-Type", "")))
        if c.token is not None and self.headers.get("Authorization") != f"Bearer {c.token}":
            self._send(401, status_body(401, "Unauthorized", "Unauthorized"))
            return
        path = url.path.rstrip("/") or "/"
        if method == "GET" and path == "/version":
            self._send(200, {"major": "1", "minor": c.git_version.split(".")[1], "gitVersion": c.git_version,
                             "gitCommit": "2d5f260e5e5d6c6dd8a0e2fb2ec4f0e4e6e0b0c1", "gitTreeState": "clean",
                             "buildDate": "2025-01-15T00:00:00Z", "goVersion": "go1.22.10", "compiler": "gc",
                             "platform": "linux/amd64"})
            return
        if method == "GET" and path == "/api":
            self._send(200, {"kind": "APIVersions", "versions": ["v1"],
                             "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]})
            return
        if method == "GET" and path == "/apis":
            self._send(200, _api_groups(c))
            return
        if method == "GET" and (path.startswith("/api/") or path.startswith("/apis/")) and path.count("/") in (2, 3):
            gv = path.split("/", 2)[2]
            disc = _discovery_list(c, gv)
            if disc is not None and (path.startswith("/api/") or "/" in gv):
                self._send(200, disc)
                return
        parsed = _parse_path(c, path)
        if parsed is None:
            self._send(404, status_body(404, "NotFound", "the server could not find the requested resource"))
            return
        res, ns, name, sub = parsed
        verb = {"GET": "get" if name else ("watch" if q.get("watch") in ("1", "true") else "list"),
                "PATCH": "patch", "DELETE": "delete", "POST": "create", "PUT": "update"}[method]
        if (verb, res.plural) in c.forbidden or (verb, "*") in c.forbidden:
            scope = f' in the namespace "{ns}"' if ns else " at the cluster scope"
            group = f'"{res.group}"' if res.group else '""'
            self._send(403, status_body(
                403, "Forbidden",
                f'{res.plural} is forbidden: User "workshop-user" cannot {verb} resource "{res.plural}" in API group {group}{scope}',
                {"kind": res.plural, **({"name": name} if name else {})}))
            return
        if method == "GET" and sub == "log":
            self._log(ns or "", name or "", q)
        elif method == "GET" and name:
            self._get(res, ns or "", name)
        elif method == "GET" and verb == "watch":
            self._watch(res, ns, q)
        elif method == "GET":
            items = c.list(res.plural, ns, q.get("labelSelector"), q.get("fieldSelector"))
            self._send(200, {"kind": f"{res.kind}List", "apiVersion": res.api_version,
                             "metadata": {"resourceVersion": str(c.rv)}, "items": items})
        elif method == "PATCH" and name:
            self._patch(res, ns or "", name, q)
        elif method == "DELETE" and name:
            obj = c.delete(res.plural, ns or "", name)
            if obj is None:
                self._send(404, status_body(404, "NotFound", f'{res.plural} "{name}" not found', {"name": name, "kind": res.plural}))
            else:
                self._send(200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                 "details": {"name": name, "kind": res.plural, "uid": obj["metadata"]["uid"]}})
        else:
            self._send(405, status_body(405, "MethodNotAllowed", f"{method} is not supported by the mock"))

    def _get(self, res: Resource, ns: str, name: str) -> None:
        obj = self.server.cluster.get(res.plural, ns, name)
        if obj is None:
            self._send(404, status_body(404, "NotFound", f'{res.plural}{"." + res.group if res.group else ""} "{name}" not found',
                                        {"name": name, "group": res.group, "kind": res.plural}))
        else:
            self._send(200, obj)

    def _patch(self, res: Resource, ns: str, name: str, q: dict[str, str]) -> None:
        ctype = (self.headers.get("Content-Type") or "").split(";")[0]
        if ctype != "application/apply-patch+yaml":
            self._send(415, status_body(415, "UnsupportedMediaType", f"the mock only supports server-side apply, not {ctype}"))
            return
        if not q.get("fieldManager"):
            self._send(422, status_body(422, "Invalid", "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"))
            return
        try:
            patch = yaml.safe_load(self._body())
        except yaml.YAMLError as exc:
            self._send(400, status_body(400, "BadRequest", f"error decoding YAML: {exc}"))
            return
        c = self.server.cluster
        with c.cond:
            code, body = c.apply(res, ns, name, patch, q["fieldManager"], q.get("force") in ("true", "1"))
        self._send(code, body)
        if code < 300:
            for hook in c.hooks:
                hook(c, copy.deepcopy(body))

    def _log(self, ns: str, pod: str, q: dict[str, str]) -> None:
        c = self.server.cluster
        obj = c.get("pods", ns, pod)
        if obj is None:
            self._send(404, status_body(404, "NotFound", f'pods "{pod}" not found', {"name": pod, "kind": "pods"}))
            return
        containers = [x["name"] for x in obj["spec"]["containers"]]
        container = q.get("container") or (containers[0] if len(containers) == 1 else "")
        if not container:
            self._send(400, status_body(400, "BadRequest", f"a container name must be specified for pod {pod}, choose one of: {containers}"))
            return
        previous = q.get("previous") in ("true", "1")
        text = c.logs.get((ns, pod, container, previous))
        comp = (obj["metadata"].get("labels") or {}).get("nvidia.com/dynamo-component")
        if text is None and not previous and comp in c.component_logs:
            text = c.component_logs[comp]
        if text is None:
            msg = (f'previous terminated container "{container}" in pod "{pod}" not found' if previous
                   else f'container "{container}" in pod "{pod}" is waiting to start: ContainerCreating')
            self._send(400, status_body(400, "BadRequest", msg))
            return
        lines = text.splitlines(keepends=True)
        if "tailLines" in q:
            lines = lines[-int(q["tailLines"]):] if int(q["tailLines"]) else []
        if q.get("follow") in ("true", "1"):
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for line in lines:
                self._chunk(line.encode())
            self.wfile.write(b"0\r\n\r\n")
            return
        self._send(200, "".join(lines), "text/plain")

    def _watch(self, res: Resource, ns: str | None, q: dict[str, str]) -> None:
        c = self.server.cluster
        timeout = float(q.get("timeoutSeconds") or 30)
        deadline = time.monotonic() + timeout
        labels, fields = q.get("labelSelector"), q.get("fieldSelector")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def wanted(plural: str, obj: dict[str, Any]) -> bool:
            return (plural == res.plural and (ns is None or obj["metadata"].get("namespace", "") == ns)
                    and match_labels(obj["metadata"].get("labels") or {}, labels) and match_fields(obj, fields))

        with c.cond:
            if q.get("resourceVersion") in (None, "", "0"):
                pending = [("ADDED", copy.deepcopy(o)) for o in c.list(res.plural, ns, labels, fields)]
                since = c.rv
            else:
                since = int(q["resourceVersion"])
                pending = [(t, o) for rv, t, p, o in c.history if rv > since and wanted(p, o)]
                since = max(since, c.rv)
        try:
            while True:
                for etype, obj in pending:
                    self._chunk(json.dumps({"type": etype, "object": obj}).encode() + b"\n")
                with c.cond:
                    while c.rv <= since and not self.server.stopping:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            break
                        c.cond.wait(min(left, 0.2))
                    pending = [(t, o) for rv, t, p, o in c.history if rv > since and wanted(p, o)]
                    since = c.rv
                if (not pending and time.monotonic() >= deadline) or self.server.stopping:
                    break
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch("GET")

    def do_PATCH(self) -> None:  # noqa: N802
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:  # noqa: N802
        self._body()
        self._dispatch("DELETE")

    def do_POST(self) -> None:  # noqa: N802
        self._body()
        self._dispatch("POST")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    cluster: MockCluster
    stopping: bool = False


class MockApiServer:
    """Serve a :class:`MockCluster` on ``http://127.0.0.1:<port>`` from a background thread.

    Example:
        >>> with MockApiServer(MockCluster()) as srv:  # doctest: +SKIP
        ...     srv.url
        'http://127.0.0.1:41234'
    """

    def __init__(self, cluster: MockCluster, port: int = 0) -> None:
        self.cluster = cluster
        self._httpd = _Server(("127.0.0.1", port), _Handler)
        self._httpd.cluster = cluster
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> MockApiServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.stopping = True
        with self.cluster.cond:
            self.cluster.cond.notify_all()
        self.cluster.stop()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> MockApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def kubeconfig(self, token: str | None = TOKEN, context: str = "mock") -> dict[str, Any]:
        return write_kubeconfig_dict(self.url, token, context)

    def write_kubeconfig(self, path: Path, token: str | None = TOKEN, context: str = "mock") -> Path:
        """Write a kubeconfig pointing at this server; returns ``path``."""
        path.write_text(yaml.safe_dump(self.kubeconfig(token, context)))
        return path


def write_kubeconfig_dict(url: str, token: str | None = TOKEN, context: str = "mock") -> dict[str, Any]:
    """A kubeconfig (as a dict) with one cluster, user and context named ``context``."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": {"server": url}}],
        "users": [{"name": context, "user": {"token": token} if token else {}}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
        "current-context": context,
    }


def serve(scenario: str, port: int, kubeconfig: Path | None, logs: list[str]) -> Iterator[MockApiServer]:
    from tests.support.scenarios import SCENARIOS, build, serve_component_logs

    if scenario not in SCENARIOS:
        raise SystemExit(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")
    cluster = build(scenario)
    for spec in logs:
        comp, _, file = spec.partition("=")
        serve_component_logs(cluster, comp, Path(file).read_text())
    with MockApiServer(cluster, port) as srv:
        if kubeconfig:
            srv.write_kubeconfig(kubeconfig)
        yield srv


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.support.mock_k8s", description="Serve a mock Kubernetes API.")
    ap.add_argument("--scenario", default="healthy", help="scenario name, or 'list'")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--kubeconfig", type=Path, help="write a kubeconfig for this server here")
    ap.add_argument("--logs", action="append", default=[], metavar="COMPONENT=FILE",
                    help="serve FILE as the log of the pods of a Dynamo component (repeatable)")
    a = ap.parse_args(argv)
    if a.scenario == "list":
        from tests.support.scenarios import SCENARIOS

        print("\n".join(f"{k}: {v.__doc__.strip().splitlines()[0] if v.__doc__ else ''}" for k, v in SCENARIOS.items()))
        return 0
    for srv in serve(a.scenario, a.port, a.kubeconfig, a.logs):
        print(f"mock Kubernetes API ({a.scenario}) on {srv.url}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
