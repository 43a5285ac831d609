"""Timing that fits: how long each notebook takes on each target, and the basis of every figure.

Local times are measured (``workshop run --target local`` on the machine named in :data:`LOCAL_BASIS`); EKS times are
estimates, each with its basis (model load and JIT times reported by the seed workshop, request counts x latency).
Class mode: an instructor deploys the graphs before class and attendees pass their frontend URLs (``UCX_URL``,
``LIBFABRIC_URL`` in notebook 04; ``FRONTEND_URL`` in 02), so nothing is redeployed in the attendee's slot.

Example:
    >>> timing_table()["notebook"].tolist()
    ['01', '02', '03', '04']
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from workshop_lib.paths import repo_root

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

LOCAL_BASIS = ("measured 2026-12-07: `WORKSHOP_ENGINE=mocker workshop run --target local` on the kit's 2-core, 24 GiB "
               "development VM (no GPU, shared with other jobs), lab set up; two runs, cold lab then warm")


VLLM_BASIS = ("measured 2026-12-07 12:53: `WORKSHOP_ENGINE=vllm workshop run --target local --notebooks 02` from a "
              "stopped lab (its start is ~2.4 min of it); other notebooks not timed on the real engine yet")


QUICKSTART_RECORD = repo_root() / "benchmarks" / "quickstart" / "results.json"


def recorded_vllm_minutes(path: Path | None = None) -> tuple[dict[str, float], str] | None:
    """Per-notebook minutes of the recorded ``make run`` from a clean clone (real engine), with its basis; None when
    the quick-start record holds no per-notebook times."""
    try:
        rec = json.loads((path or QUICKSTART_RECORD).read_text())
        run = rec["commands"]["run"]
        nbs = run["notebooks"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    minutes = {str(nb["notebook"])[:2]: round(float(nb["seconds"]) / 60, 1) for nb in nbs
               if nb.get("status") == "ok" and isinstance(nb.get("seconds"), (int, float))}
    if not minutes:
        return None
    when = run.get("when") or rec.get("when") or "?"
    basis = (f"measured {when}: `make run` from a clean clone on {rec.get('cpus', '?')} cores (benchmarks/quickstart), "
             "real engine; notebook 01 includes starting the lab")
    return minutes, basis


@dataclass(frozen=True)
class NotebookTime:
    """One notebook's time: the class slot, local (measured), EKS (estimated) with basis, and EKS in class mode."""

    notebook: str
    slot_min: int
    local_min: float | None
    local_basis: str
    eks_min: str
    eks_basis: str
    eks_class_mode_min: str
    class_mode: str
    local_vllm_min: float | None = None  # the real engine (vLLM on CPU), measured where noted in VLLM_BASIS


TIMES: list[NotebookTime] = [
    NotebookTime("01", 15, 0.6, LOCAL_BASIS, "10-15",
                 "two helm installs (~2 min) + operator/etcd/NATS pods Ready (~3 min) + checks and secret (~2 min); "
                 "node creation not included", "5-8", "instructor installs the platform; attendees run the checks"),
    NotebookTime("02", 15, 0.3, LOCAL_BASIS, "10-25",
                 "vLLM worker image pull + model load ~5-10 min on P5; TRT-LLM adds 15-20 min of JIT on first start "
                 "(seed workshop)", "3-5", "FRONTEND_URL of the instructor's single-node graph: no deploy", 3.6),
    NotebookTime("03", 20, 1.0, LOCAL_BASIS, "12-20",
                 "cross-node graph: two model loads in parallel ~5-10 min + log reads; OOM lesson reads events only",
                 "5", "read the instructor's running cross-node graph's logs"),
    NotebookTime("04", 10, 0.6, LOCAL_BASIS, "30-45",
                 "two graphs deployed one after another (each needs all 32 EFA of a node): 2 x ~10 min + "
                 "4 concurrency levels x 100 requests x ~0.2-3 s per backend",
                 "8-10", "UCX_URL and LIBFABRIC_URL of the instructor's two graphs (on four nodes): sweep only"),
]


def timing_table(local_minutes: dict[str, float] | None = None) -> pd.DataFrame:
    """:data:`TIMES` as a table; ``local_minutes`` (notebook -> measured minutes) fills the local column."""
    import pandas as pd

    recorded = recorded_vllm_minutes()
    vllm, basis = recorded if recorded else ({}, VLLM_BASIS)
    rows = []
    for t in TIMES:
        local = (local_minutes or {}).get(t.notebook, t.local_min)
        real = vllm.get(t.notebook, t.local_vllm_min)
        rows.append({"notebook": t.notebook, "class slot (min)": t.slot_min,
                     "local (min, measured)": local if local is not None else "not measured yet",
                     "local basis": t.local_basis,
                     "local, real engine (min)": real if real is not None else "not timed yet",
                     "eks (min, estimated)": t.eks_min, "eks basis": t.eks_basis,
                     "eks class mode (min)": t.eks_class_mode_min, "class mode": t.class_mode})
    frame = pd.DataFrame(rows)
    frame.attrs["real engine basis"] = basis
    return frame


def class_mode(ucx_url: str | None, libfabric_url: str | None, target: str = "eks") -> str:
    """One line saying whether notebook 04 runs in class mode (both URLs given) and what it will skip."""
    if target != "eks":
        return ("local: nothing is deployed in this step (its plan is for EKS); the sweep runs against the lab "
                "started in notebook 02. On EKS, class mode (UCX_URL, LIBFABRIC_URL) makes this notebook fit 10 minutes.")
    given = [n for n, u in (("UCX_URL", ucx_url), ("LIBFABRIC_URL", libfabric_url)) if u]
    if len(given) == 2:
        return "class mode: both frontends given, nothing is deployed; the sweep runs against them (fits 10 minutes)"
    if given:
        return f"half class mode: {given[0]} given; the other backend's graph is deployed here (adds ~10 minutes)"
    return ("self-paced mode: the graphs are deployed here, one after the other (30-45 minutes on EKS); "
            "in a class, set UCX_URL and LIBFABRIC_URL to the instructor's frontends")
