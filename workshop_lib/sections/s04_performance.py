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

from pathlib import Path
from typing import TYPE_CHECKING, Any

from workshop_lib.bench import published
from workshop_lib.checks import CheckTable
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
from workshop_lib.sections import eks
from workshop_lib.sections.common import Context, transfer_view
from workshop_lib.sections.s03_cross_node import rail_memory_rows, use_netns
from workshop_lib.sections.s04_vram import record_goal, short_card, vram_table

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.figure import Figure

DEFAULTS = {
    "eks": {"concurrency": [1, 5, 10, 20], "requests": 100, "isl": 512, "osl": 128,
            "sizes": "4K,16K,64K,256K,1M,4M,16M,64M", "iters": 100},
    "local": {"concurrency": [1, 2, 4], "requests": 8, "isl": 64, "osl": 16, "sizes": "4K,64K,1M", "iters": 20},
}
BACKENDS = ("UCX", "LIBFABRIC")
SEED_MODELS = {"Qwen/Qwen3-0.6B": "Qwen3-0.6B", "Qwen/Qwen2.5-7B-Instruct": "Qwen2.5-7B", "Qwen/Qwen2.5-7B": "Qwen2.5-7B"}


def knobs(ctx: Context) -> dict[str, Any]:
    """The sweep settings: notebook parameters where given, else the target's defaults (small on local)."""
    d = DEFAULTS[ctx.cfg.target]
    conc = ctx.get("CONCURRENCY") or d["concurrency"]
    if isinstance(conc, str):
        conc = [int(c) for c in conc.replace(" ", "").split(",") if c]
    return {
        "concurrency": [int(c) for c in conc],
        "requests": int(ctx.get("REQUESTS") or d["requests"]),
        "isl": int(ctx.get("ISL") or d["isl"]),
        "osl": int(ctx.get("OSL") or d["osl"]),
        "sizes": ctx.get("NIXL_SIZES") or d["sizes"],
        "iters": int(ctx.get("NIXL_ITERS") or d["iters"]),
    }


# ------------------------------------------------------------------------------------------------ serving sweep
def deployments(ctx: Context) -> dict[str, tuple[str, str]]:
    """local: label -> (frontend URL, model) of the lab, started when it is not healthy.

    On eks the graphs are deployed and swept one at a time by :func:`serving_sweep` (see :func:`graph_plan`).
    """
    from workshop_lib.lab.serving import Lab

    st = Lab().status()
    if not st.healthy:
        st = Lab().up(progress=True)
    return {"lab (mocker, no KV bytes)": (str(st.frontend_url), str(st.model))}


def graph_profile(backend: str) -> str:
    """The render profile of ``backend``'s cross-node graph.

    >>> graph_profile("UCX")
    'cross-node-ucx'
    """
    return f"cross-node-{backend.lower()}"


def graph_plan(backends: list[str], graphs: dict[str, str], states: dict[str, str],
               coexist: bool) -> list[tuple[str, str]]:
    """The steps that sweep ``backends`` in order, one graph deployed at a time unless both fit (``coexist``).

    ``graphs`` maps a backend to its cross-node graph (a backend without one, e.g. a given URL, is only swept);
    ``states`` maps a graph to ``"Ready"``, ``"not Ready"`` or ``"absent"``. A Ready graph is swept where it stands;
    any other is applied first, after deleting the other graphs still present when the two cannot share the nodes.

    >>> g = {"UCX": "vllm-xnode-ucx", "LIBFABRIC": "vllm-xnode-libfabric"}
    >>> graph_plan(["UCX", "LIBFABRIC"], g, {"vllm-xnode-libfabric": "Ready"}, coexist=False)
    ... # doctest: +NORMALIZE_WHITESPACE
    [('delete', 'LIBFABRIC'), ('apply', 'UCX'), ('sweep', 'UCX'), ('delete', 'UCX'), ('apply', 'LIBFABRIC'),
     ('sweep', 'LIBFABRIC')]
    >>> graph_plan(["UCX", "LIBFABRIC"], g, {"vllm-xnode-libfabric": "Ready"}, coexist=True)
    [('apply', 'UCX'), ('sweep', 'UCX'), ('sweep', 'LIBFABRIC')]
    """
    live = {be for be, g in graphs.items() if states.get(g, "absent") != "absent"}
    ready = {be for be, g in graphs.items() if states.get(g) == "Ready"}
    steps: list[tuple[str, str]] = []
    for be in backends:
        if be in graphs and be not in ready:
            if not coexist:
                for other in [o for o in backends if o in live and o != be]:
                    steps.append(("delete", other))
                    live.discard(other)
                    ready.discard(other)
            steps.append(("apply", be))
            live.add(be)
            ready.add(be)
        steps.append(("sweep", be))
    return steps


