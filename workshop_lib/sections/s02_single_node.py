"""Section 02, disaggregated serving on one node: deploy, prove the prefill router, stream a completion, prove NIXL.

The single-node DGD is rendered, validated and deployed through ``ctx.target`` (eks: applied and waited for; local:
the lab runs the same DGD as local processes); the frontend and worker logs are diagnosed (prefill router, NIXL
backend, the transport and provider the logs show), a completion is streamed through the target's frontend URL, the
decode worker's ``vllm:nixl_*`` metrics are read where the engine exposes them, and, where the target runs one, a
NIXL UCX pair moves and verifies real bytes.

Example:
    >>> from workshop_lib.sections.common import start
    >>> ctx = start({"TARGET": "local", "NIXL_SIZES": "4K,1M"}, "02")
    >>> pair_spec(ctx, "UCX").sizes
    [4096, 1048576]
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from workshop_lib.checks import CheckTable
from workshop_lib.record import record
from workshop_lib.sections.common import Context

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from workshop_lib.logs.diagnose import Diagnosis

LOCAL_PAIR_DEFAULTS = {"sizes": "4K,1M", "iters": 5}


# ------------------------------------------------------------------------------------------------ deploy
def deploy(ctx: Context) -> pd.DataFrame:
    """Render the single-node graph, validate it, and deploy it on the target (eks: apply and wait; local: the lab
    runs the same DGD as local processes); one row per object applied or process started."""
    frame = deploy_profile(ctx, "single-node")
    record("engine", ctx.target.engine)
    if "healthy" in frame.columns:
        record("lab_processes_healthy", int(frame["healthy"].sum()))
    return frame


def deploy_profile(ctx: Context, profile: str, record_as: str | None = "dgds_ready") -> pd.DataFrame:
    """Render ``profile``, refuse to deploy when validation FAILs, deploy on the target, wait.

    The deployed graphs' names are recorded under ``record_as`` (nothing recorded when None).

    Raises:
        ValidationFailed: a rendered file FAILs validation (the first failing check, its evidence and fix).
    """
    files = validated(ctx, profile)
    ctx.state["files"] = files
    frame = ctx.target.deploy(files)
    ctx.state["dgds"] = ctx.target.graphs
    if record_as:
        record(record_as, ctx.target.graphs)
    return frame


def validated(ctx: Context, profile: str) -> list[Any]:
    """Render ``profile`` into ``<work_dir>/manifests`` and validate it (kept as ``manifest_checks``).

    Raises:
        ValidationFailed: a rendered file FAILs validation (the first failing check, its evidence and fix).
    """
    from workshop_lib.errors import ValidationFailed
    from workshop_lib.manifests import render, write_files
    from workshop_lib.sections.s01_setup import validate

    files = render(ctx.cfg, profile)
    out = ctx.work_dir / "manifests"
    checks = validate(write_files(files, out), out)
    ctx.state["manifest_checks"] = checks
    if not checks.ok:
        bad = checks.failed()[0]
        raise ValidationFailed(bad.check, bad.evidence, bad.fix or "fix the parameters and re-run")
    return files


# ------------------------------------------------------------------------------------------------ logs
def log_files(ctx: Context, roles: tuple[str, ...] = ("frontend", "prefill", "decode")) -> dict[str, Path]:
    """Each role's log as a file (the lab's own, or the pods' logs saved under ``work_dir/logs``)."""
    return ctx.target.log_files(ctx.work_dir, roles)


def router(ctx: Context) -> pd.DataFrame:
    """Diagnose the frontend and worker logs; the table shows each finding with its evidence line."""
    from workshop_lib.logs.diagnose import diagnose

    files = log_files(ctx)
    diag = diagnose(*files.values())
    ctx.state["serving_diag"] = diag
    ctx.state["serving_logs"] = files
    record("prefill_router_active", diag.prefill_router_active)
    return found_rows(diag)


def found_rows(diag: Diagnosis) -> pd.DataFrame:
    """The diagnosis rows that found something (an evidence line), plus the verdict row."""
    frame = diag.table()
    keep = frame["evidence"].notna() | (frame["field"] == "verdict")
    return frame[keep].reset_index(drop=True)


