"""Section 02, disaggregated serving on one node: deploy, prove the prefill router, stream a completion, prove NIXL.

eks: the single-node DGD rendered, validated, applied and waited for; worker logs diagnosed; the frontend
port-forwarded for a completion. local: the lab's frontend with mocker prefill and decode workers, the frontend log
diagnosed for the prefill router, a streamed completion, and a NIXL UCX pair that moves and verifies real bytes.

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
from workshop_lib.sections import eks
from workshop_lib.sections.common import Context

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from workshop_lib.logs.diagnose import Diagnosis

LOCAL_PAIR_DEFAULTS = {"sizes": "4K,1M", "iters": 5}
SERVICES = ("Frontend", "PrefillWorker", "DecodeWorker")


# ------------------------------------------------------------------------------------------------ deploy
def deploy(ctx: Context) -> pd.DataFrame:
    """eks: render + validate + apply the single-node graph and wait (progress); local: the serving lab, up."""
    if ctx.local:
        from workshop_lib.lab.serving import Lab
        from workshop_lib.sections.s01_setup import lab_frame

        st = Lab().up(progress=True)
        ctx.state["lab"] = st
        frame = lab_frame(st)
        record("lab_processes_healthy", int(frame["healthy"].sum()))
        return frame
    return deploy_eks(ctx, "single-node")


def deploy_eks(ctx: Context, profile: str, record_as: str | None = "dgds_ready") -> pd.DataFrame:
    """Render ``profile``, refuse to apply when validation FAILs, apply, wait; returns what was applied.

    The Ready graphs' names are recorded under ``record_as`` (nothing recorded when None).
    """
    import pandas as pd

    from workshop_lib.manifests import render, write_files
    from workshop_lib.sections.s01_setup import validate

    files = render(ctx.cfg, profile)
    out = ctx.work_dir / "manifests"
    paths = write_files(files, out)
    checks = validate(paths, out)
    ctx.state["manifest_checks"] = checks
    if not checks.ok:
        from workshop_lib.errors import ValidationFailed

        bad = checks.failed()[0]
        raise ValidationFailed(bad.check, bad.evidence, bad.fix or "fix the parameters and re-run")
    applied = eks.apply_files(files)
    names = eks.dgd_names(files)
    ctx.state["dgds"] = names
    ctx.state["files"] = files
    eks.wait_dgds(ctx.cfg, names)
    if record_as:
        record(record_as, names)
    return pd.DataFrame({"applied": applied})


# ------------------------------------------------------------------------------------------------ logs
def log_files(ctx: Context) -> dict[str, Path]:
    """Frontend, prefill and decode logs as files: the lab's own, or the pods' logs saved under ``work_dir/logs``."""
    if ctx.local:
        from workshop_lib.lab.serving import Lab

        lab = Lab()
        return {"frontend": lab.log_path("frontend"), "prefill": lab.log_path("prefill"), "decode": lab.log_path("decode")}
    out = ctx.work_dir / "logs"
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    dgd = (ctx.state.get("dgds") or [None])[0]
    for role, svc in zip(("frontend", "prefill", "decode"), SERVICES, strict=True):
        p = out / f"{role}.log"
        p.write_text(eks.component_log(ctx.cfg, svc, dgd) + "\n")
        files[role] = p
    return files


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
    """(URL, model id) of the frontend: the lab's, or a port-forward to the DGD's ``<dgd>-frontend`` Service."""
    if ctx.local:
        from workshop_lib.lab.serving import Lab

        st = ctx.state.get("lab") or Lab().status()
        return str(st.frontend_url), str(st.model)
    if ctx.get("FRONTEND_URL"):
        return str(ctx.get("FRONTEND_URL")), ctx.cfg.model
    dgd = (ctx.state.get("dgds") or [""])[0]
    return eks.frontend_url(ctx.cfg, f"{dgd}-frontend", ctx.state), ctx.cfg.model


def completion(ctx: Context, prompt: str, max_tokens: int = 32) -> pd.DataFrame:
    """Stream one chat completion; one row: tokens, TTFT and ITL (ms), total (ms), finish reason, the text."""
    import pandas as pd

    from workshop_lib.lab.chat import chat

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
    if ctx.eks:
        record("port_forwards", eks.forwards(ctx.state))  # service -> local URL; empty when FRONTEND_URL was given
    return pd.DataFrame([row])


# ------------------------------------------------------------------------------------------------ NIXL
def pair_spec(ctx: Context, backend: str, *, netns: bool = False, op: str = "READ") -> Any:
    """The NixlPairSpec of a local pair from the notebook's ``NIXL_SIZES`` and ``NIXL_ITERS``."""
    from workshop_lib.lab.nixl_pair import NixlPairSpec, parse_sizes

    sizes = ctx.get("NIXL_SIZES") or LOCAL_PAIR_DEFAULTS["sizes"]
    iters = int(ctx.get("NIXL_ITERS") or LOCAL_PAIR_DEFAULTS["iters"])
    return NixlPairSpec(backend=backend, op=op, sizes=parse_sizes(sizes) if isinstance(sizes, str) else list(sizes),
                        iters=iters, netns=netns)