def _eks_graphs(ctx: Context) -> tuple[dict[str, str], dict[str, str], bool, int]:
    """backend -> graph name (backends without a ``<BACKEND>_URL``), graph -> state, whether the graphs fit on the
    nodes together, and the EFA devices per node they would need together."""
    from workshop_lib.manifests import render

    files = {be: render(ctx.cfg, graph_profile(be)) for be in BACKENDS if not ctx.get(f"{be}_URL")}
    graphs = {be: eks.dgd_names(f)[0] for be, f in files.items()}
    need = sum(eks.efa_per_node(f) for f in files.values())
    states = {g: eks.graph_state(ctx.cfg, g) for g in graphs.values()}
    return graphs, states, need <= ctx.cfg.instance.efa, need


def deploy_plan(ctx: Context) -> pd.DataFrame | None:
    """eks: what the serving sweep will do, step by step, with the reason (nothing is changed here); local: None."""
    import pandas as pd

    if ctx.local:
        return None
    graphs, states, coexist, need = _eks_graphs(ctx)
    fit = (f"both graphs need {need} EFA devices per node, a {ctx.cfg.instance_type} has {ctx.cfg.instance.efa}")
    why = {"delete": "frees the nodes' EFA devices and GPUs: " + fit, "apply": "render, validate, apply, wait for Ready",
           "sweep": "port-forward to its frontend, then the concurrency sweep"}
    rows = []
    for i, (action, be) in enumerate(graph_plan(list(BACKENDS), graphs, states, coexist), 1):
        graph = graphs.get(be, f"{be}_URL")
        rows.append({"step": i, "action": action, "backend": EKS_LABELS[be], "graph": graph,
                     "state now": states.get(graph, "given URL"), "why": why[action]})
    record("graphs_plan", [f"{r['action']} {r['graph']}" for r in rows])
    return pd.DataFrame(rows)


def serving_sweep(ctx: Context) -> pd.DataFrame:
    """One sweep per deployment; rows: deployment, concurrency, TTFT/ITL percentiles, throughput, errors.

    eks: each backend's cross-node graph in turn (:func:`graph_plan`): deployed when not Ready, port-forwarded, swept,
    and deleted before the next one when the two cannot share the nodes.
    """
    import pandas as pd

    k = knobs(ctx)
    if ctx.local:
        targets = deployments(ctx)
        record("serving_urls", {label: url for label, (url, _) in targets.items()})
        frames = [_sweep_one(ctx, k, label, url, model) for label, (url, model) in targets.items()]
    else:
        frames = _sweep_eks(ctx, k)
    frame = pd.concat(frames, ignore_index=True)
    ctx.state["serving"] = frame
    record("serving_levels", len(frame))
    record("serving_errors", int(frame["errors"].sum()))
    record("serving_ttft_p50_ms", {f"{r.deployment}@{r.concurrency}": r.ttft_p50_ms for r in frame.itertuples()})
    return serving_view(frame)


def _sweep_one(ctx: Context, k: dict[str, Any], label: str, url: str, model: str) -> pd.DataFrame:
    from workshop_lib.bench.serve import run_sweep

    tok = model if ctx.local and Path(model).is_dir() else None
    res = run_sweep(url, model, k["concurrency"], k["requests"], isl=k["isl"], osl=k["osl"], progress=True,
                    tokenizer=tok)
    res.to_json(ctx.work_dir / f"serving-{label.split()[0].lower()}.json")
    f = res.to_frame()
    f.insert(0, "deployment", label)
    return f


def _sweep_eks(ctx: Context, k: dict[str, Any]) -> list[pd.DataFrame]:
    """Run :func:`graph_plan` on the cluster; records graphs_applied, graphs_deleted, graphs_left (in order)."""
    from workshop_lib.sections.s02_single_node import deploy_eks

    graphs, states, coexist, _ = _eks_graphs(ctx)
    steps = graph_plan(list(BACKENDS), graphs, states, coexist)
    applied: list[str] = []
    deleted: list[str] = []
    urls: dict[str, str] = {}
    opened: dict[str, str] = {}
    frames = []
    for i, (action, be) in enumerate(steps, 1):
        label, graph = EKS_LABELS[be], graphs.get(be)
        print(f"[{i}/{len(steps)}] {action} {graph or be + '_URL'} ({label})", flush=True)
        if action == "delete":
            eks.close_forward(ctx.state, f"{graph}-frontend")
            eks.delete_graph(ctx.cfg, graph)
            deleted.append(graph)
        elif action == "apply":
            deploy_eks(ctx, graph_profile(be), record_as=None)
            applied.append(graph)
        else:
            url = ctx.get(f"{be}_URL") or eks.frontend_url(ctx.cfg, f"{graph}-frontend", ctx.state)
            urls[label] = str(url)
            opened.update(eks.forwards(ctx.state))
            frames.append(_sweep_one(ctx, k, label, str(url), ctx.cfg.model))
        record("graphs_applied", applied)
        record("graphs_deleted", deleted)
    record("serving_urls", urls)
    record("port_forwards", opened)  # service -> local URL of every forward opened; empty when *_URL were given
    record("graphs_left", {g: eks.graph_state(ctx.cfg, g) for g in graphs.values()})
    return frames


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
    if ctx.local or model is None:
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
    """Bandwidth by block size for UCX and LIBFABRIC: the NIXL pair in DRAM (local) or nixlbench pods (eks).

    The full frame (``bench.nixl.COLUMNS``) stays in ``ctx.state["transfer"]``; the returned table keeps the columns
    a reader needs.
    """
    import pandas as pd

    frame = _pair_frame(ctx) if ctx.local else pd.concat([_nixlbench_frame(ctx, be) for be in BACKENDS],
                                                         ignore_index=True)
    ctx.state["transfer"] = frame
    record("transfer_rows", len(frame))
    record("transfer_backends", sorted(set(frame["backend"])))
    record("transfer_verified", bool(frame["verified"].all()) if len(frame) else None)
    return transfer_view(frame)


