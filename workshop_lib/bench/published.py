"""Published figures shown beside the attendee's own results, each with its source (from ``FACTS.md``).

These are reference points, not results of this kit: plots draw them as "published" markers.

Example:
    >>> seed_ttft().query("model == 'Qwen3-0.6B' and concurrency == 10")[["backend", "ttft_ms"]].values.tolist()
    [['UCX (TCP)', 1665.0], ['LIBFABRIC (EFA)', 90.0]]
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from workshop_lib.parsing import KiB, MiB

SEED_SOURCE = ("seed workshop, 2x p5.48xlarge, TRT-LLM 1.3.0rc1, ISL 512 / OSL 128, one EFA rail; its UCX baseline "
               "ran over TCP; measured with a TRT-LLM image carrying a patched NIXL 0.8.0 ('Patched NIXL 0.8.0 + 11 "
               "patches' in its deployment YAML), not tensorrtllm-runtime:0.9.0, whose Dynamo 0.9.0 docs support only "
               "UCX")
NIXLBENCH_SOURCE = ("nixlbench LIBFABRIC VRAM->VRAM WRITE across 2x p5.48xlarge, self-published; rails used not recorded "
                    "(dmvevents/awsome-inference-1 @ce80c01, nixlbench-multinode-PASS)")
DYNAMO_DOCS_SOURCE = "Dynamo docs (EFA guide), p5, 4 EFA per worker, Llama-3.1-8B"
ISSUE_4185_SOURCE = "ai-dynamo/dynamo issue 4185"

# (model, concurrency, UCX-over-TCP TTFT ms, LIBFABRIC TTFT ms)
_SEED_TTFT = [
    ("Qwen3-0.6B", 1, 252, 76), ("Qwen3-0.6B", 5, 695, 77), ("Qwen3-0.6B", 10, 1665, 90), ("Qwen3-0.6B", 20, 3333, 104),
    ("Qwen2.5-7B", 1, 146, 76), ("Qwen2.5-7B", 5, 179, 80), ("Qwen2.5-7B", 10, 278, 126), ("Qwen2.5-7B", 20, 1203, 214),
]
SEED_ITL_MS = {"Qwen3-0.6B": 2.2, "Qwen2.5-7B": 6.1}  # about the same for both backends
SEED_PEAK_OUTPUT_TOK_S = {"LIBFABRIC (EFA)": 1340.0, "UCX (TCP)": 610.0}  # Qwen3-0.6B, concurrency 10

# (block size bytes, GB/s)
_NIXLBENCH_LF_VRAM = [(4 * KiB, 0.113), (64 * KiB, 1.41), (1 * MiB, 15.09), (4 * MiB, 30.18), (16 * MiB, 41.96),
                      (64 * MiB, 46.95)]


@dataclass(frozen=True, slots=True)
class Figure:
    """One published number with its unit and source."""

    name: str
    value: float
    unit: str
    source: str


OTHER_FIGURES: list[Figure] = [
    Figure("KV transfer bandwidth, LIBFABRIC on EFA", 9.6, "GB/s", DYNAMO_DOCS_SOURCE),
    Figure("KV transfer time per request", 37.0, "ms", DYNAMO_DOCS_SOURCE),
    Figure("ITL change vs aggregated, ISL 8000", -41.0, "%", DYNAMO_DOCS_SOURCE),
    Figure("throughput change vs aggregated, ISL 8000", 22.0, "%", DYNAMO_DOCS_SOURCE),
    Figure("UCX on EFA KV bandwidth", 1.0, "GB/s", DYNAMO_DOCS_SOURCE),
    Figure("TTFT with silent TCP fallback", 98_000.0, "ms", DYNAMO_DOCS_SOURCE),
    Figure("TTFT with default UCX on p5", 2500.0, "ms (more than)", ISSUE_4185_SOURCE),
]


def seed_ttft() -> pd.DataFrame:
    """Seed-workshop TTFT per model, backend and concurrency: columns model, backend, concurrency, ttft_ms,
    itl_ms, source. Backends are labelled "UCX (TCP)" and "LIBFABRIC (EFA)"."""
    rows = []
    for model, conc, ucx, lf in _SEED_TTFT:
        for backend, ttft in (("UCX (TCP)", ucx), ("LIBFABRIC (EFA)", lf)):
            rows.append({"model": model, "backend": backend, "concurrency": conc, "ttft_ms": float(ttft),
                         "itl_ms": SEED_ITL_MS[model], "source": SEED_SOURCE})
    return pd.DataFrame(rows)


def seed_speedup() -> pd.DataFrame:
    """UCX (TCP) TTFT divided by LIBFABRIC (EFA) TTFT per model and concurrency (published)."""
    df = seed_ttft().pivot_table(index=["model", "concurrency"], columns="backend", values="ttft_ms").reset_index()
    df["ttft_speedup"] = (df["UCX (TCP)"] / df["LIBFABRIC (EFA)"]).round(2)
    df.columns.name = None
    return df


def nixlbench_libfabric_vram() -> pd.DataFrame:
    """Published nixlbench points: columns backend, op, mem, block_size, gbps, source."""
    return pd.DataFrame([{"backend": "LIBFABRIC", "op": "WRITE", "mem": "VRAM", "block_size": b, "gbps": g,
                          "source": NIXLBENCH_SOURCE} for b, g in _NIXLBENCH_LF_VRAM])


def other_figures() -> pd.DataFrame:
    """The remaining published figures (Dynamo docs, issue 4185) as name, value, unit, source."""
    return pd.DataFrame([{"name": f.name, "value": f.value, "unit": f.unit, "source": f.source} for f in OTHER_FIGURES])
