"""Section 03, cross-node disaggregation over EFA: deploy on two nodes, read both sides' logs, explain the memory.

eks: the cross-node DGD (128Gi workers, all EFA devices, privileged, LIBFABRIC), both workers' logs diagnosed side by
side (backend, provider, EFA devices, rails, handshakes), OOMKilled detected and explained. local: a NIXL LIBFABRIC
pair across two network namespaces (loopback when not root), diagnosed as the TCP fallback it is, and the rail
memory arithmetic from the rails the log reports.

Example:
    >>> rail_memory_row("p5.48xlarge", data_rails=32)["registered_mib"]
    1056.0
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from workshop_lib.checks import CheckTable
from workshop_lib.config import INSTANCE_TYPES, LIBFABRIC_MIN_MEMORY
from workshop_lib.parsing import KiB, MiB
from workshop_lib.record import record
from workshop_lib.sections.common import Context, use_netns
from workshop_lib.sections.s02_single_node import first_line, pair_spec, validated

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

# NIXL 0.9.0 LIBFABRIC rail manager: one control rail, and a control pool of 4096 buffers x 8 KiB per rail.
CONTROL_RAILS = 1
CONTROL_POOL_BUFFERS = 4096
CONTROL_BUFFER_BYTES = 8 * KiB
EXPECTED_HANDSHAKES = 8  # per side, in the seed workshop's cross-node run
TCP_FALLBACK = "tcp-fallback"
BACKEND = "LIBFABRIC"  # the cross-node graph's backend (its profile renders LIBFABRIC over EFA)


# ------------------------------------------------------------------------------------------------ memory (pure)
def registered_bytes(data_rails: int, control_rails: int = CONTROL_RAILS) -> int:
    """Host memory NIXL registers for control pools: (data + control rails) x 4096 x 8 KiB.

    >>> registered_bytes(32) // MiB
    1056
    >>> registered_bytes(1) // MiB
    64
    """
    if data_rails < 0 or control_rails < 0:
        raise ValueError("rail counts cannot be negative")
    return (data_rails + control_rails) * CONTROL_POOL_BUFFERS * CONTROL_BUFFER_BYTES


def rail_memory_row(where: str, data_rails: int, agents: int = 1, source: str = "") -> dict[str, Any]:
    """One row of the memory lesson: rails, registered MiB per agent and for ``agents`` agents."""
    per_agent = registered_bytes(data_rails)
    return {
        "where": where,
        "data_rails": data_rails,
        "control_rails": CONTROL_RAILS,
        "registered_mib": round(per_agent / MiB, 1),
        "agents": agents,
        "total_gib": round(per_agent * agents / 2**30, 2),
        "source": source,
    }


def rail_memory_rows(parsed_rails: int | None, gpus_per_worker: int = 1) -> list[dict[str, Any]]:
    """This run's rails (from its log) next to every known instance type's (one rail per EFA device)."""
    rows = []
    if parsed_rails is not None:
        rows.append(rail_memory_row("this run (from the log)", parsed_rails, 1, "rails parsed from the NIXL log"))
    for name, inst in INSTANCE_TYPES.items():
        rows.append(rail_memory_row(f"{name} ({inst.efa} EFA)", inst.efa, gpus_per_worker,
                                    "one data rail per EFA device (NIXL 0.9.0 source)"))
    return rows


# ------------------------------------------------------------------------------------------------ deploy
def deploy(ctx: Context) -> pd.DataFrame:
    """Render the cross-node graph, validate it and run its KV path between two "nodes" on the target (eks: the graph
    applied and Ready on two nodes; local: the NIXL pair with the graph's backend across two network namespaces, or
    loopback when not root). Shows what the target ran (the applied objects, or bandwidth/latency/verified per size)."""
    files = validated(ctx, "cross-node")
    sides = ctx.target.cross_node(files, ctx.work_dir, pair_spec(ctx, BACKEND, netns=use_netns(ctx)))
    ctx.state.update(side_files=sides.logs, pair=sides.pair, netns=sides.netns, dgds=ctx.target.graphs,
                     warmup=sides.warmup, graph=sides.graph)
    if sides.graph is not None:  # local: where the graph's real workers ran, and the KV bytes on the veths
        g = sides.graph
        record("cross_node_graph_mode", g["mode"])
        record("cross_node_graph_why", g.get("why"))
        for key in ("nixl_bytes", "nixl_failed", "prefill_tx_bytes", "decode_rx_bytes", "crossed"):
            if key in g:
                record(f"cross_node_{key}", g[key])
    if sides.warmup is not None:
        record("warmup_requests", len(sides.warmup))
        record("warmup_ok", sum(1 for w in sides.warmup if w["ok"]))
    if ctx.target.graphs:
        record("dgds_ready", ctx.target.graphs)
    if sides.pair is not None:
        frame = sides.pair.to_frame()
        record("libfabric_pair_rows", len(frame))
        record("libfabric_pair_netns", sides.netns)
        record("libfabric_pair_verified", bool(frame["verified"].all()) if len(frame) else False)
    return sides.table


# ------------------------------------------------------------------------------------------------ diagnosis
def side_logs(ctx: Context) -> dict[str, Path]:
    """The two sides' log files (prefill/decode pods on eks, initiator/target agents of the local pair)."""
    if "side_files" not in ctx.state:
        deploy(ctx)
    return ctx.state["side_files"]


