"""``workshop run``: execute the workshop notebooks headless (papermill) and print a summary table."""

from __future__ import annotations

import argparse
import ast
import sys

from workshop_lib.config import TARGETS, WorkshopConfig
from workshop_lib.errors import ConfigError
from workshop_lib.runner import format_summary, run_notebooks


def _value(text: str) -> object:
    """papermill-style ``-p KEY VALUE``: Python literals (numbers, None, lists, quoted strings) or a plain string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the four notebooks headless into runs/<timestamp>/ and print a summary")
    p.add_argument("--target", choices=TARGETS, default="local")
    p.add_argument(
        "-p", "--parameter", nargs=2, action="append", metavar=("KEY", "VALUE"), default=[],
        help="notebook parameter (repeatable), e.g. -p KV_BACKEND UCX -p PREFILL_NODE ip-10-0-1-12",
    )
    p.add_argument("--notebooks", help="comma-separated subset, e.g. 01,02 (default: all four)")
    p.add_argument("--out", help="parent folder of the run folder (default runs/)")
    p.add_argument("--timeout", type=int, default=1800, help="seconds per cell (default 1800)")
    p.add_argument("--no-html", action="store_true", help="skip the HTML export")
    p.add_argument("--stop-on-failure", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    params: dict[str, object] = {}
    for key, value in args.parameter:
        if not key.isidentifier() or key.upper() != key:
            raise ConfigError(f"-p {key}", "parameter names are upper-case identifiers", "write e.g. -p KV_BACKEND UCX")
        if key == "TARGET":
            raise ConfigError("-p TARGET", "the target is chosen with --target", "use --target eks")
        params[key] = _value(value)
    # One validation for every parameter, before any notebook starts: typed values go to papermill (TEARDOWN=False,
    # not the string "false"); a typo or a bad value stops here with the parameter named.
    params = {k: v for k, v in WorkshopConfig.check_params({"TARGET": args.target, **params}).items() if k != "TARGET"}
    if args.timeout <= 0:
        raise ConfigError("--timeout", f"{args.timeout} is not a number of seconds", "give seconds per cell, e.g. 1800")
    names = None
    if args.notebooks is not None:
        names = [n.strip() for n in args.notebooks.split(",")]
        if not all(names):
            raise ConfigError("--notebooks", f"{args.notebooks!r} names no notebook (an empty item)",
                              "write e.g. --notebooks 01,02, or leave --notebooks out to run all four")
    from workshop_lib.runner import check_parameters_used, discover

    check_parameters_used(list(params), discover(names))
    results = run_notebooks(
        target=args.target,
        parameters=params,
        names=names,
        out_root=Path(args.out) if args.out else None,
        timeout_s=args.timeout,
        html=not args.no_html,
        stop_on_failure=args.stop_on_failure,
    )
    print()
    print(format_summary(results))
    if results and results[0].output:
        print(f"\nexecuted notebooks and HTML: {results[0].output.parent}")
    if args.target == "local":
        from workshop_lib.lab.serving import Lab

        if Lab().status().running:
            print("the local lab is still running (reuse it with `make lab`); stop it with `workshop lab down`")
    failed = [r for r in results if r.status != "ok"]
    for r in failed:
        print(f"FAILED: {r.notebook}: {r.error}", file=sys.stderr)
    return 1 if failed else 0
