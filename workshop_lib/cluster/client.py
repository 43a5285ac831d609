"""A thin, generic Kubernetes client: connect from kubeconfig, raw REST, discovery, server-side apply, delete, watch.

Every call goes through :meth:`Cluster.request`, which turns API errors into one-line
:class:`~workshop_lib.errors.ClusterError` messages that name the resource and the fix. Objects are plain dicts, so
any kind works, including ``nvidia.com/v1alpha1 DynamoGraphDeployment``.

Example:
    >>> cl = Cluster.connect(context="my-eks")  # doctest: +SKIP
    >>> cl.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "dynamo-workshop"}})  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from workshop_lib.errors import ClusterError

FIELD_MANAGER = "workshop"
MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "workshop"


@dataclass(frozen=True, slots=True)
class ResourceInfo:
    """What discovery says about one kind: its plural, group/version and whether it is namespaced."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool

    def path(self, namespace: str | None = None, name: str | None = None, sub: str | None = None) -> str:
        """The REST path, e.g. ``/apis/nvidia.com/v1alpha1/namespaces/ns/dynamographdeployments/x``.

        >>> ResourceInfo("v1", "Pod", "pods", True).path("ns", "p", "log")
        '/api/v1/namespaces/ns/pods/p/log'
        """
        base = f"/api/{self.api_version}" if "/" not in self.api_version else f"/apis/{self.api_version}"
        parts = [base]
        if self.namespaced and namespace:
            parts.append(f"namespaces/{namespace}")
        parts.append(self.plural)
        if name:
            parts.append(name)
        if sub:
            parts.append(sub)
        return "/".join(parts)


def describe(kind: str, name: str | None = None, namespace: str | None = None) -> str:
    """``'DynamoGraphDeployment dynamo-workshop/vllm-disagg'``: how errors name a resource.

    >>> describe("Pod", "p", "ns")
    'Pod ns/p'
    """
    if not name:
        return f"{kind} list" + (f" in namespace {namespace}" if namespace else "")
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


def _status_message(body: Any) -> tuple[str, dict[str, Any]]:
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    try:
        st = json.loads(body) if isinstance(body, str) and body else {}
    except ValueError:
        return (str(body)[:300], {})
    if not isinstance(st, dict):
        return ("", {})
    return (str(st.get("message", "")), st.get("details") or {})


def _kubectl_target(what: str, context: str) -> str:
    """``'DynamoGraphDeployment ns/x'`` -> ``'--context c -n ns get DynamoGraphDeployment x'`` (for fix texts).

    >>> _kubectl_target("ConfigMap ns/shared", "mock")
    '--context mock -n ns get ConfigMap shared'
    """
    kind, _, ref = what.partition(" ")
    ns, _, name = ref.rpartition("/")
    return f"--context {context}" + (f" -n {ns}" if ns else "") + f" get {kind} {name}".rstrip()


def _yaml_error(where: str, exc: yaml.YAMLError, kubeconfig: str | Path | None) -> ClusterError:
    """A kubeconfig that is not YAML: one line naming file:line (not the parser's 70-line trace)."""
    import os

    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    path = str(kubeconfig) if kubeconfig else (os.environ.get("KUBECONFIG") or "~/.kube/config")
    at = f"{getattr(mark, 'name', '') or path}:{mark.line + 1}" if mark is not None else path
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return ClusterError(f"kubeconfig {at}", f"invalid YAML ({problem})",
                        "fix the file at that line, or regenerate it: aws eks update-kubeconfig --name <cluster> "
                        "--region <region>")


