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

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workshop_lib.checks import CheckTable
from workshop_lib.config import INSTANCE_TYPES, LIBFABRIC_MIN_MEMORY
from workshop_lib.record import record
from workshop_lib.sections import eks
from workshop_lib.sections.common import Context, transfer_view
from workshop_lib.sections.s02_single_node import deploy_eks, first_line, found_rows, run_local_pair

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

# NIXL 0.9.0 LIBFABRIC rail manager: one control rail, and a control pool of 4096 buffers x 8 KiB per rail.
CONTROL_RAILS = 1
CONTROL_POOL_BUFFERS = 4096
CONTROL_BUFFER_BYTES = 8 * 1024
MiB = 2**20
EXPECTED_HANDSHAKES = 8  # per side, in the seed workshop's cross-node run
TCP_FALLBACK = "tcp-fallback"


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
def use_netns(ctx: Context) -> bool:
    """``NETNS`` when given, else True when running as root (two namespaces need root)."""
    want = ctx.get("NETNS")
    return bool(want) if want is not None else os.geteuid() == 0


def deploy(ctx: Context) -> pd.DataFrame:
    """eks: the cross-node graph applied and Ready; local: the LIBFABRIC pair run (one row per block size:
    bandwidth, median latency, verified)."""
    if ctx.eks:
        return deploy_eks(ctx, "cross-node")
    netns = use_netns(ctx)
    result, diag = run_local_pair(ctx, "LIBFABRIC", netns=netns)
    ctx.state.update(pair=result, pair_diag=diag, netns=netns)
    frame = result.to_frame()
    record("libfabric_pair_rows", len(frame))
    record("libfabric_pair_netns", netns)
    record("libfabric_pair_verified", bool(frame["verified"].all()) if len(frame) else False)
    from workshop_lib.bench.nixl import lab_frame

    return transfer_view(lab_frame(result))


# ------------------------------------------------------------------------------------------------ diagnosis
def side_logs(ctx: Context) -> dict[str, Path]:
    """The two sides' log files: prefill/decode pods (eks) or initiator/target agents (local)."""
    if ctx.local:
        pair = ctx.state.get("pair")
        if pair is None:
            deploy(ctx)
            pair = ctx.state["pair"]
        return {role: Path(p) for role, p in pair.logs.items()}
    from workshop_lib.sections.s02_single_node import log_files

    files = log_files(ctx)
    return {"prefill": files["prefill"], "decode": files["decode"]}


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


def cross_checks(ctx: Context) -> pd.DataFrame:
    """The diagnosis's side-against-side checks (same backend, both handshake...)."""
    multi = ctx.state.get("multi")
    return multi.checks if multi is not None else found_rows(ctx.state["pair_diag"])


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
    if result == TCP_FALLBACK and ctx.local:
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
    if not vals and ctx.local:
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
    """eks: every OOMKilled worker with the 128Gi explanation; local: what the offline lint says about 64Gi."""
    import pandas as pd

    if ctx.eks:
        from workshop_lib.cluster import pod_problems

        pods = eks.cluster().list("v1", "Pod", ctx.cfg.namespace)
        rows = [{"pod": p.where, "problem": p.kind, "explanation": p.message, "fix": p.fix}
                for pod in pods for p in pod_problems(pod) if p.kind == "OOMKilled"]
        record("oomkilled_pods", len(rows))
        ctx.state["oom_rows"] = len(rows)
        return pd.DataFrame(rows, columns=["pod", "problem", "explanation", "fix"])
    from workshop_lib.manifests import render, write_files
    from workshop_lib.manifests.validate import validate_paths

    cfg64 = ctx.cfg.replace(target="eks", kv_backend="LIBFABRIC", worker_memory="64Gi")
    out = ctx.work_dir / "oom-64gi"
    paths = write_files(render(cfg64, "cross-node"), out)
    hits = [f for f in validate_paths([str(p) for p in paths if p.suffix == ".yaml"], None) if f.code == "WL001"]
    record("lint_catches_64gi", bool(hits))
    rows = [{"worker_memory": "64Gi", "caught_by": f.code, "where": f"{f.doc} {f.field_path}", "message": f.message,
             "fix": f.fix} for f in hits]
    return pd.DataFrame(rows, columns=["worker_memory", "caught_by", "where", "message", "fix"])