def diagnose(ctx: Context) -> pd.DataFrame:
    """Both sides diagnosed separately and compared: one column per side, one row per finding, plus cross-checks."""
    import pandas as pd

    from workshop_lib.logs.diagnose import diagnose_files

    logs = side_logs(ctx)
    multi = diagnose_files(list(logs.values()))
    ctx.state["multi"] = multi
    by_role = {role: multi.per_file[str(p)] for role, p in logs.items()}
    ctx.state["sides"] = by_role
    fields = ["nixl_backend", "libfabric_provider", "efa_devices", "data_rails", "handshakes", "verdict"]
    frame = pd.DataFrame({role: [getattr(d, f) for f in fields] for role, d in by_role.items()}, index=fields)
    for role, d in by_role.items():
        record(f"{role}_handshakes", d.handshakes)
        record(f"{role}_provider", d.libfabric_provider)
        record(f"{role}_backend", d.nixl_backend)
    return frame


def cross_checks(ctx: Context) -> CheckTable:
    """The diagnosis's side-against-side checks (same backend, same provider, EFA handshakes on each side...), as a
    table recorded under ``checks_cross_side``. Without EFA (local) a row about EFA that does not pass is the expected
    lesson outcome (EXPECTED), not a failure of the kit."""
    multi = ctx.state.get("multi")
    if multi is None:
        diagnose(ctx)
        multi = ctx.state["multi"]
    t = CheckTable(f"Side against side ({ctx.cfg.target})")
    for r in multi.check_rows:
        status, check = str(r.get("status", "INFO")).upper(), str(r.get("check", ""))
        if not ctx.target.efa and "EFA" in check and status in ("FAIL", "WARN"):
            t.expected_here(check, status, "PASS on EFA hardware", evidence=r.get("detail", ""),
                            why="no EFA device on this machine, so no EFA handshake can happen")
        else:
            t.add(check, status, status, "PASS", r.get("detail", ""), "see the side-by-side table and troubleshooting")
    from workshop_lib.sections.common import record_checks

    return record_checks("cross_side", t)


def verdict(ctx: Context) -> str:
    """The combined verdict with its evidence line, e.g. ``tcp-fallback: ... Discovered 1 socket devices ...``."""
    multi = ctx.state.get("multi")
    if multi is None:
        diagnose(ctx)
        multi = ctx.state["multi"]
    comb = multi.combined
    signature = fallback_signature(ctx)
    record("fallback_signature", signature)
    result = comb.verdict
    ctx.state["verdict"] = result
    record("verdict_kv_transfer", result)
    if result == TCP_FALLBACK and not ctx.target.efa:
        note = ("expected here (no EFA on this machine); on a P5 deployment this line means the KV cache is "
                "crawling over TCP: fix the pod's EFA devices before anything else")
    elif result == TCP_FALLBACK:
        note = "FIX THIS: the workers have no EFA device; see the troubleshooting table"
    elif result == "efa-rdma":
        note = "KV cache moves over EFA RDMA"
    else:
        note = "see the side-by-side table and troubleshooting"
    return f"{result}: {note}\nevidence: {comb.evidence or signature or '(no line)'}"


