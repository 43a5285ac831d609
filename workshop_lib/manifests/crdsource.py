"""Where the DynamoGraphDeployment schema comes from, for every user (issue 19 item 11).

In order: a CRD file or object the caller names; the CRD installed in the cluster of the current kubeconfig; the
pinned ``dynamo-crds`` Helm chart when ``helm`` is on PATH and can pull it; else the kit's own schema,
``data/dgd-schema-0.9.0.yaml``. That file is the 0.9.0 CRD projected onto the fields the kit renders: every object on
a rendered path keeps all its property names and the full schema of the properties the kit uses; the others keep only
their type (objects there accept any content). So a typo in a field name the kit writes, a wrong type or a bad enum
value is caught, and a valid field the kit never writes is not reported. :func:`kit_schema_from_crd` rebuilds it and a
unit test compares it with the real CRD in ``../shared`` when that is present.

:class:`SchemaSource` carries the prepared schema and one line saying which source was used; validation reports it.

Example:
    >>> src = kit_source()
    >>> src.kind, "fields the kit renders" in src.source
    ('kit', True)
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from workshop_lib import versions
from workshop_lib.errors import ClusterError, ManifestError, PlatformError
from workshop_lib.k8s import DGD_KIND
from workshop_lib.manifests.schema import DGD_CRD_NAME, crd_from_cluster, crd_schema, load_schema, prepare

KIT_SCHEMA = Path(__file__).resolve().parent / "data" / f"dgd-schema-{versions.DYNAMO}.yaml"
# Schema keywords a projected node keeps (descriptions and defaults are dropped: they do not validate anything).
_KEEP = ("type", "enum", "format", "nullable", "required", "pattern", "minimum", "maximum", "minLength", "maxLength",
         "minItems", "maxItems", "anyOf", "oneOf", "allOf", "x-kubernetes-preserve-unknown-fields",
         "x-kubernetes-int-or-string", "x-kubernetes-embedded-resource")
HELM_TIMEOUT_S = 120


@dataclass(frozen=True)
class SchemaSource:
    """A prepared DGD schema and where it came from (``kind``: file, cluster, chart or kit)."""

    schema: dict[str, Any]
    kind: str
    source: str


# ------------------------------------------------------------------------------------------------ the kit's schema
def used_fields(dgds: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The tree of field names the given DGDs use: ``*`` stands for a map's keys, ``[]`` for a list's items."""
    tree: dict[str, Any] = {}

    def walk(node: Any, into: dict[str, Any], in_map: bool) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, into.setdefault("*" if in_map else str(k), {}), False)
        elif isinstance(node, list):
            for v in node:
                walk(v, into.setdefault("[]", {}), False)

    for d in dgds:
        spec = d.get("spec") or {}
        top = {k: v for k, v in d.items() if k != "spec"}
        walk(top, tree, False)
        spec_tree = tree.setdefault("spec", {})
        walk({k: v for k, v in spec.items() if k != "services"}, spec_tree, False)
        walk(spec.get("services") or {}, spec_tree.setdefault("services", {}), True)
    return tree


def _shallow(node: dict[str, Any]) -> dict[str, Any]:
    out = {k: node[k] for k in ("type", "enum", "format", "nullable", "anyOf", "x-kubernetes-int-or-string") if k in node}
    if node.get("type") == "object" or "properties" in node or "additionalProperties" in node:
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def project(node: dict[str, Any], used: dict[str, Any]) -> dict[str, Any]:
    """``node`` (an OpenAPI v3 schema) kept in full along ``used``, shallow elsewhere (see the module docstring)."""
    out = {k: node[k] for k in _KEEP if k in node}
    if isinstance(node.get("properties"), dict):
        out["properties"] = {name: project(sub, used[name]) if name in used else _shallow(sub)
                             for name, sub in node["properties"].items()}
    if isinstance(node.get("additionalProperties"), dict):
        sub = node["additionalProperties"]
        out["additionalProperties"] = project(sub, used["*"]) if "*" in used else _shallow(sub)
    elif "additionalProperties" in node:
        out["additionalProperties"] = node["additionalProperties"]
    if isinstance(node.get("items"), dict):
        out["items"] = project(node["items"], used["[]"]) if "[]" in used else _shallow(node["items"])
    return out