def translate(status: int, body: Any, verb: str, what: str, context: str, resource: str = "") -> ClusterError:
    """Turn an HTTP error from the API server into a :class:`ClusterError` naming ``what`` and the fix.

    >>> str(translate(404, b'{"message": "not found"}', "get", "Pod ns/p", "ctx"))
    'Pod ns/p: not found (404 Not Found). Fix: check the name and namespace (kubectl --context ctx get Pod -A)'
    """
    msg, details = _status_message(body)
    kind = what.split(" ", 1)[0]
    if status == 401:
        return ClusterError(
            what, f"the API server rejected the credentials of kubeconfig context {context!r} (401 Unauthorized)",
            "refresh them (EKS: aws eks update-kubeconfig --name <cluster> --region <region>; check AWS_PROFILE) "
            "and retry",
        )
    if status == 403:
        return ClusterError(
            what, f"{verb} {resource or kind} is forbidden for context {context!r} (403: {msg})",
            f"ask your admin for RBAC permission to {verb} {resource or kind} (a Role/ClusterRole and binding), "
            "or use a kubeconfig context that has it (kubectl config get-contexts)",
        )
    if status == 404:
        return ClusterError(what, f"{msg or 'not found'} (404 Not Found)",
                            f"check the name and namespace (kubectl --context {context} get {kind} -A)")
    if status == 400:
        return ClusterError(what, f"{msg or 'bad request'} (400 Bad Request)",
                            "for logs: the container has not started yet or has no previous instance (previous=True "
                            "only after a restart); otherwise check the request's parameters")
    if status == 409:
        causes = "; ".join(c.get("message", "") for c in details.get("causes", []) if isinstance(c, dict)) or msg
        kubectl = _kubectl_target(what, context)
        return ClusterError(
            what, f"server-side apply conflicts with another field manager ({causes}) (409 Conflict)",
            f"see who owns the fields (kubectl {kubectl} -o yaml --show-managed-fields), then either delete it "
            f"(kubectl delete {kubectl}) and run the step again, or take the fields over "
            f"(kubectl apply --server-side --force-conflicts --field-manager {FIELD_MANAGER} -f <the rendered file>)",
        )
    if status == 422:
        return ClusterError(what, f"the API server rejected the object: {msg} (422 Invalid)",
                            "fix the manifest field it names (workshop validate checks manifests offline)")
    return ClusterError(what, f"{verb} failed: HTTP {status} {msg}".rstrip(),
                        f"retry; if it persists, check kubectl --context {context} get --raw /readyz")


