"""Section 04, performance: serving sweeps, KV-transfer sweeps, plots, the speedup table and the published figures.

eks: the serving sweep against the UCX and the LIBFABRIC cross-node deployments (concurrency 1, 5, 10, 20, ISL 512 /
OSL 128), nixlbench between the two nodes for both backends. local: a small sweep against the lab's frontend, and
the NIXL pair for both backends in DRAM over TCP. Published figures are shown as labelled reference only.

Example:
    >>> from workshop_lib.sections.common import start
    >>> knobs(start({"TARGET": "local"}, "04"))["concurrency"]
    [1, 2, 4]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from workshop_lib.bench import published
from workshop_lib.checks import CheckTable
from workshop_lib.config import KV_BACKENDS
from workshop_lib.plots import (
    EKS_LABELS,
    FigureInfo,
    efa_line_rate_gbytes,
    plot_bandwidth,
    plot_serving,
    plot_throughput_latency,
)
from workshop_lib.plots import speedup_table as plot_speedups
from workshop_lib.record import record
from workshop_lib.sections.common import Context, transfer_view, use_netns
from workshop_lib.sections.s03_cross_node import rail_memory_rows
from workshop_lib.sections.s04_vram import record_goal, short_card, vram_table
from workshop_lib.targets.base import GRAPH_LABELS

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.figure import Figure

BACKENDS = KV_BACKENDS  # both NIXL backends, UCX first (the baseline)
SEED_MODELS = {"Qwen/Qwen3-0.6B": "Qwen3-0.6B", "Qwen/Qwen2.5-7B-Instruct": "Qwen2.5-7B", "Qwen/Qwen2.5-7B": "Qwen2.5-7B"}


def knobs(ctx: Context) -> dict[str, Any]:
    """The sweep settings: notebook parameters where given, else the target's defaults (small on local)."""
    d = ctx.target.sweep_defaults
    cfg, given = ctx.cfg, ctx.params  # typed config fields; ISL/OSL fall back to the target's only when not given
    return {
        "concurrency": [int(c) for c in (cfg.concurrency or d["concurrency"])],
        "requests": int(cfg.requests or d["requests"]),
        "isl": int(cfg.isl if given.get("ISL") is not None else d["isl"]),
        "osl": int(cfg.osl if given.get("OSL") is not None else d["osl"]),
        "sizes": cfg.nixl_sizes or d["sizes"],
        "iters": int(cfg.nixl_iters or d["iters"]),
    }


# ------------------------------------------------------------------------------------------------ serving sweep
def graph_profile(backend: str) -> str:
    """The render profile of ``backend``'s cross-node graph.

    >>> graph_profile("UCX")
    'cross-node-ucx'
    """
    return f"cross-node-{backend.lower()}"


def profiles() -> dict[str, str]:
    """backend -> the profile of its cross-node graph, in sweep order."""
    return {be: graph_profile(be) for be in BACKENDS}


def deploy_plan(ctx: Context) -> pd.DataFrame | None:
    """What the serving sweep will do on the target, step by step, with the reason (nothing is changed here); None
    when there is nothing to plan (the local lab is one deployment)."""
    return ctx.target.serving_plan(profiles())


def serving_sweep(ctx: Context) -> pd.DataFrame:
    """One sweep per deployment the target gives (eks: each backend's cross-node graph in turn, deployed, swept and
    deleted when the two cannot share the nodes; local: the lab); rows: deployment, concurrency, TTFT/ITL
    percentiles, throughput, errors."""
    import pandas as pd

    k = knobs(ctx)
    frames, urls = [], {}
    for run in ctx.target.serving_runs(profiles()):
        urls[run.label] = run.url
        frames.append(_sweep_one(ctx, k, run))
    record("serving_urls", urls)
    frame = pd.concat(frames, ignore_index=True)
    ctx.state["serving"] = frame
    record("serving_levels", len(frame))
    record("serving_errors", int(frame["errors"].sum()))
    record("serving_ttft_p50_ms", {f"{r.deployment}@{r.concurrency}": r.ttft_p50_ms for r in frame.itertuples()})
    return serving_view(frame)