def kit_dgds() -> list[dict[str, Any]]:
    """Every DGD the kit can render: the committed set, the multi-DGD layout, one-node LIBFABRIC, both frameworks."""
    from workshop_lib.config import WorkshopConfig  # noqa: PLC0415 - avoids an import cycle through profiles
    from workshop_lib.manifests.profiles import render, render_all  # noqa: PLC0415

    files = render_all()
    for fw in ("vllm", "trtllm"):
        cfg = WorkshopConfig(framework=fw, prefill_node="a", decode_node="b")
        files += render(cfg, "cross-node", {"layout": "multi"}) + render(cfg, "cross-node")
        files += render(WorkshopConfig(framework=fw), "single-node", {"kv_backend": "LIBFABRIC"})
    return [d for f in files for d in f.docs if isinstance(d, dict) and d.get("kind") == DGD_KIND]


def kit_schema_from_crd(crd: dict[str, Any]) -> dict[str, Any]:
    """The kit's schema (unprepared) from a DGD CRD object: its ``v1alpha1`` schema projected onto :func:`kit_dgds`."""
    return project(crd_schema(crd), used_fields(kit_dgds()))


def write_kit_schema(crd_file: str | os.PathLike[str], out: Path = KIT_SCHEMA) -> Path:
    """Regenerate ``data/dgd-schema-<version>.yaml`` from a CRD file (run when the pinned Dynamo or the renders change)."""
    crd = yaml.safe_load(Path(crd_file).read_text())
    head = (f"# The Dynamo {versions.DYNAMO} DynamoGraphDeployment v1alpha1 schema projected onto the fields the kit renders.\n"
            "# Generated by workshop_lib.manifests.crdsource.write_kit_schema(<CRD yaml>); do not edit by hand.\n")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(head + yaml.safe_dump(kit_schema_from_crd(crd), sort_keys=True, width=120))
    return out


@lru_cache(maxsize=1)
def _kit_prepared() -> dict[str, Any]:
    if not KIT_SCHEMA.is_file():
        raise ManifestError(str(KIT_SCHEMA), "the kit's DGD schema is missing from the package", "reinstall the kit")
    return prepare(yaml.safe_load(KIT_SCHEMA.read_text()))


def kit_source(why: str = "") -> SchemaSource:
    """The kit's own schema as a :class:`SchemaSource`; ``why`` says why no better source was used."""
    rel = f"workshop_lib/manifests/data/{KIT_SCHEMA.name}"
    note = f"; {why}" if why else ""
    return SchemaSource(_kit_prepared(), "kit", f"kit schema {rel} (Dynamo {versions.DYNAMO} CRD, fields the kit "
                        f"renders; other fields unchecked{note})")


# ------------------------------------------------------------------------------------------------ the other sources
def file_source(crd: str | os.PathLike[str] | dict[str, Any]) -> SchemaSource:
    """A CRD (or schema) file or object the caller names."""
    if isinstance(crd, dict):
        return SchemaSource(load_schema(crd), "file", "CRD object given by the caller")
    return SchemaSource(load_schema(crd), "file", f"CRD file {crd}")


def cluster_source() -> SchemaSource:
    """The CRD installed in the cluster of the current kubeconfig.

    Raises:
        ClusterError: no cluster, or no DGD CRD there.
    """
    crd = crd_from_cluster()
    chart = ((crd.get("metadata") or {}).get("labels") or {}).get("helm.sh/chart", "chart version unknown")
    return SchemaSource(prepare(crd_schema(crd)), "cluster", f"cluster CRD {DGD_CRD_NAME} ({chart})")