def first_line(path: Path, *needles: str) -> str | None:
    """The first line of ``path`` containing any of ``needles`` (streamed; None when absent).

    >>> import tempfile, os
    >>> p = Path(tempfile.mkdtemp()) / "x.log"; _ = p.write_text("a\\nprefill router activated\\n")
    >>> first_line(p, "router")
    'prefill router activated'
    """
    try:
        with open(path, errors="replace") as fh:
            for line in fh:
                if any(n in line for n in needles):
                    return line.strip()
    except OSError:
        return None
    return None


# ------------------------------------------------------------------------------------------------ completion
def frontend(ctx: Context) -> tuple[str, str]:
    """(URL, model id) of the frontend: ``FRONTEND_URL`` when given, else the target's (the lab's URL, or a
    port-forward to the DGD's ``<dgd>-frontend`` Service)."""
    if ctx.cfg.frontend_url:
        return ctx.cfg.frontend_url, ctx.cfg.model
    return ctx.target.frontend()


def completion(ctx: Context, prompt: str, max_tokens: int = 32) -> pd.DataFrame:
    """Stream one chat completion; one row: tokens, TTFT and ITL (ms), total (ms), finish reason, the text."""
    import pandas as pd

    from workshop_lib.bench.client import chat

    url, model = frontend(ctx)
    r = chat(url, model, prompt, stream=True, max_tokens=max_tokens, timeout=120)
    row = {
        "tokens": r.tokens,
        "ttft_ms": round(r.ttft_s * 1000, 1) if r.ttft_s is not None else None,
        "itl_ms": round(r.itl_s * 1000, 2) if r.itl_s is not None else None,
        "total_ms": round(r.total_s * 1000, 1),
        "finish_reason": r.finish_reason,
        "text": r.text[:200],
    }
    ctx.state["completion"] = row
    record("completion_tokens", r.tokens)
    record("completion_ttft_ms", row["ttft_ms"])
    record("completion_text", row["text"])
    record("completion_finish_reason", r.finish_reason)
    record("frontend_url", url)
    record("port_forwards", ctx.target.forwards())  # service -> local URL; empty locally or with FRONTEND_URL
    return pd.DataFrame([row])


# ------------------------------------------------------------------------------------------------ NIXL
def pair_spec(ctx: Context, backend: str, *, netns: bool = False, op: str = "READ") -> Any:
    """The NixlPairSpec of a local pair from the notebook's ``NIXL_SIZES`` and ``NIXL_ITERS``."""
    from workshop_lib.lab.nixl_pair import NixlPairSpec
    from workshop_lib.parsing import parse_sizes

    sizes = ctx.cfg.nixl_sizes or LOCAL_PAIR_DEFAULTS["sizes"]
    iters = int(ctx.cfg.nixl_iters or LOCAL_PAIR_DEFAULTS["iters"])
    return NixlPairSpec(backend=backend, op=op, sizes=parse_sizes(sizes) if isinstance(sizes, str) else list(sizes),
                        iters=iters, netns=netns)


def run_pair(ctx: Context, backend: str, *, tag: str = "") -> tuple[Any, Diagnosis] | None:
    """The target's NIXL pair micro-benchmark for ``backend``, both sides' logs diagnosed together; None where the
    target runs none (eks: the graph's own workers are the evidence)."""
    from workshop_lib.logs.diagnose import diagnose

    spec = pair_spec(ctx, backend)
    result = ctx.target.transfer_pair(spec, ctx.work_dir / (tag or ""))
    if result is None:
        return None
    return result, diagnose(*[Path(p) for p in result.logs.values()])


def nixl(ctx: Context) -> pd.DataFrame:
    """The workers' NIXL diagnosis (backend, transport, provider) and, where the target runs one, the NIXL pair's
    transfers (one row per block size, bytes verified)."""
    from workshop_lib.logs.diagnose import diagnose

    files = ctx.state.get("serving_logs") or log_files(ctx)
    diag = diagnose(files["prefill"], files["decode"])
    ctx.state["worker_diag"] = diag
    record("worker_nixl_backend", diag.nixl_backend)
    record("worker_kv_transport", diag.verdict)
    record("worker_libfabric_provider", diag.libfabric_provider)
    if ctx.target.kv_metrics_expected:
        ctx.state["decode_metrics"] = kv_metrics(ctx)
    got = run_pair(ctx, "UCX")
    if got is None:
        return found_rows(diag)
    result, pdiag = got
    ctx.state["pair"], ctx.state["pair_diag"] = result, pdiag
    frame = result.to_frame()
    record("ucx_pair_rows", len(frame))
    record("ucx_pair_backend", pdiag.nixl_backend)
    return frame


