"""``workshop bench``: serving sweeps, the equivalent aiperf command, aiperf result files.

The NIXL pair runs from one command, ``workshop lab nixl`` (:mod:`workshop_lib.lab.nixl_cli`); sweeps over backends
and operations are :func:`workshop_lib.bench.nixl.sweep_nixl`.

Examples:
    workshop bench serve --url http://127.0.0.1:8000 --model M --concurrency 1,5,10,20 --requests 100 --json out.json
    workshop bench aiperf-cmd --url http://127.0.0.1:8000 --model M --concurrency 10
    workshop bench aiperf DIR [DIR...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from workshop_lib.choices import ENDPOINTS, TRANSPORTS
from workshop_lib.errors import ConfigError

_SHOW = ["concurrency", "requests", "errors", "ttft_p50_ms", "ttft_p99_ms", "itl_p50_ms", "itl_p99_ms", "e2e_p50_ms",
         "output_tokens_per_s", "requests_per_s"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmarks: serving sweep, aiperf interop")
    bsub = p.add_subparsers(dest="bench_command", metavar="BENCH")
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])

    s = bsub.add_parser("serve", help="streaming load sweep against an OpenAI-compatible frontend")
    s.add_argument("--url", required=True, help="frontend base URL, e.g. http://127.0.0.1:8000")
    s.add_argument("--model", required=True, help="served model id (see /v1/models)")
    s.add_argument("--endpoint", choices=list(ENDPOINTS), default="chat")
    s.add_argument("--concurrency", default="1,5,10,20", help="levels, comma-separated (default 1,5,10,20)")
    s.add_argument("--requests", type=int, default=100, help="measured requests per level (default 100)")
    s.add_argument("--isl", type=int, default=512, help="input tokens per prompt, approximate (default 512)")
    s.add_argument("--osl", type=int, default=128, help="max output tokens (default 128)")
    s.add_argument("--warmup", type=int, default=2, help="unmeasured requests per level (default 2)")
    s.add_argument("--tokenizer", help="directory with tokenizer.json to size prompts exactly")
    s.add_argument("--timeout", type=float, default=600.0, help="per-request read timeout, s")
    s.add_argument("--transport", choices=TRANSPORTS, default="auto")
    s.add_argument("--json", dest="json_out", help="write the result JSON here")
    s.add_argument("--csv", dest="csv_out", help="write the per-level table as CSV here")
    s.add_argument("--requests-csv", help="write one row per request as CSV here")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_serve)

    a = bsub.add_parser("aiperf-cmd", help="print the equivalent aiperf command (one per concurrency level)")
    a.add_argument("--url", required=True)
    a.add_argument("--model", required=True)
    a.add_argument("--endpoint", choices=list(ENDPOINTS), default="chat")
    a.add_argument("--concurrency", default="1,5,10,20")
    a.add_argument("--requests", type=int, default=100)
    a.add_argument("--isl", type=int, default=512)
    a.add_argument("--osl", type=int, default=128)
    a.add_argument("--warmup", type=int, default=0)
    a.add_argument("--tokenizer")
    a.add_argument("--artifact-dir", default="aiperf-out", help="one sub-directory c<N> per level is used")
    a.set_defaults(func=_aiperf_cmd)

    r = bsub.add_parser("aiperf", help="read aiperf artifact directories into this kit's table")
    r.add_argument("dirs", nargs="+", help="aiperf --artifact-dir directories (or their JSON/CSV files)")
    r.add_argument("--csv", dest="csv_out")
    r.set_defaults(func=_aiperf_read)


def _print_frame(df, cols: list[str] | None = None) -> None:
    """A result frame for the terminal through :func:`workshop_lib.table.text` (numbers right-aligned, cells whole)."""
    from workshop_lib import table

    print(table.text(df, [c for c in (cols or df.columns) if c in df.columns], width=None))


def _serve(args: argparse.Namespace) -> int:
    from workshop_lib.bench.serve import run_sweep
    from workshop_lib.parsing import parse_concurrency

    res = run_sweep(args.url, args.model, parse_concurrency(args.concurrency, where="--concurrency"), args.requests, isl=args.isl,
                    osl=args.osl, endpoint=args.endpoint, warmup=args.warmup, progress=not args.quiet,
                    timeout_s=args.timeout, tokenizer=args.tokenizer, transport=args.transport)
    if args.json_out:
        res.to_json(args.json_out)
    if args.csv_out:
        res.to_frame().to_csv(args.csv_out, index=False)
    if args.requests_csv:
        res.requests_frame().to_csv(args.requests_csv, index=False)
    if res.levels:
        _print_frame(res.to_frame(), _SHOW)
    for lv in res.levels:
        for reason, count in lv.error_reasons.items():
            example = next((r.reason for r in res.records if r.concurrency == lv.concurrency and r.error == reason), "")
            print(f"concurrency {lv.concurrency}: {count} x {reason}: {example}", file=sys.stderr)
    if res.meta.get("interrupted"):
        print("interrupted: finished requests kept", file=sys.stderr)
        return 130
    total = sum(lv.requests for lv in res.levels)
    if total and all(lv.errors == lv.requests for lv in res.levels):
        raise ConfigError(args.url, f"all {total} requests failed", "check the URL, model name and that the "
                          "frontend is up (curl URL/v1/models)")
    return 0


def _aiperf_cmd(args: argparse.Namespace) -> int:
    from workshop_lib.bench.aiperf import aiperf_command, shell_line
    from workshop_lib.bench.client import endpoint_url
    from workshop_lib.parsing import parse_concurrency

    endpoint_url(args.url, args.endpoint)  # the same URL/endpoint check as `bench serve`
    for c in parse_concurrency(args.concurrency, where="--concurrency"):
        cmd = aiperf_command(args.url, args.model, c, args.requests, args.isl, args.osl, args.endpoint,
                             Path(args.artifact_dir) / f"c{c}", args.tokenizer, warmup=args.warmup)
        print(shell_line(cmd))
    return 0


def _aiperf_read(args: argparse.Namespace) -> int:
    from workshop_lib.bench.aiperf import read_sweep

    df = read_sweep(args.dirs)
    if args.csv_out:
        df.to_csv(args.csv_out, index=False)
    _print_frame(df, _SHOW)
    return 0