def _pair_frame(ctx: Context) -> pd.DataFrame:
    """Both backends' READ sweep across the two network namespaces (two "nodes" joined by a veth; root), or over
    loopback with UCX forced onto TCP when not root. Between namespaces UCX uses TCP by itself: "UCX (TCP)"."""
    from workshop_lib.bench.nixl import sweep_nixl

    k = knobs(ctx)
    netns = use_netns(ctx)
    ctx.state["transfer_netns"] = netns
    record("transfer_netns", netns)
    return sweep_nixl(BACKENDS, "READ", k["sizes"], mem="DRAM", netns=netns, iters=k["iters"],
                      ucx_tls=None if netns else "tcp", log_dir=ctx.work_dir / "transfer")


def _nixlbench_frame(ctx: Context, backend: str) -> pd.DataFrame:
    """Apply the nixlbench pod pair for ``backend``, wait for the initiator to finish, parse its table."""
    from workshop_lib.bench.nixl import nixlbench_frame
    from workshop_lib.cluster import pod_log
    from workshop_lib.manifests.bench import LABEL_NIXLBENCH, nixlbench_pods

    cfg = ctx.cfg.replace(kv_backend=backend)
    pods = nixlbench_pods(cfg, "VRAM")
    cl = eks.cluster()
    for p in pods:
        cl.apply(p, force_conflicts=True)
    run = pods[0]["metadata"]["labels"][LABEL_NIXLBENCH]
    phase = eks.wait_pod_done(cfg, pods[0]["metadata"]["name"], cfg.deploy_timeout_s)
    record(f"nixlbench_{backend.lower()}_phase", phase)
    lines = pod_log(cl, cfg.namespace, pods[0]["metadata"]["name"])
    log = ctx.work_dir / f"{run}.log"
    log.write_text("\n".join(lines) + "\n")
    frame = nixlbench_frame(log)
    frame["backend"] = backend  # the pod pair launched for this backend (nixlbench's banner may omit it)
    frame["transport"] = "EFA RDMA" if backend == "LIBFABRIC" else "TCP"
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
    if ctx.eks and serving is not None and set(EKS_LABELS.values()) <= set(serving["deployment"]):
        mine = plot_speedups(_runs(ctx), EKS_LABELS["UCX"], EKS_LABELS["LIBFABRIC"])
        mine = mine.rename(columns={f"ttft_p50_ms [{v}]": v for v in EKS_LABELS.values()}).assign(source="this run")
        frame = pd.concat([frame, mine], ignore_index=True)
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
        if ctx.local:
            where = "two network namespaces (veth)" if ctx.state.get("transfer_netns") else "loopback"
            t.info("transport caveat", f"DRAM over TCP, {where}",
                   "UCX runs as 'UCX (TCP)', LIBFABRIC on the sockets/tcp provider: compare shapes, not values")
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
    from workshop_lib.plots import human_bytes

    return human_bytes(int(g.loc[g["gbps"].idxmax(), "block_size"]))


def teardown(ctx: Context, confirm: bool) -> list[str]:
    """Close port-forwards; local: stop the lab when ``confirm`` (it was started by notebook 01 or 02)."""
    out = eks.close_forwards(ctx.state) if ctx.eks else []
    if ctx.eks:
        return out + (["delete the graphs with notebook 03's teardown (TEARDOWN=True)"] if not confirm else
                      eks.teardown_namespace(ctx.cfg, [n for be in BACKENDS for n in _graphs(ctx, be)]))
    if not confirm:
        return ["TEARDOWN is False: the lab keeps running (stop it with `workshop lab down` or TEARDOWN=True)."]
    from workshop_lib.lab.serving import Lab

    stopped = Lab().down()
    return [f"stopped {', '.join(stopped)}" if stopped else "the lab was not running"]


def _graphs(ctx: Context, backend: str) -> list[str]:
    from workshop_lib.manifests import render

    return eks.dgd_names(render(ctx.cfg, graph_profile(backend)))