def run_local_pair(ctx: Context, backend: str, *, netns: bool = False, tag: str = "") -> tuple[Any, Diagnosis]:
    """Run a NIXL pair and diagnose both sides' logs together; returns (NixlPairResult, Diagnosis)."""
    from workshop_lib.lab.nixl_pair import run_pair
    from workshop_lib.logs.diagnose import diagnose

    log_dir = ctx.work_dir / f"nixl-{(tag or backend).lower()}"
    result = run_pair(pair_spec(ctx, backend, netns=netns), log_dir)
    diag = diagnose(*[Path(p) for p in result.logs.values()])
    return result, diag


def nixl(ctx: Context) -> pd.DataFrame:
    """local: a UCX pair's transfers (one row per block size, bytes verified); eks: the workers' NIXL diagnosis."""
    if ctx.local:
        result, diag = run_local_pair(ctx, "UCX")
        ctx.state["pair"], ctx.state["pair_diag"] = result, diag
        frame = result.to_frame()
        record("ucx_pair_rows", len(frame))
        record("ucx_pair_backend", diag.nixl_backend)
        return frame
    from workshop_lib.logs.diagnose import diagnose

    files = ctx.state.get("serving_logs") or log_files(ctx)
    diag = diagnose(files["prefill"], files["decode"])
    ctx.state["pair_diag"] = diag
    record("worker_nixl_backend", diag.nixl_backend)
    return found_rows(diag)


# ------------------------------------------------------------------------------------------------ verification
def _ev(diag: Any, key: str) -> str:
    return (getattr(diag, "field_evidence", {}) or {}).get(key) or ""


def verify(ctx: Context) -> CheckTable:
    """Router active, completion streamed, NIXL backend instantiated (and, locally, bytes verified)."""
    t = CheckTable(f"Section 02 verification ({ctx.cfg.target})")
    sdiag = ctx.state.get("serving_diag")
    if sdiag is not None:
        t.check_true("prefill router active", bool(sdiag.prefill_router_active), sdiag.prefill_router_active, True,
                     evidence=_ev(sdiag, "prefill_router_active"),
                     fix="the frontend found no prefill worker: check the prefill worker registered (its log) and "
                         "that it runs with --is-prefill-worker")
    logs = ctx.state.get("serving_logs") or {}
    if ctx.local and "decode" in logs:
        line = first_line(logs["decode"], "decode received ACK", "decode connecting")
        t.check_true("decode <- prefill rendezvous", line is not None, "seen" if line else "not seen",
                     "bootstrap handshake in the decode log", evidence=line or "",
                     fix="the decode worker never reached the prefill bootstrap port; see troubleshooting")
    comp = ctx.state.get("completion")
    if comp is not None:
        t.at_least("streamed completion tokens", comp["tokens"], 1, evidence=f"TTFT {comp['ttft_ms']} ms, "
                   f"ITL {comp['itl_ms']} ms, finish_reason={comp['finish_reason']}",
                   fix="look at the frontend and decode logs for the request")
    pdiag = ctx.state.get("pair_diag")
    want = "UCX" if ctx.local else ctx.cfg.kv_backend
    if pdiag is not None:
        t.require("NIXL backend instantiated", pdiag.nixl_backend or "none", want, evidence=_ev(pdiag, "nixl_backend"),
                  fix="set NIXL_LOG_LEVEL=INFO; for vLLM pass the backend in kv_connector_extra_config.backends")
        if pdiag.errors:
            e = pdiag.errors[0]
            # Locally the bytes are checked end to end, so a flagged log line (e.g. a GPU-only plugin that cannot
            # load without a GPU) is a warning; on eks it is a failure to look at.
            t.add("NIXL log lines flagged", "WARN" if ctx.local else "FAIL", len(pdiag.errors), 0,
                  e.get("message", ""), e.get("fix", ""))
    pair = ctx.state.get("pair")
    if pair is not None:
        frame = pair.to_frame()
        ok_col = next((c for c in ("verified", "ok", "checksum_ok") if c in frame.columns), None)
        verified = bool(frame[ok_col].all()) if ok_col else False
        t.check_true("bytes moved and verified", verified and len(frame) > 0,
                     f"{int(frame[ok_col].sum()) if ok_col else 0}/{len(frame)} sizes verified", "all sizes",
                     evidence=_pair_evidence(pair), fix="read the initiator/target logs under the work directory")
    record("verdict_single_node", t.verdict())
    return t


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
    """Close port-forwards; when ``confirm``: eks deletes the graph, local stops the serving lab. Safe twice."""
    out = eks.close_forwards(ctx.state) if ctx.eks else []
    if not confirm:
        return out + ["TEARDOWN is False: the deployment keeps running for the next notebook."]
    if ctx.eks:
        from workshop_lib.manifests import render

        names = ctx.state.get("dgds") or eks.dgd_names(render(ctx.cfg, "single-node"))
        return out + eks.teardown_namespace(ctx.cfg, names)
    from workshop_lib.lab.serving import Lab

    stopped = Lab().down()
    return out + [f"stopped {', '.join(stopped)}" if stopped else "the lab was not running"]
