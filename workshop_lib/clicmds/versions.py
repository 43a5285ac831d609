"""``workshop versions``: print the pinned versions table."""

from __future__ import annotations

import argparse
import json

from workshop_lib import versions


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("versions", help="print the table of pinned versions (images, charts, packages)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--kind", choices=["component", "image", "chart", "system", "python"], help="only this kind")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    rows = [p for p in versions.table() if args.kind is None or p.kind == args.kind]
    if args.json:
        print(json.dumps([{"kind": p.kind, "name": p.name, "version": p.version, "note": p.note} for p in rows], indent=2))
        return 0
    w_kind = max(len("kind"), *(len(p.kind) for p in rows))
    w_name = max(len("name"), *(len(p.name) for p in rows))
    w_ver = max(len("version"), *(len(p.version) for p in rows))
    print(f"{'kind':<{w_kind}}  {'name':<{w_name}}  {'version':<{w_ver}}  note")
    print(f"{'-' * w_kind}  {'-' * w_name}  {'-' * w_ver}  ----")
    for p in rows:
        print(f"{p.kind:<{w_kind}}  {p.name:<{w_name}}  {p.version:<{w_ver}}  {p.note}")
    bad = versions.check_no_latest()
    if bad:
        print(f"UNPINNED: {', '.join(bad)}")
        return 1
    return 0