def chart_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "workshop" / f"dynamo-crds-{versions.chart_version('dynamo-crds')}"


def _find_dgd_crd(root: Path) -> Path | None:
    for p in sorted(root.rglob("*.yaml")):
        try:
            text = p.read_text()
        except OSError:
            continue
        if f"name: {DGD_CRD_NAME}" in text and "CustomResourceDefinition" in text:
            return p
    return None


def chart_source(timeout_s: float = HELM_TIMEOUT_S) -> SchemaSource:
    """The DGD CRD of the pinned ``dynamo-crds`` chart, pulled once with ``helm pull`` into the user's cache.

    Raises:
        ManifestError: no ``helm`` on PATH, the pull failed (no network...), or the chart holds no DGD CRD.
    """
    version = versions.chart_version("dynamo-crds")
    cache = chart_cache_dir()
    found = _find_dgd_crd(cache) if cache.is_dir() else None
    if found is None and str(cache) in _PULL_FAILED:
        raise _PULL_FAILED[str(cache)]  # one failed pull per process: no second wait for a network that is not there
    try:
        found = found or _pull_chart(version, cache, timeout_s)
    except ManifestError as exc:
        if exc.where != "helm":
            _PULL_FAILED[str(cache)] = exc
        raise
    return SchemaSource(load_schema(found), "chart", f"dynamo-crds {version} chart ({found})")


_PULL_FAILED: dict[str, ManifestError] = {}


def _pull_chart(version: str, cache: Path, timeout_s: float) -> Path:
    """``helm pull`` the chart into a temporary folder and keep its DGD CRD file in ``cache``."""
    from workshop_lib.helm_runner import run_helm  # noqa: PLC0415 - only when a pull is needed
    from workshop_lib.manifests.helm import OCI_REPO  # noqa: PLC0415 - helm imports config, keep this module light

    with tempfile.TemporaryDirectory() as tmp:
        argv = ["helm", "pull", f"{OCI_REPO}/dynamo-crds", "--version", version, "--untar", "--untardir", tmp]
        try:
            run_helm(argv, timeout_s=timeout_s)  # the one Helm runner
        except PlatformError as exc:
            if exc.where == "helm":
                raise ManifestError("helm", "not on PATH", "install Helm 3, pass --crd FILE, or connect to the cluster") from None
            raise ManifestError("helm pull dynamo-crds", exc.problem,
                                "check the network and registry access, or pass --crd FILE") from None
        got = _find_dgd_crd(Path(tmp))
        if got is None:
            raise ManifestError("helm pull dynamo-crds", f"chart {version} holds no {DGD_CRD_NAME}", "pass --crd FILE")
        cache.mkdir(parents=True, exist_ok=True)
        shutil.copy(got, cache / got.name)
        return cache / got.name


def _kubeconfig_exists() -> bool:
    kubeconfig = os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
    return Path(kubeconfig.split(os.pathsep)[0]).is_file()


def resolve(crd: str | os.PathLike[str] | dict[str, Any] | None = None, *, cluster: bool | None = None,
            chart: bool = True) -> SchemaSource:
    """The best schema this user has: ``crd`` if given, else the cluster's, else the chart's, else the kit's.

    ``cluster=None`` tries the cluster only when a kubeconfig exists; ``chart=False`` skips the Helm pull. Failures of
    the cluster and chart sources are not errors: they are named in the kit source's line.
    """
    if crd is not None:
        return file_source(crd)
    why = []
    if cluster if cluster is not None else _kubeconfig_exists():
        try:
            return cluster_source()
        except ClusterError as exc:
            why.append(f"cluster: {exc.problem}")
    else:
        why.append("cluster: no kubeconfig")
    if chart:
        try:
            return chart_source()
        except ManifestError as exc:
            why.append(f"chart: {exc.where} {exc.problem}")
    return kit_source("; ".join(why))
