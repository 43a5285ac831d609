"""Section 04's GPU part: KV-transfer bandwidth GPU memory to GPU memory, run here when GPUs are present, and the
lead's recorded 2x H100 run (``benchmarks/nixl_vram/``, read through :mod:`workshop_lib.bench.vram_report`) otherwise.

Every row says where it comes from: ``recorded on 2x H100 (VRAM)`` for the recorded file, ``this run (VRAM)`` for a
GPU run in this kernel, ``this run (DRAM)`` for the local pair over TCP. The three are never merged into one number.

Example:
    >>> short_card("2x NVIDIA H100 80GB HBM3 (driver 580.159.04)")
    '2x H100'
    >>> format_size(64 * 2**20)
    '64M'
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workshop_lib.parsing import format_size
from workshop_lib.paths import repo_root
from workshop_lib.record import record

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.figure import Figure

    from workshop_lib.sections.common import Context

VRAM_SIZES = "1M,16M,64M"  # a GPU run in the notebook: small, a few seconds
VRAM_ITERS = 20
TABLE_COLUMNS = ["source", "path", "size", "gbps", "peer_copy_gbps", "pct_of_peer_copy", "verified"]


def short_card(card: str) -> str:
    """``"2x NVIDIA H100 80GB HBM3 (driver ...)"`` -> ``"2x H100"``; unknown names keep their first word.

    >>> short_card("unknown GPU")
    'unknown'
    """
    count = re.match(r"\s*(\d+)x\s", card)
    model = re.search(r"\b([A-Z]{1,2}\d{2,4}[A-Za-z]?)\b", card)
    name = model.group(1) if model else card.split()[0]
    return f"{count.group(1)}x {name}" if count else name


def gpus_here() -> int:
    """CUDA GPUs torch sees in this kernel (0 when torch is missing or sees none)."""
    try:
        import torch
    except ImportError:
        return 0
    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0


def recorded(path: Path | None = None) -> tuple[pd.DataFrame, str, dict[str, Any]] | None:
    """The recorded GPU run: (frame, card, raw JSON for the plot's title), or None when none is recorded."""
    from workshop_lib.bench import vram_report

    p = path or vram_report.RECORDED
    got = vram_report.load_recorded(p)
    if got is None:
        return None
    df, card = got
    return df, card, json.loads(p.read_text())


def recorded_rows(df: pd.DataFrame, card: str) -> list[dict[str, Any]]:
    """UCX READ per request size from the recorded run, best way of driving it, as rows of :data:`TABLE_COLUMNS`."""
    from workshop_lib.bench import vram_report

    best = vram_report.best_by_size(df)
    transport = df["transport"].dropna().iloc[0] if df["transport"].notna().any() else "?"
    label = f"recorded on {short_card(card)} (VRAM)"
    return [{"source": label, "path": f"UCX READ, {transport} (NVLink), {r.best_mode}",
             "size": format_size(int(r.request_bytes)), "gbps": round(r.best_gbps, 1),
             "peer_copy_gbps": "" if r.peer_copy_gbps is None else round(r.peer_copy_gbps, 1),
             "pct_of_peer_copy": "" if r.best_pct is None else round(r.best_pct), "verified": bool(r.verified)}
            for r in best.itertuples()]


ONE_GPU_RECORD = repo_root() / "benchmarks" / "nixl_vram" / "one-gpu.json"


def one_gpu_rows(path: Path = ONE_GPU_RECORD) -> list[dict[str, Any]]:
    """The recorded one-GPU run (``benchmarks/nixl_vram/one_gpu.py``: two agents on the same card, UCX READ and
    WRITE), as rows of :data:`TABLE_COLUMNS`; the transport is what UCX's own lines said. Empty when not recorded."""
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    card = "; ".join(data.get("meta", {}).get("nvidia_smi", [])) or "one GPU"
    label = f"recorded on 1x {short_card(card)}, one GPU (VRAM)"
    rows = []
    for run in data.get("runs", []):
        for r in run.get("rows", []):
            copy = r.get("peer_copy_gbps")
            rows.append({"source": label, "path": f"UCX {run['op']}, {r.get('transport') or '?'} (same GPU, two "
                         "processes)", "size": format_size(int(r["block_size"]) * int(r.get("batch", 1))),
                         "gbps": float(f"{float(r['gbps']):.3g}"), "peer_copy_gbps": "" if copy is None else round(copy, 1),
                         "pct_of_peer_copy": "" if not copy else round(100 * r["gbps"] / copy, 1),
                         "verified": bool(r.get("verified"))})
    return rows


def transfer_rows(frame: pd.DataFrame, source: str, where: str = "") -> list[dict[str, Any]]:
    """A transfer frame (``bench.nixl.COLUMNS``) as rows of :data:`TABLE_COLUMNS` (``where``: e.g. " (veth)")."""
    rows = []
    for r in frame.itertuples():
        transport = r.transport if isinstance(r.transport, str) and r.transport else "?"
        rows.append({"source": source, "path": f"{r.backend} {r.op}, {transport}{where}",
                     "size": format_size(int(r.block_size)), "gbps": float(f"{float(r.gbps):.3g}"), "peer_copy_gbps": "",
                     "pct_of_peer_copy": "", "verified": bool(r.verified)})
    return rows


def run_vram(ctx: Context, gpus: int) -> pd.DataFrame:
    """UCX READ between two GPUs of this machine (GPU 0 and 1; one GPU: to itself), small sizes, via the lab pair."""
    from workshop_lib.bench.nixl import lab_frame
    from workshop_lib.lab.nixl_pair import NixlPairSpec, run_pair
    from workshop_lib.parsing import parse_sizes

    spec = NixlPairSpec(backend="UCX", op="READ", sizes=parse_sizes(str(ctx.cfg.vram_sizes or VRAM_SIZES)),
                        iters=VRAM_ITERS, mem="VRAM", gpus=(0, min(1, gpus - 1)))
    return lab_frame(run_pair(spec, ctx.work_dir / "transfer-vram"))


def vram_table(ctx: Context) -> pd.DataFrame:
    """GPU-memory results beside this run's DRAM rows: this kernel's GPUs when present, and the recorded run."""
    import pandas as pd

    rows: list[dict[str, Any]] = []
    gpus = gpus_here()
    record("vram_gpus_here", gpus)
    if gpus:
        vram = run_vram(ctx, gpus)
        ctx.state["vram"] = vram
        rows += transfer_rows(vram, "this run (VRAM)")
    rec = recorded()
    ref_rows = recorded_rows(rec[0], rec[1]) if rec else []
    ctx.state["vram_recorded"] = rec
    rows += ref_rows
    one = one_gpu_rows()
    record("reference_one_gpu_rows", len(one))
    rows += one
    transfer = ctx.state.get("transfer")
    if transfer is not None:
        where = " between two namespaces" if ctx.state.get("transfer_netns") else ""
        rows += transfer_rows(transfer[transfer["mem"] == "DRAM"], "this run (DRAM)", where)
    record("reference_vram_rows", len(ref_rows))
    record_goal(rec)
    # object columns: each GB/s keeps its own precision (250 and 0.001 in one column), empty cells stay empty
    return pd.DataFrame(rows, columns=TABLE_COLUMNS).astype(object).fillna("")


def record_goal(rec: tuple[pd.DataFrame, str, dict[str, Any]] | None) -> str | None:
    """Record the recorded run's throughput goal (UCX READ >= 64M at >= 85% of the peer copy) and a summary line."""
    from workshop_lib.bench import vram_report

    if rec is None:
        record("vram_goal_met", None)
        return None
    df, card = rec[0], rec[1]
    met = vram_report.goal_met(df)
    big = vram_report.best_by_size(df)
    big = big[big.request_bytes >= vram_report.GOAL_MIN_BYTES]
    pcts = ", ".join(f"{format_size(int(r.request_bytes))} {r.best_pct:.0f}%" for r in big.itertuples())
    # worded for a learner: what NIXL reached next to the hardware's own copy; the kit's goal stays a record only
    line = (f"recorded on {short_card(card)}: NIXL UCX READ moves {pcts} of what a plain GPU-to-GPU copy of the "
            f"same bytes reaches ({'close to' if met else 'well below'} the copy: the gap is inside NIXL's UCX path, "
            f"not the hardware)")
    record("vram_goal_met", met)
    record("summary_vram", line)
    return line


def hardware_table(rec: tuple[pd.DataFrame, str, dict[str, Any]] | None = None,
                   refcopy: Path | None = None) -> pd.DataFrame:
    """Recorded run: NIXL's best UCX READ per size against what the GPUs do without NIXL (``refcopy.json``)."""
    import pandas as pd

    from workshop_lib.bench import vram_report

    rec = rec if rec is not None else recorded()
    ref_path = refcopy or vram_report.RECORDED.with_name("refcopy.json")
    if rec is None or not ref_path.exists():
        return pd.DataFrame()
    best = vram_report.best_by_size(rec[0]).assign(size=lambda d: d.request_bytes.map(format_size))
    ref = vram_report.reference_table(json.loads(ref_path.read_text()))
    out = best[["size", "best_gbps", "one_at_a_time_gbps", "peer_copy_gbps"]].merge(
        ref[["size", "ce_pull", "ipc_pull_2proc"]], on="size", how="left")
    out = out.rename(columns={"best_gbps": "NIXL UCX READ (best mode)", "one_at_a_time_gbps": "NIXL one at a time",
                              "peer_copy_gbps": "torch peer copy", "ce_pull": "copy engine pull (1 process)",
                              "ipc_pull_2proc": "CUDA IPC pull (2 processes)"})
    return out.round(1)


def vram_plot(ctx: Context) -> Figure | None:
    """The recorded run's plot (GB/s vs request size, peer copy, P5 EFA line rate); None when nothing is recorded."""
    from workshop_lib.bench import vram_report

    rec = ctx.state.get("vram_recorded") or recorded()
    if rec is None:
        return None
    return vram_report.plot(rec[0], rec[2], ctx.work_dir / "vram-recorded.png")
