"""The lessons' notebook steps: one call per cell, for either target (the notebooks stay thin).

Each step reads what is really there: the lab's running processes and etcd keys on local, the pods, services and
endpoint slices on eks. Where a target cannot do a step (drills need the local lab), the step says so in one line
instead of running something else.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from workshop_lib.lessons import dgd, drills, memory
from workshop_lib.record import record

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from workshop_lib.config import WorkshopConfig

LOCAL_ONLY = "drills run on the local lab: rerun this notebook with TARGET = \"local\" to try them"


def _cluster() -> Any:
    from workshop_lib.targets.eks import cluster

    return cluster()


def _lab_status() -> Any:
    from workshop_lib.lab.serving import Lab

    return Lab().status()


def became_of_it(cfg: WorkshopConfig) -> pd.DataFrame:
    """What the DGD became: local, the lab's processes (real command lines); eks, the graph's pods and services."""
    if cfg.target == "local":
        rows = dgd.process_rows(_lab_status())
        record("lab_process_commands", len(rows))
        return rows
    c = _cluster()
    rows = dgd.pod_rows(c.list("v1", "Pod", cfg.namespace), c.list("v1", "Service", cfg.namespace))
    record("eks_pods_listed", int((rows["kind"] == "Pod").sum()))
    return rows


def registrations(cfg: WorkshopConfig) -> pd.DataFrame:
    """Who registered: local, the keys Dynamo's workers and frontend put in the lab's etcd; eks, endpoint slices.

    Raises:
        LabError: the lab's etcd does not answer (local).
    """
    import pandas as pd

    if cfg.target == "local":
        from workshop_lib.sections.probes import etcd_keys

        etcd = _lab_status().processes.get("etcd")
        port = getattr(etcd, "port", None) or 2379
        rows = dgd.registration_rows(etcd_keys("v1/", f"http://127.0.0.1:{port}"))
        record("etcd_registrations", len(rows))
        return rows
    try:
        slices = _cluster().list("discovery.k8s.io/v1", "EndpointSlice", cfg.namespace)
    except Exception as exc:  # noqa: BLE001 - shown to the learner, never hidden
        return pd.DataFrame([{"key": f"(endpoint slices not readable: {type(exc).__name__}: {str(exc)[:120]})",
                              "kind": "EndpointSlice", "component": ""}])
    rows = [{"key": s.get("metadata", {}).get("name"), "kind": "EndpointSlice",
             "component": s.get("metadata", {}).get("labels", {}).get("kubernetes.io/service-name", "")}
            for s in slices]
    return pd.DataFrame(rows, columns=["key", "kind", "component"])


def engine_in_use(cfg: WorkshopConfig) -> str:
    """``vllm`` or ``mocker`` as the running lab's worker command lines say (eks: the config's framework)."""
    if cfg.target != "local":
        return cfg.framework
    st = _lab_status()
    reported = getattr(st, "engine", None)
    if reported:
        return str(reported)
    cmds = " ".join(dgd.process_rows(st)["command"].tolist())
    return "mocker" if "dynamo.mocker" in cmds else "vllm" if "dynamo.vllm" in cmds else "unknown"


def drill(cfg: WorkshopConfig, name: str, work_dir: Path) -> drills.SymptomCheck | str:
    """Run the drill ``name`` on the local lab and check its symptom (eks: a one-line note)."""
    if cfg.target != "local":
        return LOCAL_ONLY
    out = Path(work_dir) / "drills" / name
    if name == "backend_env":
        check = drills.check_backend_env(drills.run_backend_env(out))
    elif name == "corrupt_kv":
        frame, meta = drills.run_corrupt_kv(out)
        check = drills.check_corrupt_kv(frame, meta)
    elif name == "colocate":
        check = drills.check_colocate(drills.run_colocate())
    else:
        raise ValueError(f"no local runner for drill {name!r}: use backend_env, corrupt_kv or colocate")
    record(f"drill_{name}_saw_symptom", check.saw)
    return check


def evidence_of(sides: dict[str, Any] | None) -> dict[str, str]:
    """Finding -> this run's evidence line, from the per-side diagnoses (first side that has one)."""
    out: dict[str, str] = {}
    for d in (sides or {}).values():
        for key, line in (getattr(d, "field_evidence", None) or {}).items():
            if line and key not in out:
                out[key] = str(line)
    return out


