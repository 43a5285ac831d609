"""CLI glue for ``workshop lab setup`` and ``workshop lab nixl`` (the one command that runs the NIXL pair).

``workshop_lib/clicmds/lab.py`` owns the ``lab`` command and calls :func:`add_setup_parser` and
:func:`add_nixl_parser` with its sub-parsers object; each adds one subcommand whose ``func`` takes the parsed
arguments and returns an exit code.

Example:
    >>> import argparse
    >>> p = argparse.ArgumentParser(prog="workshop lab")
    >>> sub = p.add_subparsers(dest="lab_command")
    >>> _ = add_setup_parser(sub), add_nixl_parser(sub)
    >>> p.parse_args(["nixl", "--backend", "UCX", "--sizes", "4K,1M"]).sizes
    [4096, 1048576]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workshop_lib import table
from workshop_lib.checks import WARN, Check, CheckTable
from workshop_lib.config import KV_BACKENDS
from workshop_lib.errors import ConfigError
from workshop_lib.lab.nixl_plan import MEMS, OPS

SETUP_COLUMNS = ["status", "check", "found", "expected"]  # the setup table's text columns; the fix goes below


def _sizes(text: str) -> list[int]:
    from workshop_lib.parsing import parse_sizes

    try:
        return parse_sizes(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _gpus(text: str) -> tuple[int, int]:
    from workshop_lib.lab.nixl_plan import parse_gpus

    try:
        return parse_gpus(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _int_at_least(minimum: int, note: str = "") -> Callable[[str], int]:
    """An argparse ``type`` for whole numbers >= ``minimum`` (the message names the bound)."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if v < minimum:
            raise argparse.ArgumentTypeError(f"{v} must be >= {minimum}{note}")
        return v

    return parse


_positive = _int_at_least(1)
_non_negative = _int_at_least(0, " (0 = auto)")


# ---------------------------------------------------------------------------------------------------------------------
# workshop lab setup


def add_setup_parser(lab_subparsers: Any) -> argparse.ArgumentParser:
    """Add ``setup``: system packages, the libcuda stub and libfabric, cached under .lab/."""
    p = lab_subparsers.add_parser(
        "setup",
        help="install what the local lab needs outside pip (apt packages, libcuda stub, libfabric); cached in .lab/",
        description="Prepare this Linux machine for the local lab. A second run only checks (under 2 s).",
    )
    p.add_argument("--check", action="store_true", help="only check and report; change nothing")
    p.add_argument("--json", action="store_true", help="print the rows as JSON (check, status, found, expected, ...)")
    p.set_defaults(func=run_setup)
    return p


def setup_table(items: list[Check]) -> CheckTable:
    """The setup rows (:func:`workshop_lib.lab.setup.status`) as the kit's verdict table."""
    return CheckTable("local lab setup", list(items))


def format_items(items: list[Check]) -> str:
    """The setup rows as text through the one renderer (:func:`workshop_lib.table.text`): the table's verdict line,
    then status, check, found, expected, with each fix (kept only where a row is not PASS) on its own line."""
    t = setup_table(items)
    return table.text(t.rows, SETUP_COLUMNS, title=t.caption(), width=None, below="fix", headers={"status": ""})


def run_setup(args: argparse.Namespace) -> int:
    from workshop_lib.lab import setup as lab_setup

    t0 = time.monotonic()
    items = lab_setup.setup(check=args.check, progress=not args.json)
    secs = time.monotonic() - t0
    if args.json:
        print(setup_table(items).to_json())
    else:
        print(format_items(items))
        opt = [i for i in items if i.status == WARN]
        if opt:
            print(f"note: {', '.join(i.check for i in opt)} unavailable: LIBFABRIC runs are skipped; UCX works.")
        print(f"({'checked' if args.check else 'setup'} in {secs:.1f} s; lab directory {lab_setup.lab_dir()})")
    return 1 if lab_setup.failed(items) else 0


# ---------------------------------------------------------------------------------------------------------------------
# workshop lab nixl


