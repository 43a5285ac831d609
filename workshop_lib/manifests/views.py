"""Read-only views of manifests: the containers of any workload and the services of a DynamoGraphDeployment.

Example:
    >>> from workshop_lib.manifests.documents import load_text
    >>> doc = load_text("kind: Pod\\nmetadata: {name: p}\\nspec: {containers: [{name: c, image: busybox:1.36}]}")[0]
    >>> [(path, c["image"]) for path, c, _ in containers(doc)]
    [(('spec', 'containers', 0), 'busybox:1.36')]
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from workshop_lib.k8s import DGD_KIND, EFA_RESOURCE
from workshop_lib.manifests.documents import Doc, FieldPath

POD_TEMPLATE_KINDS = {"Deployment", "DaemonSet", "StatefulSet", "ReplicaSet", "Job"}


def _get(data: Any, *keys: str | int) -> Any:
    for k in keys:
        if isinstance(data, dict) and isinstance(k, str):
            data = data.get(k)
        elif isinstance(data, list) and isinstance(k, int) and k < len(data):
            data = data[k]
        else:
            return None
    return data


def pod_specs(doc: Doc) -> list[tuple[FieldPath, dict[str, Any]]]:
    """``(path, pod spec)`` of a Pod, a workload's template or each DGD service's ``extraPodSpec``."""
    d = doc.data if isinstance(doc.data, dict) else {}
    kind = doc.kind
    if kind == "Pod":
        paths: list[FieldPath] = [("spec",)]
    elif kind in POD_TEMPLATE_KINDS:
        paths = [("spec", "template", "spec")]
    elif kind == "CronJob":
        paths = [("spec", "jobTemplate", "spec", "template", "spec")]
    elif kind == DGD_KIND:
        services = _get(d, "spec", "services") or {}
        paths = [("spec", "services", s, "extraPodSpec") for s in services if isinstance(services, dict)]
    else:
        paths = []
    return [(p, spec) for p in paths if isinstance(spec := _get(d, *p), dict)]


def containers(doc: Doc) -> list[tuple[FieldPath, dict[str, Any], dict[str, Any]]]:
    """``(path, container, pod spec)`` of every container of ``doc`` (DGD ``mainContainer`` included)."""
    out = []
    for path, spec in pod_specs(doc):
        for key in ("initContainers", "containers"):
            for i, c in enumerate(spec.get(key) or []):
                if isinstance(c, dict):
                    out.append(((*path, key, i), c, spec))
        if isinstance(spec.get("mainContainer"), dict):
            out.append(((*path, "mainContainer"), spec["mainContainer"], spec))
    return out


@dataclass(frozen=True)
class Service:
    """One service of a DynamoGraphDeployment, with what the lint rules need to know about it."""

    doc: Doc
    name: str
    spec: dict[str, Any]

    @property
    def path(self) -> FieldPath:
        return ("spec", "services", self.name)

    @property
    def main(self) -> dict[str, Any]:
        return _get(self.spec, "extraPodSpec", "mainContainer") or {}

    @property
    def pod(self) -> dict[str, Any]:
        return _get(self.spec, "extraPodSpec") or {}

    @property
    def argv(self) -> list[str]:
        return [str(a) for a in (self.main.get("command") or []) + (self.main.get("args") or [])]

    @property
    def framework(self) -> str:
        """``vllm``, ``trtllm``, ``sglang`` from the command, else the graph's ``backendFramework``, else ``""``."""
        text = " ".join(self.argv)
        for fw in ("vllm", "trtllm", "sglang"):
            if f"dynamo.{fw}" in text:
                return fw
        if self.spec.get("componentType") == "worker":
            return str(_get(self.doc.data, "spec", "backendFramework") or "")
        return ""

    @property
    def role(self) -> str:
        """``prefill``, ``decode`` or ``""`` (from ``subComponentType`` or the disaggregation flags)."""
        sub = str(self.spec.get("subComponentType") or "")
        if sub in ("prefill", "decode"):
            return sub
        argv = self.argv
        for role in ("prefill", "decode"):
            if f"--is-{role}-worker" in argv or any(a == role and i and argv[i - 1] == "--disaggregation-mode"
                                                   for i, a in enumerate(argv)):
                return role
        return ""

    def env(self) -> dict[str, tuple[FieldPath, str | None]]:
        """Env var name -> (path, value or None for valueFrom), from ``envs`` then the main container's ``env``."""
        out: dict[str, tuple[FieldPath, str | None]] = {}
        for key, base in (("envs", self.path), ("env", (*self.path, "extraPodSpec", "mainContainer"))):
            holder = self.spec if key == "envs" else self.main
            for i, e in enumerate(holder.get(key) or []):
                if isinstance(e, dict) and "name" in e:
                    out[str(e["name"])] = ((*base, key, i), None if "value" not in e else str(e["value"]))
        return out

    def arg_value(self, flag: str) -> str | None:
        argv = self.argv
        for i, a in enumerate(argv[:-1]):
            if a == flag:
                return argv[i + 1]
        return None

    @property
    def kv_backend(self) -> str:
        """The NIXL backend this worker really uses (UCX is the default everywhere)."""
        if self.framework == "vllm":
            raw = self.arg_value("--kv-transfer-config")
            try:
                backends = json.loads(raw)["kv_connector_extra_config"]["backends"] if raw else []
            except (ValueError, KeyError, TypeError):
                backends = []
            return str(backends[0]).upper() if backends else "UCX"
        if self.framework == "trtllm":
            value = (self.env().get("TRTLLM_NIXL_KVCACHE_BACKEND") or ((), None))[1]
            # TRT-LLM compares exactly: "libfabric" or a typo falls back to UCX (with a WARNING)
            return value if value in ("UCX", "LIBFABRIC") else "UCX"
        return "UCX"

    def quantity(self, key: str) -> tuple[FieldPath, str] | None:
        """``memory``/``cpu``/EFA from ``resources.limits`` (then requests, then the main container's resources)."""
        for part in ("limits", "requests"):
            res = _get(self.spec, "resources", part) or {}
            value = res.get(key) if key != EFA_RESOURCE else (res.get("custom") or {}).get(key)
            if value is not None:
                return (*self.path, "resources", part, key), str(value)
            value = _get(self.main, "resources", part, key)
            if value is not None:
                return (*self.path, "extraPodSpec", "mainContainer", "resources", part, key), str(value)
        return None

    @property
    def privileged(self) -> bool:
        return bool(_get(self.main, "securityContext", "privileged"))


def services(doc: Doc) -> list[Service]:
    """The services of a DynamoGraphDeployment (empty for other kinds)."""
    if doc.kind != DGD_KIND:
        return []
    svcs = _get(doc.data, "spec", "services")
    return [Service(doc, str(n), s) for n, s in svcs.items() if isinstance(s, dict)] if isinstance(svcs, dict) else []


def container_efa(c: dict[str, Any]) -> str | None:
    for part in ("limits", "requests"):
        v = _get(c, "resources", part, EFA_RESOURCE)
        if v is not None:
            return str(v)
    return None