def fallback_signature(ctx: Context) -> str | None:
    """The first ``Discovered N socket devices (TCP fallback)`` line of either side's log (None on a real EFA run)."""
    for p in side_logs(ctx).values():
        line = first_line(p, "socket devices (TCP fallback)")
        if line:
            return f"{p.name}: {line}"
    return None


# ------------------------------------------------------------------------------------------------ memory
def parsed_rails(ctx: Context) -> int | None:
    """Data rails this run's log reports (the largest across sides); socket devices count as rails on local."""
    sides = ctx.state.get("sides") or {}
    vals = [d.data_rails for d in sides.values() if d.data_rails is not None]
    if not vals:
        vals = [d.efa_devices for d in sides.values() if d.efa_devices]
    if not vals:
        for p in side_logs(ctx).values():
            line = first_line(p, "socket devices (TCP fallback)")
            if line:
                vals.append(int(line.split("Discovered", 1)[1].split()[0]))
    return max(vals) if vals else None


def rail_memory(ctx: Context) -> pd.DataFrame:
    """The memory lesson as a table, from this run's parsed rails and each instance type's EFA count."""
    import pandas as pd

    rails = parsed_rails(ctx)
    record("parsed_data_rails", rails)
    rows = rail_memory_rows(rails, ctx.cfg.gpus_per_worker)
    record("p5_registered_mib", next(r["registered_mib"] for r in rows if r["where"].startswith("p5.48xlarge")))
    return pd.DataFrame(rows)


def oom_check(ctx: Context) -> pd.DataFrame:
    """Workers killed for memory on the target (pods OOMKilled on eks, lab processes locally), with the 128Gi
    explanation; and what the offline lint says about a 64Gi LIBFABRIC worker (caught before anything runs)."""
    import pandas as pd

    from workshop_lib.manifests import render, write_files
    from workshop_lib.manifests.validate import validate_paths

    killed = ctx.target.oom_killed()
    record("oomkilled_pods", len(killed))
    ctx.state["oom_rows"] = len(killed)
    cfg64 = ctx.cfg.replace(target="eks", kv_backend="LIBFABRIC", worker_memory="64Gi")
    out = ctx.work_dir / "oom-64gi"
    paths = write_files(render(cfg64, "cross-node"), out)
    hits = [f for f in validate_paths([str(p) for p in paths if p.suffix == ".yaml"], None) if f.code == "WL001"]
    record("lint_catches_64gi", bool(hits))
    rows = [{"where": r["pod"], "problem": r["problem"], "explanation": r["explanation"], "fix": r["fix"]}
            for r in killed]
    rows += [{"where": f"lint of a 64Gi worker: {f.doc} {f.field_path}", "problem": f.code, "explanation": f.message,
              "fix": f.fix} for f in hits]
    return pd.DataFrame(rows, columns=["where", "problem", "explanation", "fix"])


# ------------------------------------------------------------------------------------------------ verification
def _ev(d: Any, key: str) -> str:
    return (getattr(d, "field_evidence", {}) or {}).get(key) or ""


