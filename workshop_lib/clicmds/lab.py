"""``workshop lab``: the local lab. ``up | status [--json] | logs [NAME] [-n N] [-f] | down`` for the serving lab;
``setup`` and ``nixl`` come from :mod:`workshop_lib.lab.nixl_cli` when it is part of the build.

``up --netns`` (root, real engine) runs the prefill and decode workers in two network namespaces, so the KV cache
crosses a veth between two "nodes"; ``plan --netns`` shows the pod IP -> namespace address substitutions.

Example:
    $ workshop lab up
    $ workshop lab up --engine vllm --netns
    $ workshop lab status --json
    $ workshop lab logs frontend -n 20
    $ workshop lab down
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path

from workshop_lib.lab.graph import ENGINES, KV_BACKENDS, default_engine
from workshop_lib.lab.serving import NAMES, Lab, LabStatus


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("lab", help="the local lab: etcd, NATS, Dynamo frontend, mocker prefill/decode; NIXL pairs")
    lab_sub = p.add_subparsers(dest="lab_command", metavar="LAB_COMMAND")

    up = lab_sub.add_parser(
        "up", help="start the serving lab or restart what died (idempotent); returns when a completion works"
    )
    _graph_args(up)
    up.add_argument("--timeout", type=float, default=None, help="seconds to wait (default 120 mocker, 420 vllm)")
    up.add_argument("--json", action="store_true", help="print the status as JSON when ready")
    up.add_argument("--no-progress", action="store_true", help="no progress bar")
    up.set_defaults(func=cmd_up)

    pl = lab_sub.add_parser("plan", help="print the DGD -> local substitution table and the command lines")
    _graph_args(pl)
    pl.add_argument("--json", action="store_true", help="print JSON")
    pl.set_defaults(func=cmd_plan)

    ck = lab_sub.add_parser(
        "check-kv", help="did the KV cache arrive intact? disaggregated vs aggregated tokens+logprobs (exit 1 if not)"
    )
    ck.add_argument("--json", action="store_true", help="print the full report as JSON")
    ck.set_defaults(func=cmd_check_kv)

    bd = lab_sub.add_parser("breakdown", help="per request TTFT split: prefill, KV transfer, first decode step")
    bd.add_argument("-n", type=int, default=8, help="requests (default 8)")
    bd.add_argument("--json", action="store_true", help="print JSON")
    bd.set_defaults(func=cmd_breakdown)

    st = lab_sub.add_parser("status", help="health of each lab process (exit 1 when not all healthy)")
    st.add_argument("--json", action="store_true", help="print JSON")
    st.set_defaults(func=cmd_status)

    lg = lab_sub.add_parser("logs", help="print a lab process's log (all five when NAME is omitted)")
    lg.add_argument("name", nargs="?", choices=NAMES, metavar="NAME", help=f"one of {', '.join(NAMES)}")
    lg.add_argument("-n", type=int, default=40, help="number of lines (default 40)")
    lg.add_argument("-f", "--follow", action="store_true", help="keep printing new lines (Ctrl-C stops)")
    lg.set_defaults(func=cmd_logs)

    dn = lab_sub.add_parser("down", help="stop the serving lab's processes (safe to repeat)")
    dn.set_defaults(func=cmd_down)

    try:
        nixl_cli = importlib.import_module("workshop_lib.lab.nixl_cli")
    except ModuleNotFoundError as exc:
        if exc.name != "workshop_lib.lab.nixl_cli":
            raise
    else:
        nixl_cli.add_setup_parser(lab_sub)
        nixl_cli.add_nixl_parser(lab_sub)

    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _graph_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--engine",
        choices=ENGINES,
        default=None,
        help="vllm: real vLLM 0.14.1 CPU workers moving KV over NIXL; mocker: Dynamo's simulated engine, no KV bytes"
        " (default: $WORKSHOP_ENGINE, else the config's engine, else vllm)",
    )
    p.add_argument("--kv-backend", choices=KV_BACKENDS, default="UCX", help="NIXL backend of the vLLM workers")
    p.add_argument("--netns", action="store_true",
                   help="prefill and decode in two network namespaces (two 'nodes'; root, real engine): the KV cache "
                        "crosses a veth; etcd and NATS on the bridge between them")  # fmt: skip


def cmd_plan(args: argparse.Namespace) -> int:
    plan = Lab().plan(engine=args.engine or default_engine(), kv_backend=args.kv_backend, netns=args.netns)
    if args.json:
        print(json.dumps(plan.to_json(), indent=2))
    else:
        print(plan.table())
        print()
        print(plan.command_lines())
    return 0


def cmd_check_kv(args: argparse.Namespace) -> int:
    from workshop_lib.lab.kvcheck import check_kv

    rep = check_kv(Lab())
    if args.json:
        print(json.dumps(rep, indent=2))
    else:
        print(f"KV integrity ({rep['engine']}, NIXL {rep['kv_backend']}): {rep['integrity'].upper()}")
        print(f"  {rep['kv_bytes_during_check']:.0f} KV bytes moved, {rep['failed_transfers_during_check']:.0f} failed")
        for p in rep["prompts"]:
            fd = p["first_difference"]
            where = "" if fd is None else f"; first differs at token {fd.get('position')}: {fd}"
            print(f"  prompt {p['prompt'][:50]!r}: max |logprob diff| {p['max_logprob_difference']}{where}")
        if rep.get("cause"):
            print(f"  cause: {rep['cause']}")
    return 0 if rep["integrity"] == "identical" else 1


def cmd_breakdown(args: argparse.Namespace) -> int:
    from workshop_lib.lab.breakdown import summary, ttft_breakdown

    recs = ttft_breakdown(Lab(), n=args.n)
    if args.json:
        print(json.dumps({"requests": recs, "p50": summary(recs)}, indent=2))
        return 0
    cols = ("ttft_s", "prefill_s", "kv_transfer_s", "first_decode_s", "other_s", "kv_bytes", "descriptors")
    print(f"engine {recs[0]['engine']}, NIXL {recs[0]['kv_backend']} (seconds; bytes)")
    print("req  " + "  ".join(f"{c:>14}" for c in cols))
    for r in recs:
        print(f"{r['request']:<4} " + "  ".join(f"{r[c]:>14}" for c in cols))
    p50 = summary(recs)
    print("p50  " + "  ".join(f"{p50[c]:>14}" for c in cols))
    return 0


def format_status(st: LabStatus) -> str:
    """A human table of :class:`LabStatus` (pure).

    Example:
        >>> format_status(LabStatus(False, None, None, None, {}))
        'lab: not running (start it with `workshop lab up`)'
    """
    if not st.processes:
        return "lab: not running (start it with `workshop lab up`)"
    head = "healthy" if st.healthy else ("UNHEALTHY" if st.running else "stopped")
    lines = [
        f"lab: {head}  engine {st.engine or '-'}  KV backend {st.kv_backend or '-'}  frontend {st.frontend_url}",
        f"model {st.model}  RSS {st.rss_mb} MB  run: {st.run_dir}",
    ]
    if st.kv is not None:
        lines.append(
            f"KV over NIXL (decode worker): {st.kv.get('bytes_transferred', 0):.0f} bytes in "
            f"{st.kv.get('transfers', 0):.0f} transfers, {st.kv.get('failed_transfers', 0):.0f} failed"
        )
    if st.net:
        veth = st.veth or {}
        lines.append(f"network: two namespaces on bridge {st.net['bridge']} ({st.net['bridge_addr']}): " + "; ".join(
            f"{r} {st.net['namespaces'][r]} {st.net['addrs'][r]} veth {st.net['devices'][r]}"
            + (f" rx {veth[r]['rx_bytes']} B tx {veth[r]['tx_bytes']} B" if r in veth else "")
            for r in ("prefill", "decode")))  # fmt: skip
    lines.append(f"{'name':<9} {'pid':>7} {'port':>6} {'ok':<4} detail")
    for p in st.processes.values():
        detail = p.detail.splitlines()[0] if p.detail else ""
        lines.append(f"{p.name:<9} {p.pid or '-':>7} {p.port or '-':>6} {'yes' if p.healthy else 'NO':<4} {detail}")
        if not p.healthy:
            lines.append(f"{'':<9} log: {p.log}")
            lines.extend(f"{'':<9} | {ln}" for ln in p.detail.splitlines()[1:])
    return "\n".join(lines)


def cmd_up(args: argparse.Namespace) -> int:
    t0 = time.monotonic()
    st = Lab().up(
        timeout=args.timeout, progress=not args.no_progress, engine=args.engine or default_engine(),
        kv_backend=args.kv_backend, netns=True if args.netns else None,
    )  # fmt: skip
    if args.json:
        print(json.dumps(st.to_json(), indent=2))
    else:
        print(format_status(st))
        print(f"ready in {time.monotonic() - t0:.1f} s; try: workshop lab status, workshop lab logs frontend")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    st = Lab().status()
    print(json.dumps(st.to_json(), indent=2) if args.json else format_status(st))
    return 0 if st.healthy else 1


def cmd_logs(args: argparse.Namespace) -> int:
    lab = Lab()
    names = [args.name] if args.name else list(NAMES)
    for name in names:
        if len(names) > 1:
            print(f"==> {lab.log_path(name)} <==")
        text = lab.tail(name, args.n)
        if text:
            print(text)
    if args.follow:
        sys.stdout.flush()
        _follow([lab.log_path(n) for n in names])
    return 0


def _follow(paths: list[Path]) -> None:
    """Print lines appended to ``paths`` until interrupted."""
    offsets = {p: p.stat().st_size if p.exists() else 0 for p in paths}
    try:
        while True:
            for p in paths:
                if not p.exists():
                    continue
                with open(p, "rb") as fh:
                    fh.seek(offsets[p])
                    data = fh.read()
                    offsets[p] = fh.tell()
                if data:
                    prefix = f"[{p.stem}] " if len(paths) > 1 else ""
                    for line in data.decode("utf-8", "replace").splitlines():
                        print(prefix + line)
                    sys.stdout.flush()
            time.sleep(0.5)
    except KeyboardInterrupt:
        return


def cmd_down(args: argparse.Namespace) -> int:
    stopped = Lab().down()
    print(f"stopped: {', '.join(stopped)}" if stopped else "lab: nothing was running")
    return 0
