"""A small Kubernetes API server for tests: real HTTP on 127.0.0.1, a simulated cluster you vary per test.

It speaks enough of the API for ``workshop_lib.cluster``, ``preflight`` and ``kubectl``-style discovery: ``/version``,
``/api``, ``/apis``, resource lists with ``shortNames``, get/list (label and field selectors), watch (``?watch=1``,
chunked JSON lines, resourceVersion semantics), server-side apply (``PATCH application/apply-patch+yaml`` with
``fieldManager`` and ``force``, 409 on a conflict with another manager), delete, pod logs (``container``, ``previous``,
``sinceSeconds``, ``tailLines``, ``follow``), events and ``pods/portforward`` (WebSocket, ``v4.channel.k8s.io``).
Bearer-token auth (401), per-verb RBAC denials (403) and a
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
        --logs VllmDecodeWorker=../shared/fixtures/logs/14-nixl-example-libfabric-pass-vs-default-ucx.log \
        --forward 8000=127.0.0.1:8000

then run the notebook with ``KUBECONFIG=/tmp/kc`` (or pass the kubeconfig path to ``Cluster.connect``).
``--scenario list`` prints the scenarios. A DGD applied to it is "deployed" by a simulated operator: one pod per
service labelled ``nvidia.com/dynamo-component=<service>``, Ready after 0.3 s, a ``<dgd>-<service>`` Service for the
frontend on port 8000, then the DGD's Ready condition. ``--logs`` serves a file as every pod log of a component;
``--forward`` makes ``port_forward`` to container port 8000 reach 127.0.0.1:8000 (e.g. the local lab's frontend).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import copy
import hashlib
import json
import socket
import struct
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

from tests.support.k8s_model import (  # noqa: F401 - re-exported for users of this module
    RESOURCES,
    TOKEN,
    MockCluster,
    Request,
    Resource,
    match_fields,
    match_labels,
    now_iso,
    status_body,
)


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
        """The request body, read once (an early answer such as a 403 must still drain it for keep-alive)."""
        cached = getattr(self, "_cached_body", None)
        if cached is not None and getattr(self, "_cached_for", None) == self.requestline:
            return cached
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        self._cached_body, self._cached_for = body, self.requestline
        return body

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
        if method == "GET" and sub == "portforward":
            self._portforward(ns or "", name or "", q)
        elif method == "GET" and sub == "log":
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

    # ------------------------------------------------------------ pods/portforward (WebSocket, v4.channel.k8s.io)
    def _ws_send(self, payload: bytes, opcode: int = 0x2) -> None:
        n = len(payload)
        head = bytes([0x80 | opcode]) + (bytes([n]) if n < 126 else
                                         (b"\x7e" + struct.pack(">H", n)) if n < 65536 else b"\x7f" + struct.pack(">Q", n))
        with self._ws_lock:
            self.connection.sendall(head + payload)

    def _ws_recv(self) -> tuple[int, bytes] | None:
        def exact(n: int) -> bytes:
            buf = b""
            while len(buf) < n:
                chunk = self.rfile.read(n - len(buf))
                if not chunk:
                    raise ConnectionError("closed")
                buf += chunk
            return buf

        try:
            b0, b1 = exact(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", exact(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", exact(8))[0]
            mask = exact(4) if b1 & 0x80 else b"\0\0\0\0"
            data = bytes(x ^ mask[i % 4] for i, x in enumerate(exact(n)))
            return b0 & 0x0F, data
        except (ConnectionError, OSError, ValueError):
            return None

    def _portforward(self, ns: str, pod: str, q: dict[str, str]) -> None:
        c = self.server.cluster
        port = int(q.get("ports", "0").split(",")[0] or 0)
        if c.get("pods", ns, pod) is None:
            self._send(404, status_body(404, "NotFound", f'pods "{pod}" not found', {"name": pod, "kind": "pods"}))
            return
        key = self.headers.get("Sec-WebSocket-Key")
        if not key or "websocket" not in (self.headers.get("Upgrade") or "").lower():
            self._send(400, status_body(400, "BadRequest", "port-forward needs a WebSocket upgrade"))
            return
        accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        self.wfile.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          f"Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: v4.channel.k8s.io\r\n\r\n").encode())
        self.wfile.flush()
        self.close_connection = True
        self._ws_lock = threading.Lock()
        p2 = struct.pack("<H", port)
        self._ws_send(b"\x00" + p2)
        self._ws_send(b"\x01" + p2)
        target = c.forward_to.get(port)
        try:
            if target is None:
                raise OSError("connection refused")
            up = socket.create_connection(target, timeout=5)
            up.settimeout(None)
        except OSError as exc:
            self._ws_send(b"\x01" + f"error forwarding port {port} to pod {pod}: {exc}".encode())
            self._ws_send(b"\x03\xe8", opcode=0x8)
            return

        def upstream_to_ws() -> None:
            try:
                while data := up.recv(65536):
                    self._ws_send(b"\x00" + data)
            except OSError:
                pass
            with contextlib.suppress(OSError):
                self._ws_send(b"\x03\xe8", opcode=0x8)

        t = threading.Thread(target=upstream_to_ws, daemon=True)
        t.start()
        while (frame := self._ws_recv()) is not None:
            opcode, data = frame
            if opcode == 0x8:
                break
            if opcode == 0x9:
                self._ws_send(data, opcode=0xA)
            elif opcode == 0x2 and data[:1] == b"\x00" and len(data) > 1:
                up.sendall(data[1:])
        with contextlib.suppress(OSError):
            up.shutdown(socket.SHUT_RDWR)
        up.close()
        t.join(timeout=2)

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
        self._cached_body = None
        self._body()
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:  # noqa: N802
        self._cached_body = None
        self._body()
        self._dispatch("DELETE")

    def do_POST(self) -> None:  # noqa: N802
        self._cached_body = None
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


def serve(scenario: str, port: int, kubeconfig: Path | None, logs: list[str],
          forwards: list[str] | None = None) -> Iterator[MockApiServer]:
    from tests.support.scenarios import SCENARIOS, build, serve_component_logs

    if scenario not in SCENARIOS:
        raise SystemExit(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")
    cluster = build(scenario)
    for spec in logs:
        comp, _, file = spec.partition("=")
        serve_component_logs(cluster, comp, Path(file).read_text())
    for spec in forwards or []:
        pod_port, _, addr = spec.partition("=")
        host, _, hport = addr.rpartition(":")
        if host not in ("127.0.0.1", "localhost"):
            raise SystemExit(f"--forward {spec}: only 127.0.0.1 targets are allowed")
        cluster.forward_to[int(pod_port)] = ("127.0.0.1", int(hport))
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
    ap.add_argument("--forward", action="append", default=[], metavar="PORT=127.0.0.1:P",
                    help="pods/portforward to container PORT connects to 127.0.0.1:P, e.g. a local-lab frontend (repeatable)")
    a = ap.parse_args(argv)
    if a.scenario == "list":
        from tests.support.scenarios import SCENARIOS

        print("\n".join(f"{k:<16} {desc}" for k, (desc, _) in SCENARIOS.items()))
        return 0
    for srv in serve(a.scenario, a.port, a.kubeconfig, a.logs, a.forward):
        print(f"mock Kubernetes API ({a.scenario}) on {srv.url}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
