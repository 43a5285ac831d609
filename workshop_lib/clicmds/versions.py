"""``workshop versions``: print the pinned versions table."""

from __future__ import annotations

import argparse

from workshop_lib import table, versions


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("versions", help="print the table of pinned versions (images, charts, packages)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--kind", choices=["component", "image", "chart", "system", "python"], help="only this kind")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    rows = [p for p in versions.table() if args.kind is None or p.kind == args.kind]
    columns = ["kind", "name", "version", "note"]
    if args.json:
        print(table.to_json(rows, columns))
        return 0
    print(table.text(rows, columns, width=None))
    bad = versions.check_no_latest()
    if bad:
        print(f"UNPINNED: {', '.join(bad)}")
        return 1
    return 0