KV_BYTES = "vllm:nixl_bytes_transferred_sum"
KV_TRANSFERS = "vllm:nixl_bytes_transferred_count"
KV_FAILED = ("vllm:nixl_num_failed_transfers_total", "vllm:nixl_num_failed_transfers")


def kv_metrics(ctx: Context) -> dict[str, Any]:
    """The decode worker's ``vllm:nixl_*`` metrics through the target: bytes, transfers, failed (or the error)."""
    url = ctx.target.metrics_url("decode")
    try:
        m = ctx.target.metrics("decode")
    except OSError as exc:
        return {"url": url, "error": f"{url}: {exc}"}
    got = {"url": url, "bytes": m.get(KV_BYTES), "transfers": m.get(KV_TRANSFERS),
           "failed": sum(m.get(k, 0.0) for k in KV_FAILED) if any(k in m for k in KV_FAILED) else None}
    record("decode_kv_bytes", got["bytes"])
    record("decode_kv_failed", got["failed"])
    return got


# ------------------------------------------------------------------------------------------------ verification
def _ev(diag: Any, key: str) -> str:
    return (getattr(diag, "field_evidence", {}) or {}).get(key) or ""


def verify(ctx: Context) -> CheckTable:
    """Router active, completion streamed, the workers' NIXL backend with the transport and provider their logs show,
    the decode worker's KV-transfer metrics where the engine exposes them, and the NIXL pair's verified bytes."""
    target = ctx.target
    t = CheckTable(f"Section 02 verification ({ctx.cfg.target}, engine {target.engine})")
    sdiag = ctx.state.get("serving_diag")
    if sdiag is not None:
        t.check_true("prefill router active", bool(sdiag.prefill_router_active), sdiag.prefill_router_active, True,
                     evidence=_ev(sdiag, "prefill_router_active"),
                     fix="the frontend found no prefill worker: check the prefill worker registered (its log) and "
                         "that it runs with --is-prefill-worker")
    logs = ctx.state.get("serving_logs") or {}
    mocker = target.engine == "mocker"
    if mocker and "decode" in logs:
        line = first_line(logs["decode"], "decode received ACK", "decode connecting")
        t.check_true("decode <- prefill rendezvous", line is not None, "seen" if line else "not seen",
                     "bootstrap handshake in the decode log", evidence=line or "",
                     fix="the decode worker never reached the prefill bootstrap port; see troubleshooting")
    comp = ctx.state.get("completion")
    if comp is not None:
        t.at_least("streamed completion tokens", comp["tokens"], 1, evidence=f"TTFT {comp['ttft_ms']} ms, "
                   f"ITL {comp['itl_ms']} ms, finish_reason={comp['finish_reason']}",
                   fix="look at the frontend and decode logs for the request")
    wdiag = ctx.state.get("worker_diag")
    if wdiag is not None:
        worker_rows(t, wdiag, deployed_backend(ctx), efa=target.efa, mocker=mocker)
    if target.kv_metrics_expected:
        metric_rows(t, ctx.state.get("decode_metrics"))
    pdiag = ctx.state.get("pair_diag")
    if pdiag is not None:
        t.require("NIXL pair: backend instantiated", pdiag.nixl_backend or "none", "UCX",
                  evidence=_ev(pdiag, "nixl_backend"), fix="run `workshop lab setup` (the pinned NIXL wheels)")
        if pdiag.errors:
            e = pdiag.errors[0]
            # The pair checks its bytes end to end, so a flagged line (e.g. a GPU-only plugin that cannot load
            # without a GPU) is a warning there.
            t.add("NIXL pair: log lines flagged", "WARN", len(pdiag.errors), 0, e.get("message", ""), e.get("fix", ""))
    pair = ctx.state.get("pair")
    if pair is not None:
        frame = pair.to_frame()
        verified = bool(len(frame)) and bool(frame["verified"].all())
        t.check_true("NIXL pair: bytes moved and verified", verified,
                     f"{int(frame['verified'].sum())}/{len(frame)} sizes verified", "all sizes",
                     evidence=_pair_evidence(pair), fix="read the initiator/target logs under the work directory")
    record("verdict_single_node", t.verdict())
    return t


def deployed_backend(ctx: Context) -> str:
    """The NIXL backend the deployed graph configures (its DGD's kv-transfer-config), else the config's."""
    from workshop_lib.targets.base import graph_backend

    return graph_backend(ctx.state.get("files") or []) or ctx.cfg.kv_backend