def verify(ctx: Context) -> CheckTable:
    """Bytes verified across the two "nodes" (where a pair ran), and on each side the backend, provider and handshakes
    the logs show, the combined transport verdict and no OOMKilled worker. Without EFA (local) the TCP fallback is the
    expected lesson outcome (EXPECTED), never a PASS; with EFA it is a FAIL."""
    target = ctx.target
    t = CheckTable(f"Section 03 verification ({ctx.cfg.target})")
    sides: dict[str, Any] = ctx.state.get("sides") or {}
    multi = ctx.state.get("multi")
    pair = ctx.state.get("pair")
    if pair is not None:
        frame = pair.to_frame()
        t.check_true("bytes moved across the two 'nodes' and verified", bool(len(frame)) and bool(frame["verified"].all()),
                     f"{int(frame['verified'].sum())}/{len(frame)} sizes", "all sizes",
                     evidence=f"{'two network namespaces (veth)' if ctx.state.get('netns') else 'loopback'}; "
                              f"{frame['gbps'].max():.2f} GB/s best", fix="read the agent logs in the work directory")
    graph = ctx.state.get("graph")
    if graph is not None and graph.get("mode") == "netns":
        t.check_true("KV cache crossed the veth between the two namespaces (real prefill and decode workers)",
                     bool(graph.get("crossed")), f"{graph.get('nixl_bytes')} NIXL bytes", "> 0, on both veths",
                     evidence=f"{graph.get('namespaces')}: prefill veth sent {graph.get('prefill_tx_bytes')} B, "
                              f"decode veth received {graph.get('decode_rx_bytes')} B, "
                              f"{graph.get('nixl_failed')} failed transfers",
                     fix="workshop lab logs decode; workshop lab status --json (veth and kv counters)")
    elif graph is not None and graph.get("reason") == "mocker":  # the lighter engine, chosen: nothing to move
        t.expected_here("cross-node graph: where the workers ran", f"loopback (fallback: {graph.get('why')})",
                        "two network namespaces", why="the mocker engine moves no KV bytes",
                        evidence="the NIXL pair above moved real bytes between the two namespaces instead")
    elif graph is not None:
        t.add("cross-node graph: where the workers ran", "WARN", f"loopback (fallback: {graph.get('why')})",
              "two network namespaces", "the KV cache did not cross a network interface in this run",
              "run as root with the real engine (ENGINE='vllm'): `workshop lab up --engine vllm --netns`")
    warm = ctx.state.get("warmup")
    if warm is not None:
        ok = sum(1 for w in warm if w["ok"])
        errors = [w["error"] for w in warm if w["error"]]
        t.check_true("completions before reading handshakes (vLLM's NIXL handshake is lazy)", ok == len(warm),
                     f"{ok}/{len(warm)}", "all", evidence=errors[0] if errors else "one, then a concurrent batch",
                     fix="the graph does not serve yet: read the frontend and decode worker logs (kubectl logs)")
    no_efa = "no EFA device on this machine: libfabric runs its sockets/tcp provider (on a P5 this row fails)"
    for role, d in sides.items():
        t.require(f"{role}: NIXL backend", d.nixl_backend or "none", BACKEND, evidence=_ev(d, "nixl_backend"),
                  fix="vLLM: kv_connector_extra_config.backends; locally run `workshop lab setup` (libfabric 2.x)")
        provider = d.libfabric_provider
        ev = _ev(d, "libfabric_provider")
        if target.efa:
            t.require(f"{role}: libfabric provider", provider or "none", "efa", evidence=ev,
                      fix="request vpc.amazonaws.com/efa, privileged: true, an EFA-enabled image, FI_PROVIDER=efa")
            t.at_least(f"{role}: handshakes", d.handshakes, EXPECTED_HANDSHAKES, evidence=_ev(d, "handshakes"),
                       fix="the peers never connected: same AZ, security group allowing all traffic within itself",
                       warn=True)
        elif provider and provider != "efa":
            t.expected_here(f"{role}: libfabric provider", provider, "efa", evidence=ev, why=no_efa)
        else:
            t.add(f"{role}: libfabric provider", "WARN" if provider is None else "FAIL", provider or "not confirmed",
                  "sockets/tcp here", ev, "the log names no provider: set NIXL_LOG_LEVEL=INFO" if provider is None
                  else "efa on a machine without EFA: the diagnosis misread the log")
    if multi is not None:
        got = multi.combined.verdict
        ev = multi.combined.evidence or ""
        if target.efa:
            t.require("KV transport", got, "efa-rdma", evidence=ev, fix="see the side-by-side table and troubleshooting")
        elif got == TCP_FALLBACK:
            t.expected_here("KV transport", got, "efa-rdma", evidence=ev or fallback_signature(ctx) or "", why=no_efa)
        else:
            t.require("KV transport", got, TCP_FALLBACK, evidence=ev,
                      fix="without EFA the verdict must be tcp-fallback; anything else means the diagnosis missed it")
    oom = ctx.state.get("oom_rows")
    if oom is not None:
        t.check_true("no OOMKilled worker", oom == 0, oom, 0, fix=f"worker memory {LIBFABRIC_MIN_MEMORY}")
    return t


# ------------------------------------------------------------------------------------------------ teardown
def teardown(ctx: Context, confirm: bool) -> list[str]:
    """Close port-forwards and, when ``confirm``, remove the cross-node graph (the local pair has already exited)."""
    out = ctx.target.close()
    if not confirm:
        return out + ["TEARDOWN is False: the cross-node graph keeps running for notebook 04."]
    names = ctx.state.get("dgds")
    return out + (ctx.target.teardown(names) if names else ["nothing deployed by this notebook is left running"])