def _sweep_one(ctx: Context, k: dict[str, Any], run: Any) -> pd.DataFrame:
    from workshop_lib.bench.serve import run_sweep

    res = run_sweep(run.url, run.model, k["concurrency"], k["requests"], isl=k["isl"], osl=k["osl"], progress=True,
                    tokenizer=run.tokenizer)
    res.to_json(ctx.work_dir / f"serving-{run.label.split()[0].lower()}.json")
    f = res.to_frame()
    f.insert(0, "deployment", run.label)
    return f


def serving_view(frame: pd.DataFrame) -> pd.DataFrame:
    """The sweep as read in the notebook: latencies in ms to 0.1, rates to 0.1; the deployment column only when
    there is more than one."""
    cols = ["deployment", "concurrency", "requests", "errors", "ttft_p50_ms", "ttft_p90_ms", "itl_p50_ms",
            "output_tokens_per_s", "requests_per_s"]
    view = frame[[c for c in cols if c in frame.columns]]
    if view["deployment"].nunique() == 1:
        view = view.drop(columns="deployment")
    return view.round(1).reset_index(drop=True)


def figure_info(ctx: Context) -> FigureInfo:
    """What every figure's title states: hardware, versions, run date."""
    return FigureInfo.for_target(ctx.cfg.target, ctx.cfg.instance_type)


def _runs(ctx: Context) -> dict[str, pd.DataFrame]:
    frame = ctx.state["serving"]
    return {str(label): g for label, g in frame.groupby("deployment", sort=False)}


def seed_published(ctx: Context) -> pd.DataFrame | None:
    """eks: the seed workshop's TTFT/ITL for this model (dashed reference lines); local: None (other hardware)."""
    model = SEED_MODELS.get(ctx.cfg.model)
    if not ctx.target.published_comparable or model is None:
        return None
    seed = published.seed_ttft()
    return seed[seed.model == model]


def serving_plot(ctx: Context) -> Figure:
    """TTFT and ITL (p50) against concurrency, one line per deployment (published seed lines on eks)."""
    return plot_serving(_runs(ctx), figure_info(ctx), published=seed_published(ctx),
                        path=ctx.work_dir / "serving.png")


def throughput_plot(ctx: Context) -> Figure:
    """Output tokens/s against TTFT p50, each point labelled with its concurrency."""
    return plot_throughput_latency(_runs(ctx), figure_info(ctx), path=ctx.work_dir / "throughput-latency.png")


# ------------------------------------------------------------------------------------------------ transfer sweep
def transfer_sweep(ctx: Context) -> pd.DataFrame:
    """Bandwidth by block size for UCX and LIBFABRIC on the target (the NIXL pair in DRAM locally, nixlbench pods
    between the two nodes on eks). Backend and transport are what each run's log says (:func:`label_transport`).

    The full frame (``bench.nixl.COLUMNS``) stays in ``ctx.state["transfer"]``; the returned table keeps the columns
    a reader needs.
    """
    k = knobs(ctx)
    netns = use_netns(ctx)
    ctx.state["transfer_netns"] = netns
    record("transfer_netns", netns)
    frame = label_transport(ctx.target.transfer_sweep(BACKENDS, k["sizes"], k["iters"], ctx.work_dir))
    ctx.state["transfer"] = frame
    record("transfer_rows", len(frame))
    record("transfer_backends", sorted(set(frame["backend"].dropna())))
    record("transfer_transports", sorted(set(frame["transport"].dropna())))
    record("transfer_verified", bool(frame["verified"].all()) if len(frame) else None)
    return transfer_view(frame)


NOT_CONFIRMED = "transport not confirmed"


