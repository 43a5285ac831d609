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

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workshop_lib.checks import CheckTable
from workshop_lib.record import record
from workshop_lib.sections import eks
from workshop_lib.sections.common import REPO, Context
from workshop_lib.sections.s03_cross_node import rail_memory_rows, use_netns

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.figure import Figure

DEFAULTS = {
    "eks": {"concurrency": [1, 5, 10, 20], "requests": 100, "isl": 512, "osl": 128,
            "sizes": "4K,16K,64K,256K,1M,4M,16M,64M", "iters": 100},
    "local": {"concurrency": [1, 2, 4], "requests": 8, "isl": 64, "osl": 16, "sizes": "4K,64K,1M", "iters": 3},
}
BACKENDS = ("UCX", "LIBFABRIC")
# Seed workshop, 2 x p5.48xlarge, TRT-LLM 1.3.0rc1, ISL 512 / OSL 128, one EFA rail: TTFT ms (UCX over TCP, LIBFABRIC).
SEED_TTFT_MS: dict[str, dict[int, tuple[float, float]]] = {
    "Qwen3-0.6B": {1: (252, 76), 5: (695, 77), 10: (1665, 90), 20: (3333, 104)},
    "Qwen2.5-7B": {1: (146, 76), 5: (179, 80), 10: (278, 126), 20: (1203, 214)},
}
SEED_SOURCE = "seed workshop, 2 x p5.48xlarge, TRT-LLM 1.3.0rc1, ISL 512 / OSL 128, one EFA rail"
# nixlbench LIBFABRIC VRAM->VRAM across 2 x p5.48xlarge (self-published; rails not recorded): block bytes -> GB/s.
PUBLISHED_NIXLBENCH_LF: dict[int, float] = {4096: 0.113, 65536: 1.41, 2**20: 15.09, 4 * 2**20: 30.18,
                                            16 * 2**20: 41.96, 64 * 2**20: 46.95}
EFA_LINE_RATE_GBS = 3200 / 8  # p5.48xlarge aggregate EFA, GB/s


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
    """label -> (frontend URL, model): the lab (local), or the UCX and LIBFABRIC cross-node graphs (eks)."""
    if ctx.local:
        from workshop_lib.lab.serving import Lab

        st = Lab().status()
        if not st.healthy:
            st = Lab().up(progress=True)
        return {"lab (mocker, no KV bytes)": (str(st.frontend_url), str(st.model))}
    from workshop_lib.manifests import render

    out = {}
    for be in BACKENDS:
        url = ctx.get(f"{be}_URL")
        if not url:
            name = eks.dgd_names(render(ctx.cfg.replace(kv_backend=be), "cross-node"))[0]
            url = eks.frontend_url(ctx.cfg, f"{name}-frontend", ctx.state)
        out["UCX (TCP)" if be == "UCX" else "LIBFABRIC"] = (str(url), ctx.cfg.model)
    return out


def serving_sweep(ctx: Context) -> pd.DataFrame:
    """One sweep per deployment; rows: deployment, concurrency, TTFT/ITL percentiles, throughput, errors."""
    import pandas as pd

    from workshop_lib.bench.serve import run_sweep

    k = knobs(ctx)
    frames = []
    for label, (url, model) in deployments(ctx).items():
        tok = model if ctx.local and Path(model).is_dir() else None
        res = run_sweep(url, model, k["concurrency"], k["requests"], isl=k["isl"], osl=k["osl"], progress=True,
                        tokenizer=tok)
        res.to_json(ctx.work_dir / f"serving-{label.split()[0].lower()}.json")
        f = res.to_frame()
        f.insert(0, "deployment", label)
        frames.append(f)
    frame = pd.concat(frames, ignore_index=True)
    ctx.state["serving"] = frame
    record("serving_levels", len(frame))
    record("serving_errors", int(frame["errors"].sum()))
    record("serving_ttft_p50_ms", {f"{r.deployment}@{r.concurrency}": r.ttft_p50_ms for r in frame.itertuples()})
    cols = ["deployment", "concurrency", "requests", "errors", "ttft_p50_ms", "ttft_p90_ms", "itl_p50_ms",
            "output_tokens_per_s", "requests_per_s"]
    return frame[[c for c in cols if c in frame.columns]]


