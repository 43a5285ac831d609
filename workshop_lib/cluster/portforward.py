"""Port-forward from a local socket on 127.0.0.1 to the pod behind a Service, from Python.

:func:`port_forward` is a context manager returning the local URL. Each accepted connection gets its own upstream
stream from a *connector* ``(namespace, pod, port) -> socket``; the default one uses
``kubernetes.stream.portforward`` (the API server's portforward subresource over WebSocket). Tests pass their own.

Example:
    >>> with port_forward(cluster, "dynamo-workshop", "vllm-disagg-frontend", 8000) as url:  # doctest: +SKIP
    ...     httpx.get(f"{url}/v1/models").json()
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

from workshop_lib.cluster.client import Cluster
from workshop_lib.cluster.diagnose import pod_ready
from workshop_lib.errors import ClusterError

Connector = Callable[[str, str, int], Any]


def kube_connector(cluster: Cluster) -> Connector:
    """A connector through the API server's ``pods/portforward`` (WebSocket, ``kubernetes.stream``)."""

    def connect(namespace: str, pod: str, port: int) -> Any:
        from kubernetes import client
        from kubernetes.stream import portforward

        api = client.CoreV1Api(cluster.api_client)
        try:
            pf = portforward(api.connect_get_namespaced_pod_portforward, pod, namespace, ports=str(port))
        except Exception as exc:  # noqa: BLE001 - ApiException or WebSocket handshake errors
            status = getattr(exc, "status", 0)
            hint = ("ask your admin for create on pods/portforward, or use a context that has it" if status == 403
                    else "check the pod is Running and the API server allows port-forward")
            raise ClusterError(f"port-forward to pod {namespace}/{pod}:{port}", f"failed ({type(exc).__name__} {status or ''})".strip(),
                               hint) from None
        return pf.socket(port)

    return connect


def service_target(cluster: Cluster, namespace: str, service: str, port: int) -> tuple[str, int]:
    """``(ready pod name, container port)`` behind ``service``'s ``port``.

    Raises:
        ClusterError: the Service does not exist, has no such port, or no Ready pod backs it.
    """
    svc = cluster.get("v1", "Service", service, namespace)
    if svc is None:
        raise ClusterError(f"Service {namespace}/{service}", "not found",
                           "deploy the frontend first (its Service is created by the Dynamo operator), and check the name "
                           "with kubectl get svc -n " + namespace)
    spec = svc.get("spec") or {}
    ports = spec.get("ports") or []
    match = next((p for p in ports if p.get("port") == port), None)
    if match is None:
        raise ClusterError(f"Service {namespace}/{service}", f"has no port {port} (ports: {[p.get('port') for p in ports]})",
                           "use one of the Service's ports")
    selector = ",".join(f"{k}={v}" for k, v in (spec.get("selector") or {}).items())
    pods = [p for p in cluster.list("v1", "Pod", namespace, label_selector=selector or None) if pod_ready(p)]
    if not pods:
        raise ClusterError(f"Service {namespace}/{service}", "no Ready pod behind it",
                           "wait for the deployment (wait_for_dgd) and check the frontend pod's events")
    pod = sorted(pods, key=lambda p: p["metadata"]["name"])[0]
    target = match.get("targetPort", port)
    if isinstance(target, str):
        for c in pod["spec"].get("containers", []):
            for cp in c.get("ports") or []:
                if cp.get("name") == target:
                    target = cp["containerPort"]
        if isinstance(target, str):
            target = port
    return pod["metadata"]["name"], int(target)


def _pump(src: Any, dst: Any) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (dst,):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_WR)


@contextlib.contextmanager
def port_forward(cluster: Cluster, namespace: str, service: str, port: int = 8000, *, local_port: int = 0,
                 connect: Connector | None = None) -> Iterator[str]:
    """Forward ``127.0.0.1:<local_port>`` (0 = any free port) to ``service:port``; yields ``http://127.0.0.1:<p>``."""
    pod, target = service_target(cluster, namespace, service, port)
    connector = connect or kube_connector(cluster)
    try:
        listener = socket.create_server(("127.0.0.1", local_port))
    except OSError as exc:
        raise ClusterError(f"local port {local_port}", f"cannot listen on 127.0.0.1 ({exc.strerror})",
                           "pick another local_port or 0 for any free one") from None
    listener.settimeout(0.2)
    stop = threading.Event()
    conns: list[Any] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                client_sock, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client_sock.settimeout(None)
            try:
                upstream = connector(namespace, pod, target)
            except ClusterError:
                client_sock.close()
                continue
            conns.extend([client_sock, upstream])
            for a, b in ((client_sock, upstream), (upstream, client_sock)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()

    acceptor = threading.Thread(target=serve, daemon=True, name=f"port-forward {service}:{port}")
    acceptor.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        listener.close()
        for s in conns:
            with contextlib.suppress(OSError):
                s.close()
        acceptor.join(timeout=2)