# ------------------------------------------------------------------------------------------------ verification
def _ev(d: Any, key: str) -> str:
    return (getattr(d, "field_evidence", {}) or {}).get(key) or ""


def verify(ctx: Context) -> CheckTable:
    """eks: LIBFABRIC + efa + 8 handshakes on each side, no OOM; local: the pair verified and the fallback recognised."""
    t = CheckTable(f"Section 03 verification ({ctx.cfg.target})")
    sides: dict[str, Any] = ctx.state.get("sides") or {}
    multi = ctx.state.get("multi")
    if ctx.local:
        pair = ctx.state.get("pair")
        if pair is not None:
            frame = pair.to_frame()
            t.check_true("bytes moved across the two 'nodes' and verified", bool(len(frame)) and bool(frame["verified"].all()),
                         f"{int(frame['verified'].sum())}/{len(frame)} sizes", "all sizes",
                         evidence=f"{'two network namespaces (veth)' if ctx.state.get('netns') else 'loopback'}; "
                                  f"{frame['gbps'].max():.2f} GB/s best", fix="read the agent logs in the work directory")
        for role, d in sides.items():
            t.require(f"{role}: NIXL backend", d.nixl_backend or "none", "LIBFABRIC", evidence=_ev(d, "nixl_backend"),
                      fix="run `workshop lab setup` (libfabric 2.x for the LIBFABRIC plugin)")
        if multi is not None:
            t.require("TCP fallback recognised (expected on this machine)", multi.combined.verdict,
                      TCP_FALLBACK, evidence=multi.combined.evidence or fallback_signature(ctx) or "",
                      fix="the verdict should be tcp-fallback without EFA; anything else means the diagnosis missed it")
        return t
    want = ctx.cfg.kv_backend
    for role, d in sides.items():
        t.require(f"{role}: NIXL backend", d.nixl_backend or "none", want, evidence=_ev(d, "nixl_backend"),
                  fix="vLLM: kv_connector_extra_config.backends; TRT-LLM: TRTLLM_NIXL_KVCACHE_BACKEND")
        if want == "LIBFABRIC":
            t.require(f"{role}: libfabric provider", d.libfabric_provider or "none", "efa",
                      evidence=_ev(d, "libfabric_provider"),
                      fix="request vpc.amazonaws.com/efa, privileged: true, an EFA-enabled image, FI_PROVIDER=efa")
            t.at_least(f"{role}: handshakes", d.handshakes, EXPECTED_HANDSHAKES, evidence=_ev(d, "handshakes"),
                       fix="the peers never connected: same AZ, security group allowing all traffic within itself",
                       warn=True)
    if multi is not None:
        t.require("verdict", multi.combined.verdict, "efa-rdma" if want == "LIBFABRIC" else "ucx",
                  evidence=multi.combined.evidence or "", fix="see the side-by-side table and troubleshooting")
    oom = ctx.state.get("oom_rows")
    if oom is not None:
        t.check_true("no OOMKilled worker", oom == 0, oom, 0, fix=f"worker memory {LIBFABRIC_MIN_MEMORY}")
    return t


# ------------------------------------------------------------------------------------------------ teardown
def teardown(ctx: Context, confirm: bool) -> list[str]:
    """eks: close port-forwards and, when ``confirm``, delete the cross-node graph. local: the pair already exited."""
    if ctx.local:
        return ["the NIXL agents exited after the run; the network namespaces were removed with them"]
    out = eks.close_forwards(ctx.state)
    if not confirm:
        return out + ["TEARDOWN is False: the cross-node graph keeps running for notebook 04."]
    from workshop_lib.manifests import render

    names = ctx.state.get("dgds") or eks.dgd_names(render(ctx.cfg, "cross-node"))
    return out + eks.teardown_namespace(ctx.cfg, names)
