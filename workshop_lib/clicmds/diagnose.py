"""``workshop diagnose FILE... [--json]``: the backend, provider, rails, handshakes, errors and a verdict.

Exit codes: 0 efa-rdma, ucx or unknown; 3 error (a failure signature is present); 4 tcp-fallback (LIBFABRIC on
tcp/sockets or UCX over tcp); 1 a file could not be read. With several files the verdict is the combined one.
"""

from __future__ import annotations

import argparse
import json

from workshop_lib.logs.diagnose import diagnose_files
from workshop_lib.logs.report import EXIT_CODES, render_diagnosis, render_multi

EPILOG = "exit codes: 0 efa-rdma/ucx/unknown, 3 error, 4 tcp-fallback, 1 unreadable file"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("diagnose", help="read NIXL/libfabric/UCX/vLLM/TRT-LLM/Dynamo logs and give a verdict",
                       description=__doc__, epilog=EPILOG)
    p.add_argument("files", nargs="+", metavar="FILE", help="log files (e.g. kubectl logs POD > prefill.log)")
    p.add_argument("--json", action="store_true", help="print the JSON contract instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    md = diagnose_files(args.files)
    if len(args.files) == 1:
        d = next(iter(md.per_file.values()))
        print(json.dumps(d.to_dict(), indent=2) if args.json else render_diagnosis(d, args.files[0]))
        return EXIT_CODES[d.verdict]
    print(json.dumps(md.to_dict(), indent=2) if args.json else render_multi(md))
    return EXIT_CODES[md.combined.verdict]
