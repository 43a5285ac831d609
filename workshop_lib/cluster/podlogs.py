"""Pod logs by Dynamo component, as lines ready for ``workshop_lib.logs.parse_lines``.

The Dynamo operator labels every pod with ``nvidia.com/dynamo-component=<service>`` (e.g. ``Frontend``,
``VllmDecodeWorker``) and ``nvidia.com/dynamo-graph-deployment-name=<dgd>``; logs are selected by those labels.

Example:
    >>> lines = component_logs(cluster, "dynamo-workshop", "VllmDecodeWorker", since_s=600)  # doctest: +SKIP
    >>> df = parse_lines(lines["vllm-disagg-vllmdecodeworker-abcde"])  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterator

from workshop_lib.cluster.client import Cluster
from workshop_lib.errors import ClusterError

COMPONENT_LABEL = "nvidia.com/dynamo-component"
DGD_LABEL = "nvidia.com/dynamo-graph-deployment-name"


def component_selector(component: str, dgd: str | None = None) -> str:
    """The label selector of a Dynamo component's pods.

    >>> component_selector("Frontend", "vllm-disagg")
    'nvidia.com/dynamo-component=Frontend,nvidia.com/dynamo-graph-deployment-name=vllm-disagg'
    """
    sel = f"{COMPONENT_LABEL}={component}"
    return f"{sel},{DGD_LABEL}={dgd}" if dgd else sel


def _query(container: str | None, since_s: int | None, previous: bool, tail_lines: int | None, follow: bool) -> dict:
    return {"container": container, "sinceSeconds": since_s, "previous": previous or None, "tailLines": tail_lines,
            "follow": follow or None, "timestamps": None}


def pod_log(cluster: Cluster, namespace: str, pod: str, *, container: str | None = None, since_s: int | None = None,
            previous: bool = False, tail_lines: int | None = None) -> list[str]:
    """One pod's log as lines (no trailing newlines)."""
    path = f"/api/v1/namespaces/{namespace}/pods/{pod}/log"
    what = f"log of pod {namespace}/{pod}" + (f" container {container}" if container else "") + (" (previous)" if previous else "")
    text = cluster.request("GET", path, query=_query(container, since_s, previous, tail_lines, False), what=what,
                           verb="get", resource="pods/log")
    return str(text).splitlines()


def component_pods(cluster: Cluster, namespace: str, component: str, dgd: str | None = None) -> list[str]:
    """Names of the pods of a component, sorted."""
    pods = cluster.list("v1", "Pod", namespace, label_selector=component_selector(component, dgd))
    return sorted(p["metadata"]["name"] for p in pods)


def component_logs(cluster: Cluster, namespace: str, component: str, *, dgd: str | None = None,
                   container: str | None = "main", since_s: int | None = None, previous: bool = False,
                   tail_lines: int | None = None) -> dict[str, list[str]]:
    """``{pod name: lines}`` for every pod of ``component``.

    Raises:
        ClusterError: no pod carries the component label (wrong name, or not deployed yet).
    """
    names = component_pods(cluster, namespace, component, dgd)
    if not names:
        raise ClusterError(f"component {component} in namespace {namespace}",
                           f"no pod has label {component_selector(component, dgd)}",
                           "check the service name in the DGD (kubectl get pods --show-labels) and that it is deployed")
    return {n: pod_log(cluster, namespace, n, container=container, since_s=since_s, previous=previous,
                       tail_lines=tail_lines) for n in names}


def follow_log(cluster: Cluster, namespace: str, pod: str, *, container: str | None = "main",
               since_s: int | None = None, tail_lines: int | None = None, timeout_s: float = 3600) -> Iterator[str]:
    """Yield a pod's log lines as they are written (``follow=true``) until the stream ends or ``timeout_s``."""
    path = f"/api/v1/namespaces/{namespace}/pods/{pod}/log"
    resp = cluster.request("GET", path, query=_query(container, since_s, False, tail_lines, True), stream=True,
                           timeout_s=timeout_s, what=f"log of pod {namespace}/{pod}", verb="get", resource="pods/log")
    buf = b""
    try:
        for chunk in resp.stream(8192, decode_content=True):
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                yield line.decode("utf-8", "replace")
        if buf:
            yield buf.decode("utf-8", "replace")
    except Exception as exc:  # noqa: BLE001 - a read timeout ends the follow
        if "timed out" not in str(exc).lower():
            raise ClusterError(f"log of pod {namespace}/{pod}", f"log stream broke ({type(exc).__name__})", "retry") from None
    finally:
        resp.release_conn()
