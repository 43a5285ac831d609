"""``workshop validate``: check manifests offline (CRD schema, structure, workshop lint rules).

Examples:
    workshop validate manifests/ --crd ../shared/reference/dynamo-0.9.0/crds/nvidia.com_dynamographdeployments.yaml
    workshop validate my-dgd.yaml --json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from workshop_lib.errors import ValidationFailed
from workshop_lib.manifests.crdsource import SchemaSource, resolve
from workshop_lib.manifests.validate import errors, validate_paths


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="validate manifests against the DGD CRD and the workshop's lint rules")
    p.add_argument("paths", nargs="+", metavar="PATH", help="manifest files or directories")
    p.add_argument("--crd", help="DynamoGraphDeployment CRD yaml (default: the cluster's, else the pinned dynamo-crds "
                   "chart via helm, else the kit's own schema)")
    p.add_argument("--json", action="store_true", help="print the findings as JSON")
    p.set_defaults(func=run)


def _crd(arg: str | None) -> SchemaSource:
    # --crd FILE, else the cluster's CRD, else the pinned dynamo-crds chart, else the kit's own schema (issue 19 item 11)
    return resolve(Path(arg) if arg else None)


def _is_text(path: Path) -> bool:
    try:
        path.read_text(encoding="utf-8")
        return True
    except (UnicodeDecodeError, OSError):
        return False


def run(args: argparse.Namespace) -> int:
    source = _crd(args.crd)
    print(f"schema: {source.source}", file=sys.stderr)
    try:
        findings = validate_paths(args.paths, source)
    except UnicodeDecodeError:
        bad = next((p for p in args.paths if Path(p).is_file() and not _is_text(Path(p))), args.paths[0])
        raise ValidationFailed(bad, "not a text (UTF-8) file", "give YAML manifest files or folders of them") from None
    errs = errors(findings)
    if args.json:
        print(json.dumps([f.to_dict() for f in findings], indent=2))
    else:
        for f in findings:
            print(f.format())
        warnings = sum(f.severity == "warning" for f in findings)
        print(f"{len(errs)} error(s), {warnings} warning(s)")
    if errs:
        if not args.json:
            raise ValidationFailed(errs[0].file, f"{len(errs)} error finding(s), first: {errs[0].code} {errs[0].message}",
                                   errs[0].fix)
        return 1
    return 0