def worker_rows(t: CheckTable, diag: Any, want: str, *, efa: bool, mocker: bool) -> None:
    """The workers' NIXL backend, and the transport and provider their logs show (not only the backend's name).

    ``want`` is the backend the graph renders. LIBFABRIC must run on the ``efa`` provider (the ``efa-rdma`` verdict);
    on a target without EFA the TCP fallback is the expected lesson outcome (EXPECTED), never a PASS. With the mocker
    engine the workers move no KV bytes: their missing NIXL lines are EXPECTED, said as such.
    """
    backend = diag.nixl_backend or "none"
    if mocker:
        t.expected_here("workers: NIXL backend", backend, want, evidence=_ev(diag, "nixl_backend"),
                        why="the mocker engine simulates prefill/decode timing and moves no KV bytes; the NIXL pair "
                            "below moves and checks real ones (engine vllm runs real workers)")
        return
    t.require("workers: NIXL backend", backend, want, evidence=_ev(diag, "nixl_backend"),
              fix="set the backend in --kv-transfer-config's kv_connector_extra_config.backends")
    transport = diag.verdict
    if want == "LIBFABRIC":
        provider = diag.libfabric_provider or "none"
        ev = _ev(diag, "libfabric_provider")
        if efa:
            t.require("workers: libfabric provider", provider, "efa", evidence=ev,
                      fix="request vpc.amazonaws.com/efa, an EFA-enabled image and FI_PROVIDER=efa")
            t.require("workers: KV transport", transport, "efa-rdma", evidence=diag.evidence or "",
                      fix="the KV cache is not on EFA: see the troubleshooting table")
        elif transport == "tcp-fallback":
            t.expected_here("workers: KV transport", transport, "efa-rdma", evidence=diag.evidence or ev,
                            why="no EFA device here, so libfabric runs its sockets/tcp provider (the lesson of "
                                "notebook 03); on a P5 this row fails")
        else:
            t.require("workers: KV transport", transport, "tcp-fallback", evidence=diag.evidence or ev,
                      fix="without EFA the logs must show the TCP fallback; anything else means the diagnosis missed it")
    elif transport == "tcp-fallback" and not efa:
        t.expected_here("workers: KV transport", transport, "ucx", evidence=diag.evidence or "",
                        why="no RDMA device here, so UCX moves the KV cache over TCP (on a GPU node this row fails)")
    else:
        t.require("workers: KV transport", transport, "ucx", evidence=diag.evidence or "",
                  fix="the workers' logs do not show UCX moving the KV cache: read the decode log")


def metric_rows(t: CheckTable, m: dict[str, Any] | None) -> None:
    """The decode worker's own ``vllm:nixl_*`` counters: KV bytes > 0 and 0 failed transfers."""
    fix = "read the decode worker's log: the KV cache did not arrive through NIXL"
    if not m or m.get("error"):
        t.add("decode worker: KV bytes over NIXL", "FAIL", "metrics not read", "> 0 bytes",
              (m or {}).get("error", "no metrics"), "check the decode worker is up: workshop lab status")
        return
    t.at_least("decode worker: KV bytes over NIXL", m.get("bytes"), 1, unit=" B", evidence=f"{KV_BYTES} at {m['url']}",
               fix=fix)
    failed = m.get("failed")
    t.check_true("decode worker: failed KV transfers", failed == 0, "missing" if failed is None else f"{failed:g}", 0,
                 evidence=f"{' + '.join(KV_FAILED)} at {m['url']}", fix=fix)


def _pair_evidence(pair: Any) -> str:
    for role in ("initiator", "target"):
        p = (getattr(pair, "logs", {}) or {}).get(role)
        if p:
            line = first_line(Path(p), "Backend UCX was instantiated", "Backend LIBFABRIC was instantiated", "verified")
            if line:
                return line
    return ""


# ------------------------------------------------------------------------------------------------ teardown
def teardown(ctx: Context, confirm: bool) -> list[str]:
    """Close port-forwards; when ``confirm`` remove the graph (eks: delete the DGD; local: stop the lab). Safe twice."""
    out = ctx.target.close()
    if not confirm:
        return out + ["TEARDOWN is False: the deployment keeps running for the next notebook."]
    from workshop_lib.manifests import render
    from workshop_lib.targets import dgd_names

    return out + ctx.target.teardown(ctx.state.get("dgds") or dgd_names(render(ctx.cfg, "single-node")))
