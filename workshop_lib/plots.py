"""Figures for section 4: serving latency vs concurrency, throughput vs latency, KV-transfer bandwidth vs block size.

Figures are built with ``matplotlib.figure.Figure`` directly (no pyplot state, safe on a headless Agg machine),
saved as PNG when a path is given, and returned for inline display in Jupyter. Every title names the hardware, the
pinned versions and the run date (:class:`FigureInfo`). On ``eks`` the backends are labelled as the seed workshop
measured them, "UCX (TCP)" and "LIBFABRIC (EFA)"; on ``local`` the label names the transport the lab really used.

Example:
    >>> info = FigureInfo.for_target("local", run_date="2026-11-27")
    >>> fig = plot_serving({"UCX": ucx_frame, "LIBFABRIC": lf_frame}, info, path="serving.png")  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from workshop_lib import versions
from workshop_lib.config import INSTANCE_TYPES
from workshop_lib.parsing import format_size

EKS_LABELS = {"UCX": "UCX (TCP)", "LIBFABRIC": "LIBFABRIC (EFA)"}
COLORS = {"UCX": "#d62728", "LIBFABRIC": "#1f77b4"}
PUBLISHED_STYLE = {"linestyle": "--", "marker": "x", "alpha": 0.7}


@dataclass(frozen=True, slots=True)
class FigureInfo:
    """What every title states: target, hardware, versions and run date."""

    target: str
    hardware: str
    versions: str
    run_date: str

    @classmethod
    def for_target(cls, target: str, instance_type: str = "p5.48xlarge", nodes: int = 2,
                   run_date: str | None = None, hardware: str | None = None) -> FigureInfo:
        """Describe ``eks`` (``nodes`` x ``instance_type``) or ``local`` (this machine, no GPU)."""
        if hardware is None:
            if target == "eks":
                inst = INSTANCE_TYPES[instance_type]
                hardware = f"{nodes}x {instance_type} ({inst.gpus}x {inst.gpu_model}, {inst.efa} EFA each)"
            else:
                cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
                hardware = f"local lab on {platform.node()} ({cpus} CPUs, no GPU, TCP not EFA)"
        vers = f"Dynamo {versions.DYNAMO}, NIXL {versions.NIXL}"
        return cls(target, hardware, vers, run_date or _dt.date.today().isoformat())

    def title(self, what: str) -> str:
        return f"{what}\n{self.hardware} | {self.versions} | run {self.run_date}"


def backend_label(backend: str, target: str, transport: str | None = None) -> str:
    """A series label from evidence: the backend and the transport its logs named; never a transport assumed.

    On eks a series whose logs named no transport reads "transport not confirmed" (a LIBFABRIC graph is not EFA until
    a log says so); on local, where no EFA exists, an unnamed transport is the lab's TCP sockets. The seed workshop's
    published series keep their published labels (``EKS_LABELS``), which is how that source named them.

    >>> backend_label("LIBFABRIC", "eks"), backend_label("LIBFABRIC", "eks", "EFA"), backend_label("UCX", "local", "tcp")
    ('LIBFABRIC (transport not confirmed)', 'LIBFABRIC (EFA)', 'UCX (tcp)')
    """
    b = backend.upper()
    if transport:
        return f"{b} ({transport})"
    return f"{b} (transport not confirmed)" if target == "eks" else f"{b} (TCP sockets)"


class PngFigure:
    """A figure as PNG bytes, shown inline by Jupyter (``image/png``) whatever the matplotlib backend.

    A bare ``matplotlib.figure.Figure`` built without pyplot gives only ``text/plain`` under papermill; this object
    gives IPython a ``_repr_png_``, so the executed notebook and its HTML hold the picture.
    """

    def __init__(self, png: bytes, title: str = "") -> None:
        self.png = png
        self.title = title

    def _repr_png_(self) -> bytes:
        return self.png

    def __repr__(self) -> str:
        return f"<figure: {self.title or 'untitled'} ({len(self.png)} bytes PNG)>"


def _title_of(fig: Figure) -> str:
    if fig._suptitle is not None and fig._suptitle.get_text():
        return fig._suptitle.get_text().splitlines()[0]
    return next((ax.get_title().splitlines()[0] for ax in fig.axes if ax.get_title()), "")


def show(fig: Figure | None, dpi: int = 100) -> PngFigure | str:
    """``fig`` as an inline PNG (put the call last in a cell); a one-line note when there is no figure.

    >>> show(None)
    'no figure: nothing was recorded for this plot'
    """
    if fig is None:
        return "no figure: nothing was recorded for this plot"
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return PngFigure(buf.getvalue(), _title_of(fig))


def _color(label: str) -> str | None:
    return next((c for k, c in COLORS.items() if label.upper().startswith(k)), None)


def _save(fig: Figure, path: str | Path | None) -> Figure:
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
    return fig


def plot_serving(runs: Mapping[str, pd.DataFrame], info: FigureInfo, stat: str = "p50",
                 published: pd.DataFrame | None = None, path: str | Path | None = None) -> Figure:
    """TTFT and ITL vs concurrency, one line per labelled run (frames from ``SweepResult.to_frame()``).

    ``published`` (e.g. ``published.seed_ttft()`` filtered to one model) adds dashed "published" lines.
    """
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax_t, ax_i = fig.subplots(1, 2)
    for label, df in runs.items():
        d = df.sort_values("concurrency")
        for ax, metric in ((ax_t, "ttft"), (ax_i, "itl")):
            ax.plot(d["concurrency"], d[f"{metric}_{stat}_ms"], marker="o", label=label, color=_color(label))
    if published is not None and not published.empty:
        for backend, d in published.groupby("backend"):
            d = d.sort_values("concurrency")
            ax_t.plot(d["concurrency"], d["ttft_ms"], label=f"published: {backend}", color=_color(str(backend)),
                      **PUBLISHED_STYLE)
            ax_i.plot(d["concurrency"], d["itl_ms"], label=f"published: {backend}", color=_color(str(backend)),
                      **PUBLISHED_STYLE)
    for ax, name in ((ax_t, "TTFT"), (ax_i, "ITL")):
        ax.set_xlabel("concurrency (requests in flight)")
        ax.set_ylabel(f"{name} {stat} (ms)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(info.title(f"TTFT and ITL ({stat}) vs concurrency"), fontsize=10)
    return _save(fig, path)


def plot_throughput_latency(runs: Mapping[str, pd.DataFrame], info: FigureInfo, latency: str = "ttft_p50_ms",
                            path: str | Path | None = None) -> Figure:
    """Output tokens/s against a latency column, one line per run, each point annotated with its concurrency."""
    fig = Figure(figsize=(6.5, 4.5), layout="constrained")
    ax = fig.subplots()
    for label, df in runs.items():
        d = df.sort_values("concurrency")
        ax.plot(d[latency], d["output_tokens_per_s"], marker="o", label=label, color=_color(label))
        for _, r in d.iterrows():
            ax.annotate(f"c{int(r['concurrency'])}", (r[latency], r["output_tokens_per_s"]), fontsize=7,
                        textcoords="offset points", xytext=(4, 3))
    ax.set_xlabel(latency.replace("_ms", " (ms)").replace("_", " "))
    ax.set_ylabel("output tokens/s")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(info.title("Throughput vs latency"), fontsize=9)
    return _save(fig, path)


def speedup_table(runs: Mapping[str, pd.DataFrame], baseline: str, candidate: str) -> pd.DataFrame:
    """Per concurrency: TTFT/ITL p50 and throughput of both runs, and how many times better ``candidate`` is.

    ``ttft_speedup`` = baseline TTFT / candidate TTFT (> 1: candidate faster); ``throughput_gain`` =
    candidate tokens/s / baseline tokens/s.
    """
    cols = ["concurrency", "ttft_p50_ms", "itl_p50_ms", "output_tokens_per_s"]
    b = runs[baseline][cols]
    c = runs[candidate][cols]
    m = b.merge(c, on="concurrency", suffixes=(f" [{baseline}]", f" [{candidate}]"))
    m["ttft_speedup"] = (m[f"ttft_p50_ms [{baseline}]"] / m[f"ttft_p50_ms [{candidate}]"]).round(2)
    m["itl_speedup"] = (m[f"itl_p50_ms [{baseline}]"] / m[f"itl_p50_ms [{candidate}]"]).round(2)
    m["throughput_gain"] = (m[f"output_tokens_per_s [{candidate}]"] / m[f"output_tokens_per_s [{baseline}]"]).round(2)
    return m.sort_values("concurrency", ignore_index=True)


def efa_line_rate_gbytes(instance_type: str = "p5.48xlarge") -> float:
    """Aggregate EFA line rate of one instance in GB/s (p5.48xlarge: 3200 Gbps = 400 GB/s).

    >>> efa_line_rate_gbytes("p5.48xlarge")
    400.0
    """
    return INSTANCE_TYPES[instance_type].efa_gbps_total / 8


def plot_bandwidth(df: pd.DataFrame, info: FigureInfo, instance_type: str = "p5.48xlarge",
                   published: pd.DataFrame | None = None, path: str | Path | None = None) -> Figure:
    """KV-transfer GB/s vs block size, one line per (source, backend, op, mem) of ``df`` (``bench.nixl.COLUMNS``).

    Draws the instance's aggregate EFA line rate as a horizontal reference and ``published`` points (default: the
    published nixlbench LIBFABRIC VRAM figures) as dashed "published" lines. Labels follow :func:`backend_label`.
    """
    from workshop_lib.bench.nixl import published_frame

    pub = published_frame() if published is None else published
    split = info.target != "eks" and not pub.empty  # local DRAM/TCP points never share an axis with P5 EFA ones
    fig = Figure(figsize=(12, 4.8) if split else (8, 4.8), layout="constrained")
    axes = fig.subplots(1, 2) if split else [fig.subplots()]
    ax, ax_pub = axes[0], axes[-1]
    keys = ["source", "backend", "op", "mem"]
    for key, d in df.groupby(keys, dropna=False, sort=True):
        source, backend, op, mem = key
        transport = d["transport"].dropna().iloc[0] if "transport" in d and d["transport"].notna().any() else None
        label = f"{backend_label(str(backend), info.target, transport)} {op} {mem}"
        if source not in ("lab",):
            label = f"{source}: {label}"
        d = d.sort_values("block_size")
        ax.plot(d["block_size"], d["gbps"], marker="o", label=label, color=_color(str(backend)))
    if not pub.empty:
        for (backend, op, mem), d in pub.groupby(["backend", "op", "mem"]):
            d = d.sort_values("block_size")
            ax_pub.plot(d["block_size"], d["gbps"], color=_color(str(backend)),
                        label=f"published: {EKS_LABELS.get(str(backend), backend)} {op} {mem} (nixlbench, 2x p5)",
                        **PUBLISHED_STYLE)
    rate = efa_line_rate_gbytes(instance_type)
    inst = INSTANCE_TYPES[instance_type]
    ax_pub.axhline(rate, color="grey", linestyle=":", label=f"EFA line rate {instance_type}: {inst.efa} x "
                   f"{inst.efa_gbps_total // inst.efa} Gbps = {rate:g} GB/s")
    for a in axes:
        a.set_xscale("log", base=2)
        a.xaxis.set_major_formatter(FuncFormatter(lambda v, _: format_size(v, approx=True)))
        a.set_yscale("log")
        a.set_xlabel("block size")
        a.set_ylabel("bandwidth (GB/s)")
        a.grid(alpha=0.3, which="both")
        a.legend(fontsize=7, loc="lower right")
    if split:
        ax.set_title("this run: " + info.hardware + "\n(DRAM over TCP: compare shapes, not values)", fontsize=8)
        ax_pub.set_title("published: 2x p5.48xlarge, VRAM over EFA (not this machine)", fontsize=8)
        fig.suptitle(info.title("KV-transfer bandwidth vs block size"), fontsize=9)
        return _save(fig, path)
    ax.set_title(info.title("KV-transfer bandwidth vs block size"), fontsize=9)
    return _save(fig, path)


SPLIT_PARTS = (("prefill_s", "prefill", "#9467bd"), ("kv_transfer_s", "KV transfer (NIXL)", "#ff7f0e"),
               ("first_decode_s", "first decode step", "#2ca02c"), ("other_s", "frontend, routing, hops", "#7f7f7f"))


def plot_ttft_split(split: pd.DataFrame, info: FigureInfo, path: str | Path | None = None) -> Figure:
    """TTFT p50 split into prefill / KV transfer / first decode / the rest, one stacked bar per backend.

    ``split`` has one row per backend (column ``backend``) and the medians ``prefill_s``, ``kv_transfer_s``,
    ``first_decode_s``, ``other_s`` (``lab.breakdown.summary``), in seconds; bars are in milliseconds.
    """
    fig = Figure(figsize=(8, 1.2 + 0.9 * max(len(split), 1)), layout="constrained")
    ax = fig.subplots()
    labels = [backend_label(str(b), info.target, None if info.target == "eks" else "CPU, loopback")
              for b in split["backend"]]
    left = [0.0] * len(split)
    for col, name, color in SPLIT_PARTS:
        ms = [float(v) * 1000 for v in split[col]]
        ax.barh(labels, ms, left=left, label=name, color=color)
        left = [a + b for a, b in zip(left, ms, strict=True)]
    ax.set_xlabel("time to first token, p50 (ms)")
    ax.grid(alpha=0.3, axis="x")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(info.title("Where the first token's time goes"), fontsize=9)
    return _save(fig, path)