def serving_plot(ctx: Context) -> Figure:
    """TTFT and ITL (p50) against concurrency, one line per deployment."""
    import matplotlib.pyplot as plt

    frame = ctx.state["serving"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for label, g in frame.groupby("deployment", sort=False):
        axes[0].plot(g["concurrency"], g["ttft_p50_ms"], marker="o", label=label)
        axes[1].plot(g["concurrency"], g["itl_p50_ms"], marker="o", label=label)
        axes[2].plot(g["output_tokens_per_s"], g["ttft_p50_ms"], marker="o", label=label)
    axes[0].set(xlabel="concurrency", ylabel="TTFT p50 (ms)", title="Time to first token")
    axes[1].set(xlabel="concurrency", ylabel="ITL p50 (ms)", title="Inter-token latency")
    axes[2].set(xlabel="output tokens/s", ylabel="TTFT p50 (ms)", title="Throughput vs latency")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Serving sweep ({'this machine: mocker workers, TCP' if ctx.local else ctx.cfg.instance_type})")
    fig.tight_layout()
    plt.close(fig)
    return fig


# ------------------------------------------------------------------------------------------------ transfer sweep
def transfer_sweep(ctx: Context) -> pd.DataFrame:
    """Bandwidth by block size for UCX and LIBFABRIC: the NIXL pair in DRAM (local) or nixlbench pods (eks)."""
    import pandas as pd

    frames = [(_pair_frame(ctx, be) if ctx.local else _nixlbench_frame(ctx, be)) for be in BACKENDS]
    frame = pd.concat(frames, ignore_index=True)
    ctx.state["transfer"] = frame
    record("transfer_rows", len(frame))
    record("transfer_backends", sorted(set(frame["backend"])))
    record("transfer_verified", bool(frame["verified"].all()) if "verified" in frame else None)
    return frame


def _pair_frame(ctx: Context, backend: str) -> pd.DataFrame:
    from workshop_lib.lab.nixl_pair import NixlPairSpec, parse_sizes, run_pair

    k = knobs(ctx)
    # UCX is forced onto TCP (same-host UCX would use a kernel memory copy) over loopback: in the pair's network
    # namespaces UCX 1.20 does not find the veth device. LIBFABRIC crosses the two namespaces when root.
    netns = use_netns(ctx) and backend == "LIBFABRIC"
    spec = NixlPairSpec(backend=backend, op="READ", sizes=parse_sizes(k["sizes"]), iters=k["iters"], netns=netns,
                        ucx_tls="tcp" if backend == "UCX" else None)
    res = run_pair(spec, ctx.work_dir / f"transfer-{backend.lower()}")
    f = res.to_frame()
    transport = "tcp (veth)" if netns else "loopback"
    f.insert(0, "label", f"{'UCX (TCP)' if backend == 'UCX' else 'LIBFABRIC (tcp fallback)'}, DRAM, {transport}")
    return f


def _nixlbench_frame(ctx: Context, backend: str) -> pd.DataFrame:
    """Apply the nixlbench pod pair for ``backend``, wait for the initiator to finish, parse its table."""
    from workshop_lib.cluster import pod_log
    from workshop_lib.logs.nixlbench import parse_nixlbench
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
    table = parse_nixlbench(log).table.copy()
    table.insert(0, "label", "UCX (TCP)" if backend == "UCX" else "LIBFABRIC (EFA)")
    table.insert(1, "backend", backend)
    table.insert(2, "mem", "VRAM")
    table["block_size"] = table["block_size"].astype(int)
    return table


def transfer_plot(ctx: Context) -> Figure:
    """Bandwidth against block size (log-log), with the EFA line rate and the published P5 LIBFABRIC points."""
    import matplotlib.pyplot as plt

    frame = ctx.state["transfer"]
    fig, ax = plt.subplots(figsize=(8, 4.2))
    for label, g in frame.groupby("label", sort=False):
        ax.plot(g["block_size"], g["gbps"], marker="o", label=f"this run: {label}")
    xs, ys = zip(*PUBLISHED_NIXLBENCH_LF.items(), strict=True)
    ax.plot(xs, ys, ls="--", marker="s", color="grey", label="published: LIBFABRIC VRAM, 2 x p5.48xlarge")
    ax.axhline(EFA_LINE_RATE_GBS, color="red", ls=":", label=f"EFA line rate p5 ({EFA_LINE_RATE_GBS:.0f} GB/s)")
    ax.set(xscale="log", yscale="log", xlabel="block size (bytes)", ylabel="GB/s", title="KV-transfer bandwidth")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig


# ------------------------------------------------------------------------------------------------ reference
def speedup_table(ctx: Context) -> pd.DataFrame:
    """TTFT UCX (TCP) / LIBFABRIC: the seed workshop's published figures and, on eks, this run's."""
    import pandas as pd

    rows = []
    for model, pts in SEED_TTFT_MS.items():
        for c, (ucx, lf) in pts.items():
            rows.append({"source": f"published ({model})", "concurrency": c, "ttft_ucx_tcp_ms": ucx,
                         "ttft_libfabric_ms": lf, "speedup": round(ucx / lf, 1)})
    serving = ctx.state.get("serving")
    if ctx.eks and serving is not None:
        piv = serving.pivot_table(index="concurrency", columns="deployment", values="ttft_p50_ms")
        for c, r in piv.iterrows():
            ucx, lf = r.get("UCX (TCP)"), r.get("LIBFABRIC")
            rows.append({"source": "this run", "concurrency": int(c), "ttft_ucx_tcp_ms": ucx, "ttft_libfabric_ms": lf,
                         "speedup": round(ucx / lf, 1) if ucx and lf else None})
    frame = pd.DataFrame(rows)
    record("published_speedup_c20_qwen3", float(frame[(frame.source == "published (Qwen3-0.6B)") &
                                                      (frame.concurrency == 20)]["speedup"].iloc[0]))
    return frame


def reference_results(ctx: Context) -> pd.DataFrame:
    """Recorded GPU results from ``benchmarks/`` (labelled: recorded on H100, VRAM) next to this run's DRAM rows."""
    import pandas as pd

    rows = []
    for p in sorted((REPO / "benchmarks").rglob("*.json")):
        rows += _vram_rows(p)
    transfer = ctx.state.get("transfer")
    if transfer is not None:
        for r in transfer.itertuples():
            rows.append({"source": "this run", "memory": getattr(r, "mem", "DRAM"), "label": r.label,
                         "block_size": int(r.block_size), "gbps": float(r.gbps)})
    record("reference_vram_rows", sum(1 for r in rows if r["source"] != "this run"))
    return pd.DataFrame(rows, columns=["source", "memory", "label", "block_size", "gbps"])


def _vram_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a recorded NIXL pair result (``to_json`` shape) whose memory is VRAM; other files give none."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    runs = data if isinstance(data, list) else [data]
    out = []
    for run in runs:
        if not isinstance(run, dict):
            continue
        for r in run.get("rows", []) if isinstance(run.get("rows"), list) else []:
            if isinstance(r, dict) and r.get("mem") == "VRAM" and "gbps" in r:
                out.append({"source": f"recorded on GPU ({path.relative_to(REPO)})", "memory": "VRAM",
                            "label": f"{r.get('backend', '?')} {r.get('op', '')}".strip(),
                            "block_size": int(r.get("block_size", 0)), "gbps": float(r["gbps"])})
    return out


def rails_table(ctx: Context) -> pd.DataFrame:
    """Rails vs EFA devices and the registered memory they cost, per instance type."""
    import pandas as pd

    rows = rail_memory_rows(None, ctx.cfg.gpus_per_worker)
    for r in rows:
        r["max_gbs_if_all_rails"] = round(EFA_LINE_RATE_GBS * r["data_rails"] / 32, 1) if "p5" in r["where"] else None
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
            ok = len(g) > 0 and (bool(g["verified"].all()) if "verified" in g else True)
            t.check_true(f"KV-transfer sweep: {be}", ok, f"{len(g)} sizes", "every size moved" + (
                         " and verified" if "verified" in g else ""),
                         evidence=f"peak {g['gbps'].max():.2f} GB/s" if len(g) else "",
                         fix="see notebook 02/03 for the pair's logs")
        if ctx.local:
            t.info("transport caveat", "DRAM over TCP on this machine",
                   "UCX runs as 'UCX (TCP)', LIBFABRIC on the sockets/tcp provider: compare shapes, not values")
    record("verdict_performance", t.verdict())
    return t


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

    return eks.dgd_names(render(ctx.cfg.replace(kv_backend=backend), "cross-node"))