def label_transport(frame: pd.DataFrame) -> pd.DataFrame:
    """The transport of each row as its run's log states it: ``EFA`` only when the log names efa (a provider line),
    the parsed transport (e.g. ``TCP``) when the parser found one, else ``transport not confirmed``. The backend stays
    as parsed (never the pod pair's name).

    >>> import pandas as pd
    >>> label_transport(pd.DataFrame({"backend": ["LIBFABRIC", "LIBFABRIC", "UCX"],
    ...                               "transport": [None, "efa", "TCP"]}))["transport"].tolist()
    ['transport not confirmed', 'EFA', 'TCP']
    """
    frame = frame.copy()
    if "transport" not in frame.columns:
        frame["transport"] = None

    def one(value: Any) -> str:
        text = "" if value is None or value != value else str(value).strip()  # None/NaN -> ""
        if not text:
            return NOT_CONFIRMED
        return "EFA" if "efa" in text.lower() else text

    frame["transport"] = frame["transport"].map(one)
    return frame


def transfer_plot(ctx: Context) -> Figure:
    """Bandwidth against block size (log-log), with the EFA line rate and the published P5 LIBFABRIC points."""
    return plot_bandwidth(ctx.state["transfer"], figure_info(ctx), ctx.cfg.instance_type,
                          path=ctx.work_dir / "bandwidth.png")


# ------------------------------------------------------------------------------------------------ reference
def speedup_table(ctx: Context) -> pd.DataFrame:
    """TTFT UCX (TCP) / LIBFABRIC (EFA): the seed workshop's published figures and, on eks, this run's.

    Columns: source, concurrency, TTFT of each backend (ms), ttft_speedup (> 1: LIBFABRIC faster).
    """
    import pandas as pd

    pub = published.seed_speedup()
    frame = pub.assign(source="published (" + pub.model + ")")
    serving = ctx.state.get("serving")
    if serving is not None and set(GRAPH_LABELS.values()) <= set(serving["deployment"]):
        # this run's two graphs, in the published table's columns (named by backend, as the seed workshop did)
        mine = plot_speedups(_runs(ctx), GRAPH_LABELS["UCX"], GRAPH_LABELS["LIBFABRIC"])
        mine = mine.rename(columns={f"ttft_p50_ms [{GRAPH_LABELS[be]}]": EKS_LABELS[be] for be in BACKENDS})
        frame = pd.concat([frame, mine.assign(source="this run")], ignore_index=True)
    frame = frame[["source", "concurrency", EKS_LABELS["UCX"], EKS_LABELS["LIBFABRIC"], "ttft_speedup"]]
    frame = frame.rename(columns={v: f"TTFT {v} (ms)" for v in EKS_LABELS.values()})
    q = frame[(frame.source == "published (Qwen3-0.6B)") & (frame.concurrency == 20)]
    record("published_speedup_c20_qwen3", float(q["ttft_speedup"].iloc[0]))
    return frame.reset_index(drop=True)


def reference_results(ctx: Context) -> pd.DataFrame:
    """GPU-memory results (this kernel's GPUs when present, the recorded 2x H100 run) beside this run's DRAM rows."""
    return vram_table(ctx)


def published_figures() -> pd.DataFrame:
    """The other published numbers (Dynamo docs, issue 4185): figure, value with its unit, short source."""
    f = published.other_figures()
    value = [f"{v:g} {u}" if not u.startswith("ms (") else f"{u.split(' (')[1].rstrip(')')} {v:g} ms"
             for v, u in zip(f["value"], f["unit"], strict=True)]
    return f.assign(value=value, source=f["source"].str.split(" [(]FACTS", regex=True).str[0])[
        ["name", "value", "source"]].rename(columns={"name": "figure"})


