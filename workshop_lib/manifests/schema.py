"""Offline validation of DynamoGraphDeployments against the CRD's ``openAPIV3Schema``.

The schema is tightened the way the API server's strict field validation behaves: an object with declared
``properties`` rejects unknown fields unless it says ``x-kubernetes-preserve-unknown-fields``; ``nullable`` allows null.

Example:
    >>> schema = prepare({"type": "object", "properties": {"spec": {"type": "object", "properties": {"a": {"type": "string"}}}}})
    >>> [e.message for e in schema_errors(schema, {"spec": {"b": 1}})]
    ["unknown field 'b'"]
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from workshop_lib.errors import ClusterError, ManifestError
from workshop_lib.k8s import DGD_CRD

DGD_CRD_NAME = DGD_CRD


@dataclass(frozen=True)
class SchemaError:
    """One schema violation: the path of the field and what is wrong with it."""

    path: tuple[str | int, ...]
    message: str


def prepare(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of an OpenAPI v3 structural schema made strict for JSON-Schema validation."""
    out = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("nullable") is True and isinstance(node.get("type"), str):
                node["type"] = [node["type"], "null"]
            if "properties" in node and "additionalProperties" not in node and not node.get("x-kubernetes-preserve-unknown-fields"):
                node["additionalProperties"] = False
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(out)
    return out


def crd_schema(crd: dict[str, Any], version: str = "v1alpha1") -> dict[str, Any]:
    """The ``openAPIV3Schema`` of ``version`` in a CRD object (or ``crd`` itself when it already is a schema).

    Raises:
        ManifestError: the object is neither a CRD with that version nor a schema.
    """
    if crd.get("kind") != "CustomResourceDefinition":
        if crd.get("type") == "object" and "properties" in crd:
            return crd
        raise ManifestError("crd", "not a CustomResourceDefinition or an openAPIV3Schema", "pass the DGD CRD yaml")
    for v in crd.get("spec", {}).get("versions", []):
        if v.get("name") == version:
            return v["schema"]["openAPIV3Schema"]
    raise ManifestError("crd", f"the CRD has no version {version!r}", "pass the Dynamo 0.9.0 DynamoGraphDeployment CRD")


@lru_cache(maxsize=4)
def _load_crd_file(path: str, mtime: float) -> dict[str, Any]:
    try:
        data = yaml.load(Path(path).read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except OSError as exc:
        raise ManifestError(path, f"cannot read the CRD ({exc.strerror})", "check the --crd path") from None
    except yaml.YAMLError as exc:
        raise ManifestError(path, f"invalid YAML in the CRD ({exc})", "pass the CRD yaml file") from None
    if not isinstance(data, dict):
        raise ManifestError(path, "the CRD file does not hold a mapping", "pass the CRD yaml file")
    return prepare(crd_schema(data))


def load_schema(crd: str | os.PathLike[str] | dict[str, Any]) -> dict[str, Any]:
    """The prepared DGD schema from a CRD file, a CRD object or a schema object (files are cached)."""
    if isinstance(crd, dict):
        return prepare(crd_schema(crd))
    p = Path(crd)
    if not p.is_file():
        raise ManifestError(str(p), "no such CRD file", "pass e.g. ../shared/reference/dynamo-0.9.0/crds/nvidia.com_dynamographdeployments.yaml")
    return _load_crd_file(str(p.resolve()), p.stat().st_mtime)


def crd_from_cluster(cluster: Any = None) -> dict[str, Any]:
    """The DGD CRD of ``cluster`` (a :class:`~workshop_lib.cluster.client.Cluster`; None: the current kubeconfig's).

    Raises:
        ClusterError: no kubeconfig, the cluster cannot be reached, or the CRD is not installed.
    """
    from workshop_lib.cluster.client import Cluster  # noqa: PLC0415 - keep the kubernetes client off the fast path

    cluster = cluster or Cluster.connect()
    crd = cluster.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", DGD_CRD_NAME)
    if crd is None:
        raise ClusterError(DGD_CRD_NAME, "not installed in the cluster", "workshop platform install (dynamo-crds chart)")
    return crd


def schema_errors(schema: dict[str, Any], data: Any) -> list[SchemaError]:
    """Every violation of ``schema`` by ``data``, unknown fields reported one by one at their own path."""
    out: list[SchemaError] = []
    validator = jsonschema.Draft7Validator(schema)
    for err in validator.iter_errors(data):
        path = tuple(err.absolute_path)
        if err.validator == "additionalProperties" and err.validator_value is False and isinstance(err.instance, dict):
            known = set(err.schema.get("properties", {}))
            for key in sorted(k for k in err.instance if k not in known):
                out.append(SchemaError((*path, key), f"unknown field {key!r}"))
            continue
        out.append(SchemaError(path, _short(err)))
    return sorted(out, key=lambda e: ([str(p) for p in e.path], e.message))


def _short(err: jsonschema.ValidationError) -> str:
    if err.validator == "type":
        return f"{err.instance!r} is not of type {err.validator_value}"
    if err.validator == "required":
        return err.message
    if err.validator == "enum":
        return f"{err.instance!r} is not one of {err.validator_value}"
    msg = err.message
    return msg if len(msg) < 160 else msg[:157] + "..."