class Cluster:
    """A connection to one Kubernetes API server (through the ``kubernetes`` client's ApiClient).

    Args:
        api_client: a configured ``kubernetes.client.ApiClient``.
        context: the kubeconfig context name (used in error messages).
        request_timeout_s: connect/read timeout of ordinary (non-watch) requests.
    """

    def __init__(self, api_client: Any, context: str = "", request_timeout_s: float = 30.0) -> None:
        self.api_client = api_client
        self.context = context or "(in-cluster)"
        self.request_timeout_s = request_timeout_s
        self._resources: dict[str, list[dict[str, Any]]] = {}

    # ------------------------------------------------------------------ connect
    @classmethod
    def connect(cls, kubeconfig: str | Path | None = None, context: str | None = None,
                timeout_s: float = 10.0) -> Cluster:
        """Load a kubeconfig (``$KUBECONFIG`` or ``~/.kube/config`` when None), pick ``context`` and check /version.

        Raises:
            ClusterError: no kubeconfig, no such context, or the API server is unreachable or refuses us.
        """
        import os

        from kubernetes import client, config
        from kubernetes.config.config_exception import ConfigException

        # $KUBECONFIG is read now (the kubernetes client reads it once, at import time).
        file = str(kubeconfig) if kubeconfig else (os.environ.get("KUBECONFIG") or None)
        where = f"kubeconfig {file or '~/.kube/config'}"
        if kubeconfig is not None and not Path(kubeconfig).is_file():
            raise ClusterError(where, "file not found", "pass the path of your kubeconfig or run "
                               "aws eks update-kubeconfig --name <cluster> --region <region>")
        try:
            contexts, active = config.list_kube_config_contexts(config_file=file)
            ctx_name = context or (active or {}).get("name", "")
            conf = client.Configuration()
            config.load_kube_config(config_file=file, context=context,
                                    client_configuration=conf)
        except ConfigException as exc:
            names = ""
            try:
                names = ", ".join(c["name"] for c in contexts)  # type: ignore[possibly-undefined]
            except Exception:  # noqa: BLE001 - contexts is unbound when the file is absent
                pass
            fix = (f"use one of the contexts: {names}" if names else
                   "create one with aws eks update-kubeconfig --name <cluster> --region <region>")
            raise ClusterError(where, f"no usable kubeconfig context ({str(exc).splitlines()[0]})", fix) from None
        except yaml.YAMLError as exc:
            raise _yaml_error(where, exc, kubeconfig) from None
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ClusterError(where, f"cannot be read ({first})", "fix the file or point KUBECONFIG at a valid one") from None
        conf.retries = 0
        cl = cls(client.ApiClient(conf), ctx_name, request_timeout_s=max(timeout_s, 1.0))
        cl.version(timeout_s=timeout_s)
        return cl

    @property
    def host(self) -> str:
        return str(self.api_client.configuration.host)

    # ------------------------------------------------------------------ raw REST
    def request(self, method: str, path: str, *, query: dict[str, Any] | None = None, body: Any = None,
                content_type: str | None = None, stream: bool = False, timeout_s: float | None = None,
                what: str = "", verb: str = "", resource: str = "") -> Any:
        """One HTTP call. Returns parsed JSON, text (``text/plain``), or the raw urllib3 response when ``stream``.

        Raises:
            ClusterError: on HTTP errors (translated) and on connection problems or timeouts.
        """
        from kubernetes.client.exceptions import ApiException

        headers = {"Accept": "application/json, */*"}
        if content_type:
            headers["Content-Type"] = content_type
        t = timeout_s or self.request_timeout_s
        params = [(k, str(v).lower() if isinstance(v, bool) else v) for k, v in (query or {}).items() if v is not None]
        try:
            resp = self.api_client.call_api(
                path, method, query_params=params, header_params=headers, body=body,
                auth_settings=["BearerToken"], _preload_content=False, _return_http_data_only=True,
                _request_timeout=(min(t, 10.0), t),
            )
        except ApiException as exc:
            raise translate(int(exc.status or 0), exc.body, verb or method.lower(), what or path, self.context,
                            resource) from None
        except Exception as exc:  # urllib3 MaxRetryError, timeouts, refused connections, TLS errors
            name = type(exc).__name__
            if "Timeout" in name or "timed out" in str(exc):
                raise ClusterError(what or path, f"the API server {self.host} did not answer within {t:.0f} s",
                                   "check the cluster and your network, or raise the timeout") from None
            reason = str(getattr(exc, "reason", "") or exc).splitlines()[0][:200]
            raise ClusterError(
                what or f"API server {self.host}", f"unreachable from kubeconfig context {self.context!r} ({reason})",
                "check that the cluster is up and reachable (VPN, endpoint access), then "
                f"kubectl --context {self.context} get --raw /version",
            ) from None
        if stream:
            return resp
        data = resp.data
        ctype = resp.headers.get("Content-Type", "")
        if "json" in ctype:
            return json.loads(data) if data else {}
        return data.decode("utf-8", "replace")

    def version(self, timeout_s: float | None = None) -> str:
        """The server's ``gitVersion`` (e.g. ``v1.31.4-eks-2d5f260``)."""
        return str(self.request("GET", "/version/", timeout_s=timeout_s, what="API server /version").get("gitVersion", ""))

    # ------------------------------------------------------------------ discovery
    def resource(self, api_version: str, kind: str) -> ResourceInfo:
        """Resolve ``(apiVersion, kind)`` to a :class:`ResourceInfo` through discovery (cached).

        Raises:
            ClusterError: the kind is not served (e.g. the Dynamo CRDs are not installed).
        """
        if api_version not in self._resources:
            path = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
            try:
                self._resources[api_version] = self.request("GET", path, what=f"API group {api_version}").get("resources", [])
            except ClusterError as exc:
                if "404" not in str(exc):
                    raise
                self._resources[api_version] = []
        for r in self._resources[api_version]:
            if r.get("kind") == kind and "/" not in r.get("name", ""):
                return ResourceInfo(api_version, kind, r["name"], bool(r.get("namespaced")))
        fix = ("install the Dynamo CRDs: workshop platform install" if api_version.startswith("nvidia.com/")
               else f"check apiVersion/kind (kubectl --context {self.context} api-resources)")
        raise ClusterError(f"{api_version} {kind}", "this kind is not served by the cluster", fix)

    def has_kind(self, api_version: str, kind: str) -> bool:
        try:
            self.resource(api_version, kind)
            return True
        except ClusterError:
            return False

    # ------------------------------------------------------------------ CRUD
    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """One object, or None when it does not exist."""
        r = self.resource(api_version, kind)
        try:
            return self.request("GET", r.path(namespace, name), what=describe(kind, name, namespace), verb="get",
                                resource=r.plural)
        except ClusterError as exc:
            if "(404 Not Found)" in str(exc):
                return None
            raise

    def list(self, api_version: str, kind: str, namespace: str | None = None, label_selector: str | None = None,
             field_selector: str | None = None) -> list[dict[str, Any]]:
        """Objects of a kind (all namespaces when ``namespace`` is None)."""
        return self.list_raw(api_version, kind, namespace, label_selector, field_selector).get("items", [])

    def list_raw(self, api_version: str, kind: str, namespace: str | None = None, label_selector: str | None = None,
                 field_selector: str | None = None) -> dict[str, Any]:
        r = self.resource(api_version, kind)
        q = {"labelSelector": label_selector, "fieldSelector": field_selector}
        return self.request("GET", r.path(namespace), query=q, what=describe(kind, None, namespace), verb="list",
                            resource=r.plural)

    def apply(self, obj: dict[str, Any], *, force_conflicts: bool = False, field_manager: str = FIELD_MANAGER,
              label: bool = True) -> dict[str, Any]:
        """Server-side apply one object (``PATCH application/apply-patch+yaml``); returns the object as stored.

        With ``label`` the object gets ``app.kubernetes.io/managed-by: workshop`` unless it already names a manager,
        which is what :func:`~workshop_lib.cluster.teardown.teardown` deletes by.
        """
        try:
            api_version, kind, name = obj["apiVersion"], obj["kind"], obj["metadata"]["name"]
        except (KeyError, TypeError):
            raise ClusterError("manifest", "an object lacks apiVersion, kind or metadata.name",
                               "render manifests with workshop render") from None
        r = self.resource(api_version, kind)
        ns = obj["metadata"].get("namespace") if r.namespaced else None
        if r.namespaced and not ns:
            raise ClusterError(describe(kind, name), "a namespaced object without metadata.namespace",
                               "set metadata.namespace in the manifest")
        if label:
            labels = obj["metadata"].setdefault("labels", {}) or {}
            labels.setdefault(MANAGED_BY, MANAGED_BY_VALUE)
            obj["metadata"]["labels"] = labels
        q = {"fieldManager": field_manager, "force": True if force_conflicts else None}
        return self.request("PATCH", r.path(ns, name), query=q, body=obj, content_type="application/apply-patch+yaml",
                            what=describe(kind, name, ns), verb="patch", resource=r.plural)

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool:
        """Delete one object (foreground propagation); False when it was already gone (safe to repeat)."""
        r = self.resource(api_version, kind)
        try:
            self.request("DELETE", r.path(namespace, name), body={"propagationPolicy": "Foreground"},
                         what=describe(kind, name, namespace), verb="delete", resource=r.plural)
            return True
        except ClusterError as exc:
            if "(404 Not Found)" in str(exc):
                return False
            raise

    # ------------------------------------------------------------------ watch
    def watch(self, api_version: str, kind: str, namespace: str | None = None, *, label_selector: str | None = None,
              field_selector: str | None = None, resource_version: str | None = None,
              timeout_s: float = 60.0, on_open: Callable[[Any], None] | None = None,
              ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield ``(type, object)`` from a watch stream until the server closes it (``timeoutSeconds``).

        Without ``resource_version`` the server first sends the current objects as ``ADDED``. ``on_open`` receives
        the open HTTP response, so another thread can end the stream early (``response.shutdown()``).
        """
        r = self.resource(api_version, kind)
        q = {"watch": 1, "labelSelector": label_selector, "fieldSelector": field_selector,
             "resourceVersion": resource_version, "timeoutSeconds": max(int(timeout_s), 1), "allowWatchBookmarks": True}
        resp = self.request("GET", r.path(namespace), query=q, stream=True, timeout_s=timeout_s + 10,
                            what=describe(kind, None, namespace), verb="watch", resource=r.plural)
        if on_open:
            on_open(resp)
        try:
            buf = b""
            for chunk in resp.stream(65536, decode_content=True):
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line.strip():
                        ev = json.loads(line)
                        if ev.get("type") == "ERROR":
                            st = ev.get("object") or {}
                            if st.get("code") == 410:
                                return  # resourceVersion too old: the caller relists
                            raise ClusterError(describe(kind, None, namespace), f"watch failed: {st.get('message')}",
                                               "retry")
                        yield ev["type"], ev["object"]
        except ClusterError:
            raise
        except Exception as exc:  # a read timeout or a closed connection ends the stream
            if "timed out" in str(exc).lower() or "Timeout" in type(exc).__name__ or "closed" in str(exc).lower():
                return
            raise ClusterError(describe(kind, None, namespace), f"watch stream broke ({type(exc).__name__}: {exc})",
                               "retry; check the API server's health") from None
        finally:
            resp.release_conn()
