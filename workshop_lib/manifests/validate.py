"""Validate manifests offline: DGDs against the CRD schema, core kinds structurally, then the workshop lint rules.

Codes: ``S001`` schema violation, ``S000`` schema not checked (no CRD given), ``K001`` missing apiVersion/kind/name,
``K002`` container without an image, ``K003`` a resource quantity that does not parse, ``K004`` an invalid name;
``WL0xx`` are the lint rules of :mod:`workshop_lib.manifests.lint`.

Example:
    >>> from workshop_lib.manifests.documents import load_text
    >>> docs = load_text("apiVersion: v1\\nkind: Pod\\nmetadata: {name: p}\\nspec: {containers: [{name: c}]}")
    >>> [f.code for f in validate_docs(docs, None) if f.severity == "error"]
    ['K002']
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from workshop_lib.checks import FAIL, PASS, WARN, CheckTable
from workshop_lib.config import parse_quantity
from workshop_lib.errors import ConfigError
from workshop_lib.k8s import DGD_KIND
from workshop_lib.manifests.crdsource import SchemaSource
from workshop_lib.manifests.documents import Doc, FieldPath, load_documents, yaml_files
from workshop_lib.manifests.findings import Finding, finding
from workshop_lib.manifests.lint import lint
from workshop_lib.manifests.schema import load_schema, schema_errors
from workshop_lib.manifests.views import containers, services

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


def _structure(doc: Doc) -> Iterable[Finding]:
    d = doc.data
    if not isinstance(d, dict):
        yield finding(doc, "K001", "error", (), "the document is not a mapping", "write a Kubernetes object")
        return
    for key in ("apiVersion", "kind"):
        if not d.get(key):
            yield finding(doc, "K001", "error", (key,), f"missing {key}", f"add {key} (e.g. apiVersion: v1, kind: Pod)")
    name = (d.get("metadata") or {}).get("name") if isinstance(d.get("metadata"), dict) else None
    if not name:
        yield finding(doc, "K001", "error", ("metadata",), "missing metadata.name", "give the object a name")
    elif not (isinstance(name, str) and len(name) <= 253 and _NAME.match(name)):
        yield finding(doc, "K004", "error", ("metadata", "name"), f"{name!r} is not a valid Kubernetes name",
                      "use lower-case letters, digits, '-' and '.'")
    for path, c, _ in containers(doc):
        if not c.get("image"):
            yield finding(doc, "K002", "error", path, f"container {c.get('name', '?')} has no image",
                          "set image to a pinned reference from workshop_lib/versions.py")
        for part in ("requests", "limits"):
            res = (c.get("resources") or {}).get(part) or {}
            if isinstance(res, dict):
                yield from _quantities(doc, (*path, "resources", part), res)
    for svc in services(doc):
        for part in ("requests", "limits"):
            res = ((svc.spec.get("resources") or {}).get(part)) or {}
            if isinstance(res, dict):
                plain = {k: v for k, v in res.items() if k not in ("custom", "gpuType")}
                yield from _quantities(doc, (*svc.path, "resources", part), plain)
                if isinstance(res.get("custom"), dict):
                    yield from _quantities(doc, (*svc.path, "resources", part, "custom"), res["custom"])


def _quantities(doc: Doc, base: FieldPath, values: dict[str, Any]) -> Iterable[Finding]:
    for key, value in values.items():
        try:
            parse_quantity(value if isinstance(value, (int, float)) else str(value), key)
        except ConfigError:
            yield finding(doc, "K003", "error", (*base, key), f"{value!r} is not a Kubernetes quantity",
                          "use e.g. 128Gi, 16, 500m")


def _schema(doc: Doc, schema: dict[str, Any], source: str) -> Iterable[Finding]:
    for err in schema_errors(schema, doc.data):
        yield finding(doc, "S001", "error", err.path, f"CRD schema ({source}): {err.message}",
                      "match the DynamoGraphDeployment CRD of Dynamo 0.9.0 (kubectl explain dgd.spec)")


CrdArg = str | os.PathLike[str] | dict[str, Any] | SchemaSource | None


def validate_docs(docs: list[Doc], crd: CrdArg) -> list[Finding]:
    """Findings for ``docs``: schema (DGDs, when ``crd`` is given), structure, lint; sorted by file and line.

    ``crd`` is a CRD file or object, a :class:`~workshop_lib.manifests.crdsource.SchemaSource` (see
    :func:`~workshop_lib.manifests.crdsource.resolve`, which always finds one), or None to skip the schema (S000).
    """
    if isinstance(crd, SchemaSource):
        schema, source = crd.schema, crd.kind
    else:
        schema, source = (load_schema(crd), "file") if crd is not None else (None, "")
    out: list[Finding] = []
    for doc in docs:
        out.extend(_structure(doc))
        if doc.kind == DGD_KIND:
            if schema is not None:
                out.extend(_schema(doc, schema, source))
            else:
                out.append(finding(doc, "S000", "info", (), "CRD schema not checked (no CRD given)",
                                   "validate with workshop_lib.manifests.crdsource.resolve() (cluster, chart or the kit's schema)"))
    out.extend(lint(docs))
    return sorted(set(out), key=lambda f: (f.file, f.line, f.code, f.field_path, f.message))


def validate_paths(paths: list[str | os.PathLike[str]] | list[Path], crd: CrdArg) -> list[Finding]:
    """Validate every YAML file under ``paths`` (files or directories) together.

    Raises:
        ManifestError: a path that does not exist or a file that is not valid YAML (``file:line``).
    """
    docs = [d for p in yaml_files(list(paths)) for d in load_documents(p)]
    return validate_docs(docs, crd)


def errors(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity == "error"]


def file_checks(paths: list[str | os.PathLike[str]] | list[Path], root: Path, source: SchemaSource,
                title: str = "Rendered manifests (offline validation)") -> CheckTable:
    """Validate ``paths`` against ``source`` and the lint rules; one verdict row per file (:class:`~workshop_lib.checks.Check`).

    A file FAILs on any error finding, WARNs on a warning (or an unchecked schema, ``S000``), else PASSes; the
    evidence is its first finding (``schema <kind>: line N CODE field: message``) and the fix that finding's.
    """
    files = [Path(p) for p in paths if Path(p).suffix in (".yaml", ".yml")]
    by_file: dict[str, list[Finding]] = {}
    for f in validate_paths([str(p) for p in files], source):
        by_file.setdefault(str(Path(f.file).resolve()), []).append(f)
    table = CheckTable(title)
    for p in files:
        mine = by_file.get(str(p.resolve()), [])
        errs = [f for f in mine if f.severity == "error"]
        warnings = [f for f in mine if f.severity == "warning" or f.code == "S000"]
        first = (errs or warnings or [None])[0]
        evidence = (f"schema {source.kind}: line {first.line} {first.code} {first.field_path}: {first.message}"
                    if first is not None else f"no findings; schema: {source.source}")
        status = FAIL if errs else (WARN if warnings else PASS)
        table.add(str(p.relative_to(root)), status, f"{len(errs)} errors, {len(warnings)} warnings", "0 errors",
                  evidence, first.fix if first is not None else "")
    return table
