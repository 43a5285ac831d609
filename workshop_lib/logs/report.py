"""Plain-text rendering of diagnoses and nixlbench results for the CLI (pure functions: data in, text out).

Example:
    >>> from workshop_lib.logs.parser import parse_lines
    >>> from workshop_lib.logs.diagnose import diagnose
    >>> print(render_diagnosis(diagnose(parse_lines(["Backend UCX was instantiated"]))).splitlines()[-2])
    verdict: ucx
"""

from __future__ import annotations

from workshop_lib.logs.nixlbench import NixlbenchResult
from workshop_lib.logs.result import Diagnosis, MultiDiagnosis
from workshop_lib.table import text

EXIT_CODES = {"efa-rdma": 0, "ucx": 0, "unknown": 0, "error": 3, "tcp-fallback": 4}


def _fmt(v: object) -> str:
    return "-" if v is None else str(v)


def render_diagnosis(d: Diagnosis, title: str | None = None) -> str:
    """A short key/value table, the errors with their fixes, notes, then the verdict and its evidence line."""
    out = [f"== {title}"] if title else []
    for k in ("nixl_backend", "libfabric_provider", "efa_devices", "data_rails", "handshakes",
              "prefill_router_active"):
        out.append(f"  {k:<22} {_fmt(getattr(d, k))}")
    for e in d.errors:
        out.append(f"  ERROR {e['code']} (line {e['line']}): {e['message']}")
        out.append(f"        fix: {e['fix']}")
    out.extend(f"  note: {n}" for n in d.notes)
    seen = d.versions.get("versions") if d.versions else None
    if seen or (d.versions or {}).get("nixl_log_format"):
        vs = ", ".join(f"{k} {v}" for k, v in (seen or {}).items())
        out.append(f"  versions: {vs or '-'} (NIXL log wording {d.versions.get('nixl_log_format') or '-'})")
    out.append(f"verdict: {d.verdict}")
    out.append(f"evidence: {_fmt(d.evidence)}")
    return "\n".join(out)


def render_checks(rows: list[dict]) -> str:
    return "\n".join(f"  {r['status']:<4}  {r['check']}: {r['detail']}" for r in rows)


def render_pods(md: MultiDiagnosis) -> str:
    """The per-pod table (one line per pod) and the combined verdict's summary."""
    rows = md.pod_rows()
    cols = ("pod", "verdict", "nixl_backend", "libfabric_provider", "efa_devices", "data_rails", "handshakes", "errors",
            "first_error")
    lines = ["  " + line for line in text([{c: _fmt(r[c]) for c in cols} for r in rows], cols, width=None).splitlines()]
    s = md.summary()
    lines.append(f"  combined verdict: {s['verdict']} ({s['text'] or 'no pods'})")
    return "== pods\n" + "\n".join(lines)


def render_multi(md: MultiDiagnosis) -> str:
    parts = [render_diagnosis(d, path) for path, d in md.per_file.items()]
    parts.append(render_diagnosis(md.combined, "combined (all files)"))
    parts.append(render_pods(md))
    parts.append("== checks across files\n" + render_checks(md.check_rows))
    return "\n\n".join(parts)


def render_nixlbench(r: NixlbenchResult) -> str:
    keys = ["backend", "op", "mem", "role", "hostname", "scheme", "mode", "num_iter", "start_block_size",
            "max_block_size", "total_buffer_size"]
    out = [f"  {k:<18} {r.config[k]}" for k in keys if k in r.config]
    if r.table.empty:
        out.append("no result rows (a target-side log prints the banner only)")
    else:
        out.append(r.table.to_string(index=False))  # pandas keeps nixlbench's full precision (table.text rounds)
    return "\n".join(out)
