"""``workshop nixlbench FILE [--json]``: the nixlbench config banner and result table."""

from __future__ import annotations

import argparse
import json

from workshop_lib.errors import LogParseError
from workshop_lib.logs.nixlbench import parse_nixlbench
from workshop_lib.logs.report import render_nixlbench


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("nixlbench", help="parse a nixlbench log: config banner and results table",
                       description=__doc__)
    p.add_argument("file", metavar="FILE", help="nixlbench output (initiator side has the table)")
    p.add_argument("--json", action="store_true", help="print JSON {config, rows}")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    r = parse_nixlbench(args.file)
    if not r.config and r.table.empty:  # not a nixlbench log at all: say so instead of an empty report
        raise LogParseError(args.file, "no nixlbench configuration banner and no result table",
                            "give nixlbench's output (the initiator's has the table): kubectl logs POD > FILE")
    print(json.dumps(r.to_dict(), indent=2, default=str) if args.json else render_nixlbench(r))
    return 0
