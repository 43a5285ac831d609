"""KV-transfer sweeps: the lab's NIXL pair over backends and operations, and nixlbench output, in one table.

Both sources end in the columns of :data:`COLUMNS`, so a plot or a speedup table does not care whether a row came
from two lab agents on this machine (``source="lab"``), from nixlbench on a cluster (``source="nixlbench"``) or
from a publication (``source="published"``).

Example:
    >>> df = nixlbench_frame("/path/to/nixlbench-initiator.log")  # doctest: +SKIP
    >>> df[["backend", "op", "block_size", "gbps"]].head(2)  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from workshop_lib.config import KV_BACKENDS
from workshop_lib.errors import ConfigError
from workshop_lib.lab.nixl_plan import OPS

COLUMNS = ["source", "backend", "op", "mem", "block_size", "batch", "inflight", "iters", "bytes_moved", "seconds",
           "gbps", "lat_avg_us", "lat_p50_us", "lat_p99_us", "verified", "transport"]


def _names(value: str | Sequence[str], allowed: Sequence[str], field: str) -> list[str]:
    items = [v.strip().upper() for v in (value.split(",") if isinstance(value, str) else value) if v.strip()]
    bad = [v for v in items if v not in allowed]
    if not items or bad:
        raise ConfigError(field, f"{bad or value!r} not in {', '.join(allowed)}", f"use e.g. --{field} {','.join(allowed)}")
    return list(dict.fromkeys(items))


def lab_frame(result: Any) -> pd.DataFrame:
    """A lab :class:`~workshop_lib.lab.nixl_pair.NixlPairResult` in :data:`COLUMNS` (lat_avg_us from bytes and time)."""
    df = result.to_frame().copy()
    df["source"] = "lab"
    per = df["iters"].where(df["iters"] > 0)
    df["lat_avg_us"] = df["seconds"] / per * 1e6 * df["inflight"]
    return df.reindex(columns=COLUMNS)


def log_transport(path: str | Path) -> str | None:
    """The transport a NIXL/nixlbench log names, as evidence: the libfabric provider its lines state (``efa``,
    ``tcp;ofi_rxm``...) via :func:`workshop_lib.logs.diagnose.diagnose`, or None when no line names one.

    A LIBFABRIC backend alone is not evidence of EFA: the same backend runs over TCP sockets.
    """
    from workshop_lib.logs.diagnose import diagnose

    return diagnose(Path(path)).libfabric_provider


def nixlbench_frame(result_or_path: Any) -> pd.DataFrame:
    """nixlbench's table (a path or a parsed :class:`~workshop_lib.logs.nixlbench.NixlbenchResult`) in :data:`COLUMNS`.

    nixlbench reports average latency only, so ``lat_p50_us``/``lat_p99_us`` stay empty; ``bytes_moved`` and
    ``seconds`` are derived from block size, batch, ``num_iter`` and bandwidth. ``backend`` is the one the banner
    prints; ``transport`` is what the log itself says (:func:`log_transport`, given a path), else None: a caller
    shows None as "not confirmed", never a name guessed from the backend or the pod.

    Raises:
        ConfigError: the log has no result table (e.g. a target-side log).
    """
    from workshop_lib.logs import parse_nixlbench

    res = parse_nixlbench(result_or_path) if isinstance(result_or_path, str | Path) else result_or_path
    t = res.table
    if t.empty:
        raise ConfigError(getattr(res, "source", "nixlbench log"), "no result table in this nixlbench log",
                          "give the initiator's log (the target prints only the banner)")
    cfg = res.config
    iters = int(cfg.get("num_iter", 0) or 0)
    mem = str(cfg.get("mem") or cfg.get("initiator_seg_type") or "")
    df = pd.DataFrame({
        "source": "nixlbench", "backend": str(cfg.get("backend", "")).upper(),
        "op": str(cfg.get("op") or cfg.get("op_type") or "").upper(), "mem": mem.split("->")[0],
        "block_size": t["block_size"].astype("int64"), "batch": t["batch"].astype("int64"), "inflight": 1,
        "iters": iters, "gbps": t["gbps"].astype(float), "lat_avg_us": t["lat_avg_us"].astype(float),
        "lat_p50_us": math.nan, "lat_p99_us": math.nan, "verified": bool(cfg.get("check_consistency", 0)),
        "transport": log_transport(result_or_path) if isinstance(result_or_path, str | Path) else None,
    })
    df["bytes_moved"] = df["block_size"] * df["batch"] * iters
    df["seconds"] = df["bytes_moved"] / (df["gbps"] * 1e9)
    return df.reindex(columns=COLUMNS)


def published_frame() -> pd.DataFrame:
    """The published nixlbench points (:mod:`workshop_lib.bench.published`) in :data:`COLUMNS`."""
    from workshop_lib.bench.published import nixlbench_libfabric_vram

    df = nixlbench_libfabric_vram().drop(columns=["source"])
    df["source"] = "published"
    return df.reindex(columns=COLUMNS)


def sweep_nixl(backends: str | Sequence[str] = KV_BACKENDS, ops: str | Sequence[str] = OPS,
               sizes: str | Sequence[int] = "4K..64M", mem: str = "DRAM", netns: bool = False, iters: int = 0,
               ucx_tls: str | None = None, batch: int = 1, inflight: int = 1, log_dir: str | Path | None = None,
               progress: bool = True) -> pd.DataFrame:
    """Run the lab's NIXL pair for every backend x operation and return one frame in :data:`COLUMNS`.

    Args:
        backends: ``"UCX,LIBFABRIC"`` or a list.
        ops: ``"READ,WRITE"`` or a list.
        sizes: ``"4K..64M"`` (powers of two), ``"4K,1M"`` or byte counts.
        mem: ``DRAM`` (the local lab) or ``VRAM`` (GPU hosts).
        netns: two network namespaces joined by a veth pair (root), so the bytes cross a network interface.
        iters, ucx_tls, batch, inflight: passed to :class:`~workshop_lib.lab.nixl_pair.NixlPairSpec`.
        log_dir: agents' logs go to ``log_dir/<backend>-<op>/``.

    Raises:
        ConfigError: a bad backend, op or size; lab errors from ``run_pair`` pass through.
    """
    from workshop_lib.lab.nixl_pair import NixlPairSpec, run_pair
    from workshop_lib.parsing import parse_sizes

    size_list = parse_sizes(sizes) if isinstance(sizes, str) else [int(s) for s in sizes]
    frames = []
    for backend in _names(backends, KV_BACKENDS, "backend"):
        for op in _names(ops, OPS, "op"):
            spec = NixlPairSpec(backend=backend, op=op, sizes=size_list, iters=iters, mem=mem, netns=netns,
                                ucx_tls=ucx_tls, batch=batch, inflight=inflight)
            sub = Path(log_dir) / f"{backend.lower()}-{op.lower()}" if log_dir else None
            frames.append(lab_frame(run_pair(spec, sub, progress=progress)))
    return pd.concat(frames, ignore_index=True)


def bandwidth_table(df: pd.DataFrame) -> pd.DataFrame:
    """GB/s by block size (rows) and ``backend op [mem]`` (columns), for printing side by side."""
    key = df["backend"] + " " + df["op"] + df["mem"].map(lambda m: f" {m}" if m else "")
    if "source" in df and df["source"].nunique() > 1:
        key = df["source"] + ": " + key
    return df.assign(series=key).pivot_table(index="block_size", columns="series", values="gbps").round(3)
