"""The GPU (VRAM -> VRAM) KV-transfer benchmark: modes, the results table, the goal and the report.

Pure logic, no GPU and no NIXL: the benchmark runner (``benchmarks/nixl_vram/run.py``) produces ``results.json`` on a
GPU host; this module sizes its runs, turns the file into a DataFrame, judges the throughput goal and draws the plot,
on any machine. Notebook 04 reads the recorded file through :func:`load_recorded`.

Example:
    >>> mode_spec_sizes("batched-16", [64 * 2**20])
    ([4194304], 16, 1)
    >>> mode_spec_sizes("inflight-4", [2**20])
    ([1048576], 1, 4)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workshop_lib.errors import BenchError
from workshop_lib.parsing import MiB, format_size
from workshop_lib.paths import repo_root

if TYPE_CHECKING:
    import pandas as pd

RECORDED = repo_root() / "benchmarks" / "nixl_vram" / "results.json"

# How a request of ``size`` bytes is driven: split into ``split`` KV blocks per request, ``inflight`` requests at once.
MODES: dict[str, dict[str, int]] = {
    "one-at-a-time": {"split": 1, "inflight": 1},
    "batched-16": {"split": 16, "inflight": 1},
    "inflight-4": {"split": 1, "inflight": 4},
}
GOAL_PCT = 85.0  # NIXL UCX READ at 64 MiB and above, as a percentage of the peer copy of the same bytes
GOAL_MIN_BYTES = 64 * MiB

COLUMNS = [
    "backend", "op", "mode", "request_bytes", "block_size", "batch", "inflight", "iters", "gbps",
    "peer_copy_gbps", "pct_of_peer_copy", "lat_p50_us", "lat_p99_us", "verified", "transport",
]


def mode_spec_sizes(mode: str, request_sizes: Sequence[int]) -> tuple[list[int], int, int]:
    """Block sizes, ``batch`` and ``inflight`` for a mode, so each request moves ``request_sizes[i]`` bytes.

    Raises:
        BenchError: an unknown mode, or a size the mode cannot split evenly.
    """
    if mode not in MODES:
        raise BenchError("--modes", f"unknown mode {mode!r}", f"use one of {', '.join(MODES)}")
    split, inflight = MODES[mode]["split"], MODES[mode]["inflight"]
    bad = [s for s in request_sizes if s % split]
    if bad:
        raise BenchError("--sizes", f"{bad[0]} B does not split into {split} equal blocks", "use powers of two >= 64K")
    return [s // split for s in request_sizes], split, inflight


def frame(data: dict[str, Any]) -> pd.DataFrame:
    """One row per (backend, op, mode, request size) of a ``results.json``, columns :data:`COLUMNS`."""
    import pandas as pd

    rows = []
    for run in data.get("runs", []):
        for r in run.get("rows", []):
            rows.append(
                {
                    **{k: r.get(k) for k in COLUMNS if k in r},
                    "backend": run.get("backend", r.get("backend")),
                    "op": run.get("op", r.get("op")),
                    "mode": run.get("mode", "one-at-a-time"),
                    "request_bytes": int(r["block_size"]) * int(r.get("batch", 1)),
                }
            )
    return pd.DataFrame(rows, columns=COLUMNS)


def best_by_size(df: pd.DataFrame, backend: str = "UCX", op: str = "READ") -> pd.DataFrame:
    """For each request size, the mode with the highest share of the peer copy (and the one-at-a-time figure)."""
    import pandas as pd

    d = df[(df.backend == backend) & (df.op == op)]
    out = []
    for size, g in d.groupby("request_bytes"):
        score = g["pct_of_peer_copy"].astype(float)
        best = g.loc[(score if score.notna().any() else g["gbps"].astype(float)).idxmax()]
        base = g[g["mode"] == "one-at-a-time"]
        out.append(
            {
                "request_bytes": int(size),
                "best_mode": best["mode"],
                "best_gbps": float(best["gbps"]),
                "best_pct": _num(best["pct_of_peer_copy"]),
                "one_at_a_time_gbps": float(base["gbps"].iloc[0]) if len(base) else None,
                "one_at_a_time_pct": _num(base["pct_of_peer_copy"].iloc[0]) if len(base) else None,
                "peer_copy_gbps": _num(best["peer_copy_gbps"]),
                "verified": bool(g["verified"].all()),
            }
        )
    return pd.DataFrame(out, columns=BEST_COLUMNS)


BEST_COLUMNS = [
    "request_bytes", "best_mode", "best_gbps", "best_pct", "one_at_a_time_gbps", "one_at_a_time_pct",
    "peer_copy_gbps", "verified",
]


def _num(v: Any) -> float | None:
    return None if v is None or v != v else float(v)


def goal_met(df: pd.DataFrame) -> bool:
    """UCX READ at every request size >= 64 MiB reaches :data:`GOAL_PCT` of the peer copy in its best mode."""
    best = best_by_size(df)
    big = best[best.request_bytes >= GOAL_MIN_BYTES]
    pct = big.best_pct.astype(float)
    return bool(len(big)) and bool((pct >= GOAL_PCT).all()) and bool(big.verified.all())


def goal_rows(data: dict[str, Any]) -> list[str]:
    """Plain-text lines: per size, best mode vs one at a time, and the goal verdict."""
    df = frame(data)
    if df.empty:
        return ["no VRAM rows recorded"]
    best = best_by_size(df)
    if best.empty:
        return ["no UCX READ rows recorded: the goal is judged on UCX READ"]
    lines = []
    for r in best.itertuples():
        lines.append(
            f"UCX READ {format_size(r.request_bytes):>5}: best {r.best_mode} {r.best_gbps:.1f} GB/s = {_pct(r.best_pct)} of "
            f"peer copy {_fmt(r.peer_copy_gbps)} (one at a time {_fmt(r.one_at_a_time_gbps)} GB/s = "
            f"{_pct(r.one_at_a_time_pct)})"
        )
    lines.append(f"goal (UCX READ >= 64M at >= {GOAL_PCT:.0f}% of the peer copy): {'MET' if goal_met(df) else 'NOT MET'}")
    return lines


def markdown_table(df: pd.DataFrame) -> str:
    """A GitHub markdown table of ``df`` (no extra dependency); None/NaN shown as ``-``."""
    def cell(v: Any) -> str:
        return "-" if v is None or (isinstance(v, float) and v != v) else str(v)

    head = "| " + " | ".join(map(str, df.columns)) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, sep, *body])


def _fmt(v: float | None) -> str:
    return "-" if v is None or v != v else f"{v:.1f}"


def _pct(v: float | None) -> str:
    return "-" if v is None or v != v else f"{v:.1f}%"


def card(data: dict[str, Any]) -> str:
    """``"2x NVIDIA H200 (driver 580.159.04)"`` from the recorded nvidia-smi lines."""
    smi = data.get("meta", {}).get("nvidia_smi") or []
    if not smi:
        return "unknown GPU"
    names = [line.split(",")[0].strip() for line in smi]
    driver = smi[0].split(",")[1].strip() if "," in smi[0] else "?"
    return f"{len(names)}x {names[0]} (driver {driver})"


def plot(df: pd.DataFrame, data: dict[str, Any], path: Path | None = None) -> Any:
    """GB/s vs request size per (op, mode), the peer copy, and the P5 EFA line rate; titled with card and versions."""
    from matplotlib.figure import Figure

    from workshop_lib.plots import efa_line_rate_gbytes

    meta = data.get("meta", {})
    fig = Figure(figsize=(8.5, 5), layout="constrained")
    ax = fig.subplots()
    styles = {"one-at-a-time": "-", "batched-16": "--", "inflight-4": "-."}
    for (backend, op, mode), g in df.groupby(["backend", "op", "mode"], sort=True):
        g = g.sort_values("request_bytes")
        ax.plot(g.request_bytes, g.gbps, marker="o", linestyle=styles.get(mode, "-"),
                color="tab:blue" if op == "READ" else "tab:orange", label=f"NIXL {backend} {op}, {mode}")
    peer = df.groupby("request_bytes")["peer_copy_gbps"].median().sort_index()
    ax.plot(peer.index, peer.values, color="black", marker="s", label="torch peer copy GPU->GPU (same run)")
    rate = efa_line_rate_gbytes("p5.48xlarge")
    ax.axhline(rate, color="grey", linestyle=":", label=f"EFA line rate of one p5.48xlarge ({rate:g} GB/s)")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("bytes per transfer request")
    ax.set_ylabel("GB/s (1e9 B/s)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="lower right")
    versions = f"NIXL {meta.get('nixl', '?')} (cu12 wheel, CUDA runtime {meta.get('cuda_runtime_wheel', '?')})"
    ax.set_title(
        f"NIXL VRAM->VRAM between two GPUs of one host (NVLink) vs peer copy\n{card(data)} | {versions} | "
        f"run {str(meta.get('started', '?'))[:10]}",
        fontsize=9,
    )
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def reference_table(refcopy: dict[str, Any]) -> pd.DataFrame:
    """The copy-engine / SM / CUDA-IPC reference copies of ``refcopy.json`` as one table (GB/s per size)."""
    import pandas as pd

    ipc = {r["bytes"]: r for r in refcopy.get("ipc_rows", [])}
    rows = []
    for r in refcopy.get("rows", []):
        extra = ipc.get(r["bytes"], {})
        rows.append(
            {
                "size": format_size(int(r["bytes"])),
                "ce_pull": r.get("ce-pull"),
                "ce_push": r.get("ce-push"),
                "sm_pull": r.get("sm-pull"),
                "sm_push": r.get("sm-push"),
                "ipc_pull_2proc": extra.get("ipc-pull"),
                "ipc_pull_2proc_4streams": extra.get("ipc-pull-4streams"),
                "verified": bool(r.get("verified")) and bool(extra.get("verified", True)),
            }
        )
    return pd.DataFrame(rows).round(1)


def build_report(
    data: dict[str, Any],
    plot_path: Path | None = None,
    refcopy: dict[str, Any] | None = None,
    repeat: dict[str, Any] | None = None,
) -> str:
    """RESULTS.md text: what ran, the full table, the best mode per size, the goal verdict; writes the plot.

    ``refcopy`` (``refcopy.py`` output) adds the engine/direction/IPC references; ``repeat`` a second run's best rows.
    """
    df = frame(data)
    if df.empty:
        raise BenchError("results.json", "holds no VRAM rows", "run benchmarks/nixl_vram/run.py on a GPU host first")
    if plot_path is not None:
        plot(df, data, plot_path)
    meta = data.get("meta", {})
    show = df.assign(
        size=df.request_bytes.map(format_size),
        gbps=df.gbps.round(1),
        peer_copy_gbps=df.peer_copy_gbps.astype(float).round(1),
        pct_of_peer_copy=df.pct_of_peer_copy.astype(float).round(1),
        lat_p50_us=df.lat_p50_us.astype(float).round(1),
    )[["backend", "op", "mode", "size", "gbps", "peer_copy_gbps", "pct_of_peer_copy", "lat_p50_us", "verified",
       "transport"]]
    best = best_by_size(df).assign(size=lambda d: d.request_bytes.map(format_size)).round(1)
    lines = [
        "# NIXL VRAM -> VRAM on GPUs: results",
        "",
        f"Card: {card(data)}; topology: {' / '.join(meta.get('topology', [])[1:3]) or 'n/a'}.",
        f"Software: NIXL {meta.get('nixl')} + nixl-cu12 {meta.get('nixl_cu12')} (the workshop's pin), CUDA runtime "
        f"wheel {meta.get('cuda_runtime_wheel')}, Python {meta.get('python')}; run {meta.get('started')}.",
        "Command: `python benchmarks/nixl_vram/run.py --out $OUT` on the GPU host, then "
        "`python benchmarks/nixl_vram/run.py --report results.json` here.",
        "Two agents in two processes (GPU0 initiator, GPU1 target), every block checksummed on the GPU; the peer copy is "
        "a torch device-to-device copy of the same bytes, timed in the initiator's process in the same run.",
        "",
        "## Every row",
        "",
        markdown_table(show),
        "",
        "## UCX READ: best way of driving the transfers vs one at a time",
        "",
        markdown_table(best[["size", "best_mode", "best_gbps", "best_pct", "one_at_a_time_gbps", "one_at_a_time_pct",
                             "peer_copy_gbps", "verified"]]),
        "",
        *goal_rows(data)[-1:],
    ]
    if repeat is not None and not frame(repeat).empty:
        rb = best_by_size(frame(repeat)).assign(size=lambda d: d.request_bytes.map(format_size)).round(1)
        lines += [
            "",
            "## Repeat run (same machine, minutes later): UCX READ",
            "",
            markdown_table(rb[["size", "best_mode", "best_gbps", "best_pct", "one_at_a_time_gbps", "one_at_a_time_pct",
                               "peer_copy_gbps", "verified"]]),
        ]
    if refcopy is not None:
        lines += [
            "",
            "## What the hardware does without NIXL (GPU1 -> GPU0, GB/s, `refcopy.py`)",
            "",
            "ce = cudaMemcpyPeerAsync (copy engine), sm = a copy kernel; pull = issued on the receiving GPU (what a "
            "READ by GPU0 does), push = on the sending GPU; ipc_pull_2proc = two processes, CUDA IPC handle, one "
            "cudaMemcpyAsync on the receiver (exactly the path UCX cuda_ipc takes), and split over four streams.",
            "",
            markdown_table(reference_table(refcopy)),
        ]
    for s in data.get("skipped", []):
        lines.append(f"\n{s['backend']} not run: {s['reason']}")
    return "\n".join(lines) + "\n"


def load_recorded(path: Path = RECORDED) -> tuple[pd.DataFrame, str] | None:
    """The recorded GPU run (frame and card), or None when none is recorded."""
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise BenchError(str(path), f"is not valid JSON ({exc})", "re-record it with benchmarks/nixl_vram/run.py") from None
    return frame(data), card(data)
