"""``workshop platform install|status``: the Dynamo CRDs and platform through Helm, and their health."""

from __future__ import annotations

import argparse
import dataclasses
import shlex

from workshop_lib import dynamo_platform, preflight
from workshop_lib.clicmds.config import load
from workshop_lib.clicmds.preflight import add_cluster_args, show
from workshop_lib.cluster.client import Cluster


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("platform", help="install or check the Dynamo platform (dynamo-crds, dynamo-platform) via Helm")
    psub = p.add_subparsers(dest="platform_command", metavar="ACTION", required=True)
    i = psub.add_parser("install", help="helm upgrade --install both charts (idempotent), then wait for the pods")
    i.add_argument("--dry-run", action="store_true", help="print the helm commands, run nothing")
    i.add_argument("--no-wait", action="store_true", help="do not wait for the platform pods")
    i.add_argument("--timeout", type=float, default=600, help="seconds to wait for the pods (default 600)")
    add_cluster_args(i)
    i.set_defaults(func=run_install)
    s = psub.add_parser("status", help="CRD version and platform pods (and helm releases with --helm)")
    s.add_argument("--helm", action="store_true", help="also list the helm releases (needs helm)")
    s.add_argument("--json", action="store_true", help="print JSON rows")
    add_cluster_args(s)
    s.set_defaults(func=run_status)


def run_install(args: argparse.Namespace) -> int:
    cfg = dataclasses.replace(load(args), target="eks")
    if not args.dry_run:
        # Reach the cluster before any Helm install: an unreachable or refusing API server stops here, not after
        # two half-run installs.
        Cluster.connect(args.kubeconfig, args.context)
    cmds = dynamo_platform.install(cfg, kubeconfig=args.kubeconfig, context=args.context, dry_run=args.dry_run,
                            verify=not args.no_wait, timeout_s=args.timeout)
    for argv in cmds:
        print(shlex.join(argv))
    if args.dry_run:
        return 0
    if not args.no_wait:
        df = dynamo_platform.status(Cluster.connect(args.kubeconfig, args.context), cfg)
        print(show(df))
        return 1 if preflight.failed(df) else 0
    return 0


def run_status(args: argparse.Namespace) -> int:
    cfg = dataclasses.replace(load(args), target="eks")
    df = dynamo_platform.status(Cluster.connect(args.kubeconfig, args.context), cfg, with_helm=args.helm,
                         kubeconfig=args.kubeconfig, context=args.context)
    print(show(df, args.json))
    return 1 if preflight.failed(df) else 0