def rails_table(ctx: Context) -> pd.DataFrame:
    """Per instance type: rails (one per EFA device), registered memory they cost, and the EFA line rate they reach.

    Registered memory: (data rails + 1 control rail) x 4096 buffers x 8 KiB per agent (NIXL 0.9.0 source).
    """
    import pandas as pd

    rows = []
    for r in rail_memory_rows(None, ctx.cfg.gpus_per_worker):
        inst = r["where"].split(" ")[0]
        rate = efa_line_rate_gbytes(inst)
        rows.append({"instance": inst, "EFA devices = data rails": r["data_rails"],
                     "registered MiB per agent": r["registered_mib"], "agents per node": r["agents"],
                     "registered GiB per node": r["total_gib"], "EFA line rate, all rails (GB/s)": rate,
                     "one rail (GB/s)": round(rate / r["data_rails"], 1)})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------------ verification
def verify(ctx: Context) -> CheckTable:
    """Every sweep level answered without errors, both backends moved (and verified) bytes, labels honest."""
    t = CheckTable(f"Section 04 verification ({ctx.cfg.target})")
    serving = ctx.state.get("serving")
    if serving is not None:
        k = knobs(ctx)
        for label, g in serving.groupby("deployment", sort=False):
            errs = int(g["errors"].sum())
            t.check_true(f"serving sweep: {label}", errs == 0 and len(g) == len(k["concurrency"]),
                         f"{len(g)} levels, {errs} errors", f"{len(k['concurrency'])} levels, 0 errors",
                         evidence=f"TTFT p50 {g['ttft_p50_ms'].round(1).tolist()} ms at c={g['concurrency'].tolist()}",
                         fix="read the frontend log; lower CONCURRENCY or REQUESTS")
    transfer = ctx.state.get("transfer")
    if transfer is not None:
        for be in BACKENDS:
            g = transfer[transfer["backend"] == be]
            lab = g[g["source"] == "lab"]  # nixlbench checks consistency only when asked; the lab pair always does
            ok = len(g) > 0 and bool(lab["verified"].all())
            t.check_true(f"KV-transfer sweep: {be}", ok, f"{len(g)} sizes",
                         "every size moved" + (" and verified" if len(lab) else ""),
                         evidence=f"peak {g['gbps'].max():.3f} GB/s at {_peak_size(g)}" if len(g) else "",
                         fix="read the agents' logs under the work directory (notebooks 02 and 03 explain them)")
        for be in BACKENDS:
            seen = sorted(set(transfer.loc[transfer["backend"] == be, "transport"].dropna()))
            t.info(f"{be}: transport (from the logs)", ", ".join(seen) or NOT_CONFIRMED,
                   "EFA only where a log names the efa provider; DRAM over TCP on the local lab: compare shapes, "
                   "not values")
    vram = ctx.state.get("vram")
    if vram is not None:
        t.check_true("KV-transfer on this machine's GPUs (VRAM)", bool(len(vram)) and bool(vram["verified"].all()),
                     f"{int(vram['verified'].sum())}/{len(vram)} sizes verified", "all sizes",
                     evidence=f"peak {vram['gbps'].max():.1f} GB/s" if len(vram) else "",
                     fix="read the agents' logs under transfer-vram/ in the work directory")
    rec = ctx.state.get("vram_recorded")
    if rec is not None:
        t.info("GPU reference (not this run)", f"recorded on {short_card(rec[1])} (VRAM)",
               evidence=record_goal(rec) or "")
    record("verdict_performance", t.verdict())
    return t


def _peak_size(g: pd.DataFrame) -> str:
    from workshop_lib.parsing import format_size

    return format_size(int(g.loc[g["gbps"].idxmax(), "block_size"]))


def teardown(ctx: Context, confirm: bool) -> list[str]:
    """Close port-forwards; when ``confirm`` remove the serving graphs (eks: both cross-node graphs; local: the lab,
    started by notebook 01 or 02)."""
    from workshop_lib.manifests import render
    from workshop_lib.targets import dgd_names

    out = ctx.target.close()
    if not confirm:
        return out + ["TEARDOWN is False: the deployments keep running (remove them with TEARDOWN=True; locally "
                      "`workshop lab down`)."]
    return out + ctx.target.teardown([n for p in profiles().values() for n in dgd_names(render(ctx.cfg, p))])
