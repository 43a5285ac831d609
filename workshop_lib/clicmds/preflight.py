"""``workshop preflight``: PASS/WARN/FAIL table of what the workshop needs; exits 1 on any FAIL."""

from __future__ import annotations

import argparse
import dataclasses
import json

from workshop_lib import preflight
from workshop_lib.clicmds.config import load


def add_cluster_args(p: argparse.ArgumentParser) -> None:
    """``--kubeconfig``/``--context`` (defaults: ``$KUBECONFIG`` or ``~/.kube/config``, its current context)."""
    p.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
    p.add_argument("--context", help="kubeconfig context (default: the current one)")
    p.add_argument("--config", help="YAML file of workshop parameters")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one parameter (repeatable)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("preflight", help="check the cluster (or this machine) is ready for the workshop")
    p.add_argument("--target", choices=["eks", "local"], default="eks", help="what to check (default: eks)")
    p.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    add_cluster_args(p)
    p.set_defaults(func=run)


def format_table(rows: list[dict[str, str]]) -> str:
    """A fixed-width table: status, check, found, expected, then the fix on its own line for non-PASS rows."""
    w_check = max([len("check"), *(len(r["check"]) for r in rows)])
    w_found = min(max([len("found"), *(len(r["found"]) for r in rows)]), 60)
    lines = [f"{'status':<6}  {'check':<{w_check}}  {'found':<{w_found}}  expected"]
    for r in rows:
        lines.append(f"{r['status']:<6}  {r['check']:<{w_check}}  {r['found']:<{w_found}}  {r['expected']}")
        if r["status"] != preflight.PASS and r["fix"]:
            lines.append(f"{'':<6}  {'':<{w_check}}  fix: {r['fix']}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    cfg = dataclasses.replace(load(args), target=args.target)
    df = preflight.run(args.target, cfg, kubeconfig=args.kubeconfig, context=args.context)
    rows = df.to_dict(orient="records")
    print(json.dumps(rows, indent=2) if args.json else format_table(rows))
    return 1 if preflight.failed(df) else 0