def memory_budget(cfg: WorkshopConfig, work_dir: Path) -> pd.DataFrame:
    """The budget of one worker: measured here (NIXL pair peak RSS per backend, the lab's worker RSS), else asserted."""
    measured = None
    engine_rss = None
    label = ""
    efa = cfg.efa_per_worker or cfg.instance.efa
    if cfg.target == "local":
        measured = memory.measure_backends(Path(work_dir) / "memory", netns=False)
        try:
            st = _lab_status()
            decode = st.processes.get("decode") if st.running else None
            if decode is not None and decode.rss_mb:
                engine_rss, label = decode.rss_mb, f"the lab's decode worker ({engine_in_use(cfg)})"
        except Exception:  # noqa: BLE001 - the lab may be down: the row then says "not measured"
            engine_rss = None
        extra = memory.libfabric_overhead_mib(measured)
        record("memory_libfabric_minus_ucx_mib", extra)
    frame = memory.budget(efa=efa, model_params_b=memory.model_params_b(cfg.model), shm_gib=memory.gib(cfg.shm_size),
                          measured=measured, engine_rss_mib=engine_rss, engine_label=label)
    record("memory_budget_rows", len(frame))
    return frame



def split_frame(records_by_backend: dict[str, list[dict[str, Any]]]) -> pd.DataFrame:
    """One row per backend: the p50 of each TTFT part (``lab.breakdown.summary``) and the request count."""
    import pandas as pd

    from workshop_lib.lab.breakdown import summary

    rows = [{"backend": b, "requests": len(recs), **summary(recs)} for b, recs in records_by_backend.items() if recs]
    cols = ["backend", "requests", "ttft_s", "prefill_s", "kv_transfer_s", "first_decode_s", "other_s", "kv_bytes",
            "descriptors"]
    return pd.DataFrame(rows, columns=cols)


def ttft_split(cfg: WorkshopConfig, n: int = 4, backends: tuple[str, ...] | None = None) -> pd.DataFrame | str:
    """TTFT split per backend on the local lab's real engine; a one-line note where it cannot run (eks, the mocker,
    or no lab).

    ``backends=None`` measures the running lab's backend only (no restart). Naming more (``("UCX", "LIBFABRIC")``)
    restarts the lab once per other backend, then restores the one it found (about 1.5 minutes per restart here).
    """
    if cfg.target != "local":
        return "the TTFT split reads the lab's vLLM worker metrics: run it with TARGET = \"local\" on the real engine"
    from workshop_lib.lab.breakdown import ttft_breakdown
    from workshop_lib.lab.serving import Lab
    from workshop_lib.lessons.oddities import explain

    lab = Lab()
    st = lab.status()
    if not st.running or getattr(st, "engine", None) != "vllm":
        return ("no TTFT split here: " + explain("mocker").split(". ", 1)[0] + " moves no KV bytes. Start the real "
                "engine (`workshop lab down && workshop lab up --engine vllm`) and rerun this cell.")
    first = getattr(st, "kv_backend", None) or "UCX"
    records: dict[str, list[dict[str, Any]]] = {}
    try:
        for b in [first, *[x for x in (backends or ()) if x != first]]:
            if b != getattr(lab.status(), "kv_backend", None):
                lab.down()
                lab.up(progress=False, engine="vllm", kv_backend=b)
            records[b] = ttft_breakdown(lab, n=n)
    finally:
        if getattr(lab.status(), "kv_backend", None) != first:
            lab.down()
            lab.up(progress=False, engine="vllm", kv_backend=first)
    frame = split_frame(records)
    record("ttft_split_backends", frame["backend"].tolist())
    return frame


def split_plot(split: pd.DataFrame | str, cfg: WorkshopConfig) -> Any:
    """The TTFT split as an inline figure (:func:`workshop_lib.plots.show`), or the note that says why there is none."""
    from workshop_lib import plots

    if isinstance(split, str) or split.empty:
        return split if isinstance(split, str) else "no TTFT split: no request was measured"
    info = plots.FigureInfo.for_target(cfg.target, cfg.instance_type)
    return plots.show(plots.plot_ttft_split(split, info))


def substitutions(cfg: WorkshopConfig) -> pd.DataFrame | str:
    """local: how the lab turns the DGD into processes (``Lab.plan``): one row per substitution, then what it cannot
    honour. eks: a note (the operator runs the DGD as written)."""
    import pandas as pd

    if cfg.target != "local":
        return "eks: the operator runs the DGD as written; nothing is substituted"
    from workshop_lib.lab.serving import Lab

    st = _lab_status()
    engine = getattr(st, "engine", None) if st.running else None
    plan = Lab().plan(engine=engine or "mocker", kv_backend=getattr(st, "kv_backend", None) or "UCX")
    rows = [{"service": x.service, "field": x.field, "in the DGD": x.dgd, "here": x.local, "why": x.why}
            for x in plan.substitutions]
    rows += [{"service": "(graph)", "field": "not honoured here", "in the DGD": u, "here": "-", "why": ""}
             for u in plan.unhonoured]
    record("lab_substitutions", len(plan.substitutions))
    return pd.DataFrame(rows, columns=["service", "field", "in the DGD", "here", "why"])