def add_nixl_parser(lab_subparsers: Any) -> argparse.ArgumentParser:
    """Add ``nixl``: two NIXL agents in two processes moving real bytes, one row per block size."""
    p = lab_subparsers.add_parser(
        "nixl",
        help="run two NIXL agents (initiator, target) moving real bytes; prints GB/s, latency, checksum result",
        description="Two NIXL 0.9.0 agents in two processes: READ or WRITE of each block size, checksummed, "
        "with both agents' logs (NIXL/UCX/libfabric at INFO) kept for `workshop diagnose`.",
    )
    p.add_argument("--backend", type=str.upper, choices=KV_BACKENDS, default=KV_BACKENDS[0])
    p.add_argument("--op", type=str.upper, choices=OPS, default=OPS[0])
    p.add_argument("--sizes", type=_sizes, default=None, metavar="LIST", help="e.g. 4K,64K,1M,16M,64M or 4K..64M")
    p.add_argument("--netns", action="store_true", help="one agent per network namespace over a veth (root)")
    p.add_argument("--ucx-tls", default=None, metavar="TLS", help="UCX_TLS for both agents, e.g. tcp")
    p.add_argument("--mem", type=str.upper, choices=MEMS, default=MEMS[0])
    p.add_argument("--gpus", type=_gpus, default=(0, 1), metavar="I,T", help="initiator,target GPU (VRAM)")
    p.add_argument("--batch", type=_positive, default=1, help="descriptors (KV blocks) per transfer request")
    p.add_argument("--inflight", type=_positive, default=1, help="transfer requests kept in flight")
    p.add_argument("--iters", type=_non_negative, default=0, help="timed transfers per size (0 = auto)")
    p.add_argument("--json", dest="json_out", type=Path, default=None, metavar="OUT", help="write the result as JSON")
    p.add_argument("--log-dir", type=Path, default=None, metavar="DIR", help="where the two agent logs go")
    p.set_defaults(func=run_nixl)
    return p


def _fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def format_rows(result: Any) -> str:
    """A table (:func:`workshop_lib.table.text`): block size, GB/s, p50/p99 latency, verified, transport (and % of
    peer copy for VRAM)."""
    from workshop_lib import table
    from workshop_lib.parsing import format_size

    vram = any(r.peer_copy_gbps is not None for r in result.rows)
    cols = ["block", "iters", "GB/s", "p50 us", "p99 us", "verified", "transport"] + (["peer GB/s", "% peer"] * vram)
    rows = [
        {
            "block": format_size(r.block_size),
            "iters": str(r.iters),
            "GB/s": _fmt(r.gbps, ".3f"),
            "p50 us": _fmt(r.lat_p50_us, ".1f"),
            "p99 us": _fmt(r.lat_p99_us, ".1f"),
            "verified": "yes" if r.verified else "NO",
            "transport": r.transport or "-",
            "peer GB/s": _fmt(r.peer_copy_gbps, ".1f"),
            "% peer": _fmt(r.pct_of_peer_copy, ".0f"),
        }
        for r in result.rows
    ]
    return table.text(rows, cols, width=None)


def run_nixl(args: argparse.Namespace) -> int:
    from workshop_lib.lab.netns import remove_stale
    from workshop_lib.lab.nixl_pair import NixlPairSpec, run_pair

    for name in remove_stale():
        print(f"lab nixl: removed {name}, left by a lab run that was killed", file=sys.stderr)

    spec = NixlPairSpec(
        backend=args.backend,
        op=args.op,
        iters=args.iters,
        mem=args.mem,
        gpus=args.gpus,
        netns=args.netns,
        ucx_tls=args.ucx_tls,
        batch=args.batch,
        inflight=args.inflight,
    )
    if args.sizes:
        spec.sizes = args.sizes
    result = run_pair(spec, log_dir=args.log_dir, progress=sys.stderr.isatty())
    s = result.spec
    place = result.meta.get("placement", {})
    where = {"netns": "two network namespaces over a veth", "isolated": "one private network namespace"}.get(
        place.get("mode"), "this host's network stack"
    )
    tls = f", UCX_TLS={s.ucx_tls}" if s.ucx_tls else ""
    print(
        f"NIXL {result.meta.get('nixl_version')} {s.backend} {s.op} {s.mem}, batch {s.batch}, inflight {s.inflight}, {where}{tls}"
    )
    print(format_rows(result))
    print(f"logs: initiator {result.logs['initiator']}")
    print(f"      target    {result.logs['target']}")
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(result.to_json(), indent=2, default=str) + "\n")
        print(f"json: {args.json_out}")
    bad = [r for r in result.rows if not r.verified]
    if bad:
        print(
            f"CHECKSUM MISMATCH for {len(bad)} size(s): the bytes that arrived differ from those sent", file=sys.stderr
        )
        if result.meta.get("diagnosis"):
            print(f"cause: {result.meta['diagnosis']}", file=sys.stderr)
        return 1
    return 0
