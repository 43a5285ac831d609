"""NOTES.md of the NIXL VRAM benchmark, generated from its records (no typed figures).

Reads ``results.json`` and ``results-repeat.json`` (two runs of ``run.py``), ``refcopy.json`` (``refcopy.py``) and
``ucx-knobs.json`` (``ucx_knobs.py``) beside this file; every number in the text comes from them, and each statement
that depends on a number (goal met or not, "did not help", "worse") is decided from the numbers.

    python benchmarks/nixl_vram/notes.py            # rewrite NOTES.md
    python benchmarks/nixl_vram/notes.py --check    # exit 1 when NOTES.md differs from the records
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from workshop_lib.bench.vram_report import GOAL_PCT  # the goal of issue 9: UCX READ at >= 64 MiB, % of a peer copy
from workshop_lib.parsing import MiB

HERE = Path(__file__).resolve().parent
BIG = (64 * MiB, 256 * MiB)


def _load(name: str) -> Any:
    p = HERE / name
    return json.loads(p.read_text()) if p.is_file() else None


def _rows(data: dict[str, Any] | None, op: str, mode: str, size: int) -> list[dict[str, Any]]:
    out = []
    for run in (data or {}).get("runs", []):
        if run.get("backend") == "UCX" and run.get("op") == op and run.get("mode", "one-at-a-time") == mode:
            out += [r for r in run.get("rows", []) if int(r["block_size"]) * int(r.get("batch", 1)) == size]
    return out


def _span(values: list[float], fmt: str = "{:.0f}") -> str:
    texts = sorted({fmt.format(v) for v in values}, key=float)
    return texts[0] if len(texts) == 1 else f"{texts[0]}-{texts[-1]}"


def notes() -> str:
    """The NOTES.md text."""
    runs = [d for d in (_load("results.json"), _load("results-repeat.json")) if d]
    if not runs:
        return "# NIXL VRAM -> VRAM: notes\n\nNo recorded run yet: run `benchmarks/nixl_vram/run.py` on a GPU host.\n"
    meta = runs[0].get("meta", {})
    smi = meta.get("nvidia_smi") or []
    card = str(smi[0]).split(",")[0].strip() if smi else "unknown GPUs"
    driver = next((p.strip() for p in str(smi[0]).split(",")[1:2]), "") if smi else ""
    transports = sorted({r.get("transport") for d in runs for run in d.get("runs", []) for r in run.get("rows", [])
                         if r.get("transport")})
    verified = all(r.get("verified") for d in runs for run in d.get("runs", []) for r in run.get("rows", []))
    n = len(runs)
    lines = [
        f"# What limits NIXL VRAM -> VRAM on {len(smi) or 'two'} GPUs of one host (issue 9)",
        "",
        "Generated from the records beside this file by `python benchmarks/nixl_vram/notes.py` (do not edit by hand).",
        "",
        f"Measured on {len(smi)}x {card}" + (f" (driver {driver})" if driver else "") + f", NIXL {meta.get('nixl')} "
        f"(`nixl-cu12` {meta.get('nixl_cu12')} wheel, the workshop's pin) with the CUDA runtime wheel "
        f"{meta.get('cuda_runtime_wheel')}. UCX picked {', '.join(f'`{t}`' for t in transports) or 'no named transport'} "
        f"(the rows' `transport` field). Every transfer checksummed: "
        f"{'yes' if verified else 'NO, see RESULTS.md'}. {n} run{'s' if n > 1 else ''} (`results.json`"
        f"{', `results-repeat.json`' if n > 1 else ''}).",
        "",
    ]
    # 1. the headline and the goal
    parts, pcts = [], []
    for size in BIG:
        rows = [r for d in runs for r in _rows(d, "READ", "one-at-a-time", size)]
        if rows:
            p = [float(r["pct_of_peer_copy"]) for r in rows if r.get("pct_of_peer_copy") is not None]
            pcts += p
            parts.append(f"{_span([r['gbps'] for r in rows])} GB/s at {size // MiB} MiB ({_span(p)}% of the torch "
                         f"peer copy)")
    if parts:
        met = bool(pcts) and min(pcts) >= GOAL_PCT
        lines.append(f"- NIXL UCX READ, one request at a time, reaches {' and '.join(parts)} over {n} run"
                     f"{'s' if n > 1 else ''} (the range covers every run). The goal ({GOAL_PCT:.0f}% at 64 MiB and "
                     f"above) is **{'met' if met else 'not met'}**.")
    # 2. the reference copies
    ref = _load("refcopy.json") or {}
    ipc = {int(r["bytes"]): r for r in ref.get("ipc_rows", [])}
    ce = {int(r["bytes"]): r for r in ref.get("rows", [])}
    if all(s in ipc for s in BIG):
        nixl64 = [r["gbps"] for d in runs for r in _rows(d, "READ", "one-at-a-time", BIG[0])]
        above = nixl64 and ipc[BIG[0]]["ipc-pull"] > max(nixl64)
        text = (f"- Two processes sharing the buffer through a CUDA IPC handle and one `cudaMemcpyAsync` on the receiver "
                f"(the path UCX cuda_ipc takes) moved {ipc[BIG[0]]['ipc-pull']:.0f} GB/s at 64 MiB and "
                f"{ipc[BIG[1]]['ipc-pull']:.0f} GB/s at 256 MiB (`refcopy.json`, `ipc-pull`)")
        if all(s in ce for s in BIG):
            text += f"; a copy-engine pull in one process gave {ce[BIG[0]]['ce-pull']:.0f}/{ce[BIG[1]]['ce-pull']:.0f} GB/s"
        text += (". So the hardware and the copy path are not the limit." if above else
                 ". The reference copy is not faster than NIXL here, so the hardware may be the limit.")
        lines.append(text)
    # 3. how the transfers are driven
    one = [r["gbps"] for d in runs for r in _rows(d, "READ", "one-at-a-time", BIG[0])]
    infl = [r["gbps"] for d in runs for r in _rows(d, "READ", "inflight-4", BIG[0])]
    batch = [r["gbps"] for d in runs for r in _rows(d, "READ", "batched-16", BIG[0])]
    if one and (infl or batch):
        bits = []
        if infl:
            bits.append(f"four requests in flight {'did not help' if max(infl) <= max(one) else 'helped'} READ "
                        f"({_span(infl)} GB/s at 64 MiB vs {_span(one)} one at a time)")
        if batch:
            bits.append(f"16 descriptors per request made it {'worse' if max(batch) < min(one) else 'no worse'} "
                        f"({_span(batch)} GB/s at 64 MiB)")
        text = "- How the transfers are driven: " + ", and ".join(bits)
        four = ipc.get(BIG[0], {}).get("ipc-pull-4streams")
        if four:
            slower = four < ipc[BIG[0]]["ipc-pull"]
            text += (f"; splitting one IPC copy over four streams is {'slower' if slower else 'faster'} too "
                     f"({four:.0f} vs {ipc[BIG[0]]['ipc-pull']:.0f} GB/s at 64 MiB)")
        lines.append(text + ".")
    # 4. UCX settings
    knobs = _load("ucx-knobs.json") or []
    if knobs:
        items, best = [], None
        for k in knobs:
            rows = {int(r["bytes"]): r for r in k.get("rows", []) if "gbps" in r}
            if all(s in rows for s in BIG):
                items.append(f"`{k['variant']}` {rows[BIG[0]]['gbps']:.0f} / {rows[BIG[1]]['gbps']:.0f} GB/s")
                top = max(rows[s]["pct"] for s in BIG)
                if best is None or top > best[1]:
                    best = (k["variant"], top)
            else:
                err = next((str(r["error"]).split(";")[0].split("(")[0].strip() for r in k.get("rows", [])
                            if r.get("error")), "no rows")
                items.append(f"`{k['variant']}` failed ({err})")
        text = f"- UCX settings (`ucx_knobs.py`, `ucx-knobs.json`, READ at 64 / 256 MiB): {'; '.join(items)}."
        if best:
            text += (f" The best share of a peer copy was {best[1]:.0f}% (`{best[0]}`): "
                     f"{'the goal is met' if best[1] >= GOAL_PCT else 'none reaches the goal'}.")
        lines.append(text)
    lines.append("- Not yet isolated (each one device run): whether NIXL 0.9.0's bundled UCX splits the zero-copy GET "
                 "into fragments that advance only when the agent calls `check_xfer_state` (a NIXL progress thread "
                 "would tell), and whether a newer NIXL closes the gap (`../shared/reference/LOCAL-LAB.md` reports a "
                 "run with nixl-cu13 1.5.1).")
    skipped = [s for d in runs[:1] for s in d.get("skipped", [])]
    for s in skipped:
        lines.append(f"- {s.get('backend')} did not run on the GPU host: {s.get('reason')}.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    text = notes()
    path = HERE / "NOTES.md"
    if "--check" in args:
        if not path.is_file() or path.read_text() != text:
            print(f"{path}: differs from the records; run `python benchmarks/nixl_vram/notes.py`", file=sys.stderr)
            return 1
        return 0
    path.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
