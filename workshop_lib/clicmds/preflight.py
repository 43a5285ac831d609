"""``workshop preflight``: PASS/WARN/FAIL table of what the workshop needs; exits 1 on any FAIL."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from workshop_lib import preflight, table
from workshop_lib.clicmds.config import load
from workshop_lib.config import TARGETS


def add_cluster_args(p: argparse.ArgumentParser) -> None:
    """``--kubeconfig``/``--context`` (defaults: ``$KUBECONFIG`` or ``~/.kube/config``, its current context)."""
    p.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
    p.add_argument("--context", help="kubeconfig context (default: the current one)")
    p.add_argument("--config", help="YAML file of workshop parameters")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one parameter (repeatable)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("preflight", help="check the cluster (or this machine) is ready for the workshop")
    p.add_argument("--target", choices=TARGETS, default="eks", help="what to check (default: eks)")
    p.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    add_cluster_args(p)
    p.set_defaults(func=run)


SHOWN = ["status", "check", "found", "expected"]  # the text table's columns; the fix goes under its row


def show(rows: Any, as_json: bool = False) -> str:
    """Preflight (or platform) rows for the terminal through :mod:`workshop_lib.table`: JSON objects, or a text table
    of status, check, found, expected with each fix on its own line (cells never clipped: a verdict shows in full)."""
    return table.to_json(rows) if as_json else table.text(rows, SHOWN, width=None, below="fix")


def run(args: argparse.Namespace) -> int:
    cfg = dataclasses.replace(load(args), target=args.target)
    df = preflight.run(args.target, cfg, kubeconfig=args.kubeconfig, context=args.context)
    print(show(df, args.json))
    return 1 if preflight.failed(df) else 0
