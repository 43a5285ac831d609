"""From log events to a verdict: which NIXL backend, which libfabric provider, is KV really moving over EFA RDMA?

The verdict is evidence-based: ``"efa-rdma"`` needs a line that confirms the efa provider (``Discovered N EFA devices``,
``Opened fabric: efa``, an EFA ``HANDSHAKE``); a silent fallback (LIBFABRIC on tcp/sockets, UCX over tcp) gives
``"tcp-fallback"``; any failure signature gives ``"error"``. Events stream into counters (constant memory).

Example:
    >>> from workshop_lib.logs.parser import parse_lines
    >>> d = diagnose(parse_lines(["Discovered 1 socket devices (TCP fallback)",
    ...                           "Using simplified topology for sockets devices"]))
    >>> d.verdict, d.libfabric_provider, d.efa_devices
    ('tcp-fallback', 'sockets', 0)
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from workshop_lib.logs import patterns as P
from workshop_lib.logs.parser import COLUMNS, Event, ParseResult, classify
from workshop_lib.logs.scan import FileScan

if TYPE_CHECKING:  # pandas only where a DataFrame is asked for (the CLI's JSON and text paths never import it)
    import pandas as pd

VERDICTS = ("efa-rdma", "tcp-fallback", "ucx", "error", "unknown")
CONTRACT_KEYS = ("nixl_backend", "libfabric_provider", "efa_devices", "data_rails", "handshakes",
                 "prefill_router_active", "errors", "verdict")
MAX_ERRORS = 50
_EXPLICIT_BACKEND = {"nixl.backend_instantiated", "nixl.backend_selected", "trtllm.backend", "nixlbench.backend",
                     "trtllm.backend_fallback"}
_STRONG_PROVIDER = {"libfabric.opened_fabric", "nixl.efa_devices", "nixl.socket_devices", "nixl.sockets_topology",
                    "nixl.rail_created", "efa.handshake", "efa.peer_host", "libfabric.provider"}
_RAIL_EVENTS = {"nixl.connection_created", "nixl.self_connection", "nixl.rails_serialized"}
HANDSHAKE_EVENTS = {"efa.handshake", "nixl.handshake_stored"}  # EFA (libfabric) and NIXL 1.x handshakes
_RAIL_INDEX_EVENTS = {"nixl.rail_hmem", "nixl.rail_no_hmem"}  # INFO lines of NIXL 0.9.0 naming a rail index
_HELD_CODES = {"NO_GPUDIRECT_RAIL"}  # decided once the provider is known (expected on tcp/sockets rails)
# NIXL log wording -> the NIXL release line that prints it (when no "NIXL version" line is there)
_NIXL_FORMAT = {"and loaded backend ": "0.9.x", "and loaded ": "<=0.8", "backend ": "1.x"}
_NIXL_1X_EVENTS = {"nixl.rail_created", "nixl.handshake_stored", "nixl.connection_state"}
_VERSION_EVENTS = {"nixl.version": "nixl", "ucx.version": "ucx", "libfabric.version": "libfabric",
                   "vllm.version": "vllm", "trtllm.version": "trtllm"}
_PATH_RE = re.compile(r"(?:loaded from|path:)\s*(\S+?)\)?$")
_METRIC_VALUE_RE = re.compile(r"\s([-+\d.eE]+|NaN)\s*$")
MAX_SET = 1024  # cap on rail indices / metric names kept (bounded memory on any input)


def _where(ev: Event) -> str:
    return f"{ev.source}:{ev.line}: {ev.text}"


def _tl_class(tl: str) -> str:
    if tl in P.UCX_RDMA_TLS or tl.startswith(("rc_", "dc_", "ud_")):
        return "rdma"
    if tl in P.UCX_GPU_TLS:
        return "gpu"
    if tl == "tcp":
        return "tcp"
    return "shm" if tl in P.UCX_SHM_TLS else "other"


@dataclass
class _ErrorEntry:
    code: str
    ev: Event
    count: int = 1
    last_line: int = 0


class Accumulator:
    """Consumes events one at a time and keeps only counters, first evidence lines and a capped error list."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.backend_explicit: tuple[str, Event] | None = None
        self.backend_implicit: tuple[str, Event] | None = None
        self.provider_strong: tuple[str, Event] | None = None
        self.provider_weak: dict[str, Event] = {}
        self.rejected: set[str] = set()
        self.efa_devices: tuple[int, Event] | None = None
        self.no_efa: Event | None = None
        self.rails: tuple[int, Event] | None = None
        self.handshakes = 0
        self.handshake_ev: Event | None = None
        self.router: Event | None = None
        self.router_pending: Event | None = None
        self.ucx: dict[str, Event] = {}  # transport class -> first evidence (control path and plain UCX lines)
        self.ucx_rma: dict[str, Event] = {}  # the same for rows of "remote memory read/write" tables (the data path)
        self._ucx_op: dict[str, str] = {}  # source -> operation of the UCX_PROTO_INFO table being read
        self.caps: Event | None = None
        self.plugin_failures: dict[str, Event] = {}  # optional NIXL plugins that did not load (INFO lines)
        self.errors: dict[tuple[str, str], _ErrorEntry] = {}
        self.errors_dropped = 0
        self._last_generic: _ErrorEntry | None = None
        self.versions: dict[str, str] = {}  # component -> version (first seen)
        self.loaded_from: dict[str, str] = {}  # component -> library / plugin path (first seen)
        self.nixl_format: str | None = None
        self.rail_ids: set[int] = set()
        self.no_hmem: Event | None = None
        self.metrics: dict[str, float] = {}  # vllm:nixl_* metric -> largest value seen (counters only grow)

    def add(self, ev: Event) -> None:  # noqa: C901 - one flat dispatch on the event name
        e = ev.event
        if e != "line":
            self.counts[e] += 1
        if ev.code and ev.code in _HELD_CODES:
            self.no_hmem = self.no_hmem or ev
        elif ev.code:
            self._add_error(ev)
        if ev.detail is not None:
            self._add_detail(e, ev)
        if e == "nixl.plugin_load_failed" and ev.backend:
            self.plugin_failures.setdefault(ev.backend, ev)
            return
        if e in _EXPLICIT_BACKEND and ev.backend:
            self.backend_explicit = (ev.backend.upper(), ev)
        elif ev.backend == "LIBFABRIC" and e != "nixl.plugin_loaded" and self.backend_implicit is None:
            self.backend_implicit = ("LIBFABRIC", ev)
        if e in _STRONG_PROVIDER and ev.provider and not (e == "nixl.efa_devices" and not ev.devices):
            self.provider_strong = (ev.provider, ev)
        elif ev.provider and ev.component == "libfabric" and e not in (
                "libfabric.provider_rejected", "libfabric.efa_caps_unsupported", "benign"):
            self.provider_weak.pop(ev.provider, None)
            self.provider_weak[ev.provider] = ev  # keeps "last seen" order
        if e == "libfabric.provider_rejected" and ev.provider and ev.provider not in P.LAYERED_PROVIDERS:
            self.rejected.add(ev.provider)
        elif e == "libfabric.efa_caps_unsupported" and self.caps is None and (ev.provider or "").startswith("efa"):
            self.caps = ev
        if e == "nixl.efa_devices" and ev.devices is not None:
            if self.efa_devices is None or ev.devices >= self.efa_devices[0]:
                self.efa_devices = (int(ev.devices), ev)
        elif e in ("nixl.socket_devices", "nixl.no_devices") and self.no_efa is None:
            self.no_efa = ev
        if e in _RAIL_EVENTS and ev.rails is not None and (self.rails is None or ev.rails > self.rails[0]):
            self.rails = (int(ev.rails), ev)
        if e in HANDSHAKE_EVENTS:
            self.handshakes += 1
            self.handshake_ev = self.handshake_ev or ev
        elif e == "dynamo.prefill_router_active":
            self.router = self.router or ev
        elif e == "dynamo.prefill_model_detected":
            self.router_pending = self.router_pending or ev
        elif e == "ucx.transport":
            text = ev.text
            table = "|" in text
            if table and "cfg#" in text:  # a UCX_PROTO_INFO table header: which operation the rows below carry
                self._ucx_op[ev.source] = "rma" if "remote memory" in text else "other"
                return
            # KV bytes move by remote memory read/write (RMA); active messages are only the control path
            rma = self._ucx_op.get(ev.source) == "rma" if table else "rma(" in text
            for tl in (ev.transport or "").split(",") if ev.transport else ():
                (self.ucx_rma if rma else self.ucx).setdefault(_tl_class(tl), ev)

    def _add_detail(self, e: str, ev: Event) -> None:
        """Versions, plugin paths, the NIXL log format, rail indices and metric values (all idempotent per line, so
        the fast scanner may skip exact repeats)."""
        detail = ev.detail or ""
        comp = _VERSION_EVENTS.get(e)
        if comp:
            self.versions.setdefault(comp, detail)
            m = _PATH_RE.search(ev.text)
            if m:
                self.loaded_from.setdefault(comp, m.group(1))
        elif e == "nixl.plugin_dir":
            self.loaded_from.setdefault("nixl_plugins", detail)
        elif e == "nixl.plugin_loaded" and self.nixl_format is None:
            self.nixl_format = _NIXL_FORMAT.get(detail)
        elif e in _RAIL_INDEX_EVENTS and detail.isdigit() and len(self.rail_ids) < MAX_SET:
            self.rail_ids.add(int(detail))
        elif e == "vllm.metric" and (len(self.metrics) < MAX_SET or detail in self.metrics):
            m = _METRIC_VALUE_RE.search(ev.text)
            try:
                val = float(m.group(1)) if m else None
            except ValueError:
                val = None
            if val is not None and val == val:
                self.metrics[detail] = max(val, self.metrics.get(detail, val))

    def _add_error(self, ev: Event) -> None:
        code = ev.code or "GENERIC_ERROR"
        last = self._last_generic
        if code == "GENERIC_ERROR" and last and last.ev.source == ev.source and ev.line == last.last_line + 1:
            last.count, last.last_line = last.count + 1, ev.line  # one multi-line error report (a traceback)
            return
        key = (code, "" if code != "GENERIC_ERROR" else ev.text[:80])
        entry = self.errors.get(key)
        if entry:
            entry.count += 1
            entry.last_line = ev.line
        elif len(self.errors) < MAX_ERRORS:
            entry = self.errors[key] = _ErrorEntry(code, ev, 1, ev.line)
        else:
            self.errors_dropped += 1
        self._last_generic = entry if code == "GENERIC_ERROR" else None

    # --- results ---------------------------------------------------------------------------------------------
    def provider(self) -> tuple[str | None, Event | None, bool]:
        """(provider, evidence, confirmed)."""
        if self.provider_strong:
            return self.provider_strong[0], self.provider_strong[1], True
        for prov in reversed(self.provider_weak):
            if prov not in self.rejected:
                return prov, self.provider_weak[prov], False
        return None, None, False

    def backend(self) -> tuple[str | None, Event | None]:
        got = self.backend_explicit or self.backend_implicit
        return (got[0], got[1]) if got else (None, None)

    def diagnosis(self, sources: Sequence[str], lines: int) -> Diagnosis:
        backend, b_ev = self.backend()
        provider, p_ev, confirmed = self.provider()
        prov_norm = "efa" if provider and provider.startswith("efa") else provider
        efa_devices = self.efa_devices[0] if self.efa_devices else (0 if self.no_efa else None)
        ev_of: dict[str, Event | None] = {
            "nixl_backend": b_ev, "libfabric_provider": p_ev,
            "efa_devices": self.efa_devices[1] if self.efa_devices else self.no_efa,
            "data_rails": self.rails[1] if self.rails else None, "handshakes": self.handshake_ev,
            "prefill_router_active": self.router or self.router_pending,
        }
        notes: list[str] = []
        entries = list(self.errors.values())
        if backend in self.plugin_failures:  # the backend in use is the plugin that did not load
            entries.append(_ErrorEntry("NIXL_BACKEND_CREATE_FAILED", self.plugin_failures[backend]))
        elif self.plugin_failures:
            notes.append(f"optional NIXL plugins not loaded here (not used): {', '.join(sorted(self.plugin_failures))}")
        if self.caps and prov_norm != "efa":
            entries.insert(0, _ErrorEntry("EFA_CAPS_UNSUPPORTED", self.caps))
        if self.no_hmem is not None:
            if prov_norm in P.TCP_PROVIDERS:
                notes.append(f"rails without FI_HMEM on {provider} (expected: a TCP rail has no GPUDirect; GPU memory "
                             "is staged through host memory)")
            else:
                entries.append(_ErrorEntry("NO_GPUDIRECT_RAIL", self.no_hmem))
        failed = self.metrics.get("vllm:nixl_num_failed_transfers", 0) + self.metrics.get(
            "vllm:nixl_num_failed_notifications", 0)
        if failed and not any(x.code == "KV_TRANSFER_FAILED" for x in entries):
            notes.append(f"vLLM counts {failed:g} failed NIXL transfers/notifications (vllm:nixl_num_failed_*)")
        errors = [_error_dict(x, len(sources) > 1) for x in entries]
        verdict, v_ev = self._verdict(backend, b_ev, prov_norm, p_ev, confirmed, entries, notes)
        if self.errors_dropped:
            notes.append(f"{self.errors_dropped} more error lines not listed (cap {MAX_ERRORS})")
        if prov_norm in P.TCP_PROVIDERS and verdict == "error":
            notes.append(f"libfabric also fell back to {provider} (TCP): no EFA RDMA even once the error is fixed")
        if backend == "LIBFABRIC" and provider is None:
            notes.append("LIBFABRIC selected but the provider is not in the log: set NIXL_LOG_LEVEL=INFO and "
                         "FI_LOG_LEVEL=info to see 'Discovered N EFA devices' / 'Opened fabric: efa'")
        if self.router_pending and not self.router:
            notes.append("prefill model detected but 'Prefill router activated successfully' never logged")
        return Diagnosis(
            nixl_backend=backend, libfabric_provider=provider, efa_devices=efa_devices,
            data_rails=self.rails[0] if self.rails else (len(self.rail_ids) or None), handshakes=self.handshakes,
            prefill_router_active=self.router is not None, errors=errors, verdict=verdict,
            evidence=_where(v_ev) if v_ev else None, sources=list(sources), lines=lines,
            event_counts=dict(self.counts), notes=notes, versions=self.version_report(),
            field_evidence={k: (_where(v) if v else None) for k, v in ev_of.items()},
        )

    def version_report(self) -> dict:
        """What the log says about versions: each component's version and library/plugin path, and which NIXL log
        wording (release line) the NIXL lines use."""
        fmt = self.nixl_format
        if fmt is None and any(self.counts.get(e) for e in _NIXL_1X_EVENTS):
            fmt = "1.x"
        if "nixl" in self.versions:
            fmt = ".".join(self.versions["nixl"].split(".")[:2]) + ".x"
        return {"versions": dict(self.versions), "loaded_from": dict(self.loaded_from), "nixl_log_format": fmt}

    def _verdict(self, backend: str | None, b_ev: Event | None, provider: str | None, p_ev: Event | None,
                 confirmed: bool, errors: list[_ErrorEntry], notes: list[str]) -> tuple[str, Event | None]:
        if errors:
            fatal = [x for x in errors if x.ev.level == "FATAL"]
            return "error", (fatal or errors)[0].ev
        if backend in ("LIBFABRIC", None) and provider:
            if provider in P.TCP_PROVIDERS:
                sock = self.no_efa if self.no_efa and self.no_efa.event == "nixl.socket_devices" else None
                return "tcp-fallback", sock or p_ev
            if provider == "efa" and confirmed:
                return "efa-rdma", (self.efa_devices[1] if self.efa_devices else self.handshake_ev or p_ev)
            if backend == "LIBFABRIC":
                notes.append(f"provider {provider} seen but efa is not confirmed")
                return "unknown", p_ev
        ucx = self.ucx_rma or self.ucx  # judge the data path when the log shows it
        if backend in ("UCX", None) and ucx:
            if "tcp" in ucx and not ({"rdma", "gpu"} & ucx.keys()):
                return "tcp-fallback", ucx["tcp"]
            if backend == "UCX":
                return "ucx", next(iter(ucx.values()))
        if backend == "UCX":
            if provider == "efa":
                notes.append("the fabric works over efa (fi_* test), but NIXL runs UCX: pass the LIBFABRIC backend")
            return "ucx", b_ev
        return "unknown", b_ev


def _error_dict(x: _ErrorEntry, multi: bool) -> dict:
    spec = P.ERROR_CODES[x.code]
    msg = x.ev.text
    if x.count > 1:
        msg += f" [{x.count} lines]"
    if multi:
        msg = f"{Path(x.ev.source).name}: {msg}"
    layer = P.CODE_LAYER.get(x.code) or P.LAYER_OF.get(x.ev.component, P.LAYER_OF[None])
    cause = f"unrecognised error in {layer}" if x.code == "GENERIC_ERROR" else spec.title
    return {"code": x.code, "line": int(x.ev.line), "message": msg, "fix": spec.fix, "layer": layer, "cause": cause}


@dataclass
class Diagnosis:
    """One diagnosis. ``to_dict()`` gives exactly the instructors' JSON contract (:data:`CONTRACT_KEYS`)."""

    nixl_backend: str | None
    libfabric_provider: str | None
    efa_devices: int | None
    data_rails: int | None
    handshakes: int
    prefill_router_active: bool
    errors: list[dict]
    verdict: str
    evidence: str | None = None
    sources: list[str] = field(default_factory=list)
    lines: int = 0
    event_counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    field_evidence: dict[str, str | None] = field(default_factory=dict)
    versions: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The JSON contract: exactly :data:`CONTRACT_KEYS`."""
        return {k: getattr(self, k) for k in CONTRACT_KEYS}

    def report(self) -> dict:
        """The contract plus what the CLI's ``--json`` adds: versions seen, notes and the verdict's evidence line."""
        return {**self.to_dict(), "versions": self.versions, "notes": list(self.notes), "evidence": self.evidence}

    def table(self) -> pd.DataFrame:
        """One row per contract field: field, value, evidence line."""
        rows = [{"field": k, "value": getattr(self, k), "evidence": self.field_evidence.get(k)}
                for k in CONTRACT_KEYS if k not in ("errors", "verdict")]
        rows.append({"field": "errors", "value": len(self.errors),
                     "evidence": self.errors[0]["message"] if self.errors else None})
        rows.append({"field": "verdict", "value": self.verdict, "evidence": self.evidence})
        import pandas as pd

        return pd.DataFrame(rows, columns=["field", "value", "evidence"])


@dataclass
class MultiDiagnosis:
    """Per-file and per-pod diagnoses, the combined view, and cross-file checks (both sides handshake, same backend...).

    ``per_pod`` has one entry per pod: a file's pod is its ``kubectl logs --prefix`` pod names when it has them, else the
    file itself. The combined verdict is the worst of the pods that show any transport evidence (see :func:`combine`).
    """

    per_file: dict[str, Diagnosis]
    combined: Diagnosis
    check_rows: list[dict]
    per_pod: dict[str, Diagnosis] = field(default_factory=dict)

    @property
    def checks(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self.check_rows, columns=["check", "status", "detail"])

    def pod_rows(self) -> list[dict]:
        """One row per pod: pod, verdict, backend, provider, EFA devices, rails, handshakes, errors, first error."""
        return [{"pod": name, "verdict": d.verdict, "nixl_backend": d.nixl_backend, "libfabric_provider":
                 d.libfabric_provider, "efa_devices": d.efa_devices, "data_rails": d.data_rails,
                 "handshakes": d.handshakes, "errors": len(d.errors),
                 "first_error": d.errors[0]["code"] if d.errors else None} for name, d in self.per_pod.items()]

    def summary(self) -> dict:
        """Which pods are on EFA RDMA, which fell back to TCP, which failed; and the combined verdict."""
        by: dict[str, list[str]] = {v: [] for v in VERDICTS}
        for name, d in self.per_pod.items():
            by[d.verdict].append(name)
        parts = [f"{label}: {', '.join(by[v])}" for v, label in (
            ("efa-rdma", "on EFA RDMA"), ("tcp-fallback", "fell back to TCP"), ("error", "failed"),
            ("ucx", "on UCX"), ("unknown", "no transport evidence")) if by[v]]
        return {"verdict": self.combined.verdict, "on_efa": by["efa-rdma"], "fell_back": by["tcp-fallback"],
                "failed": by["error"], "ucx": by["ucx"], "unknown": by["unknown"], "text": "; ".join(parts)}

    def to_dict(self) -> dict:
        return {"files": {k: v.to_dict() for k, v in self.per_file.items()}, "combined": self.combined.to_dict(),
                "checks": list(self.check_rows), "pods": self.pod_rows(), "summary": self.summary()}


_ORDER = ("error", "tcp-fallback", "unknown", "ucx", "efa-rdma")  # worst first


def combine(pods: Sequence[Diagnosis]) -> str | None:
    """The combined verdict of several pods: the worst verdict among the pods with any transport evidence (a pod
    that logged nothing about NIXL, e.g. the frontend, does not count). None when no pod has evidence.

    Example:
        >>> mk = lambda v, b: Diagnosis(b, None, None, None, 0, False, [], v)
        >>> combine([mk("efa-rdma", "LIBFABRIC"), mk("tcp-fallback", "LIBFABRIC"), mk("unknown", None)])
        'tcp-fallback'
        >>> combine([mk("efa-rdma", "LIBFABRIC"), mk("unknown", None)])
        'efa-rdma'
    """
    relevant = [d.verdict for d in pods if d.verdict != "unknown" or d.nixl_backend or d.libfabric_provider]
    return min(relevant, key=_ORDER.index) if relevant else None


def _events_of(res: ParseResult) -> Iterable[Event]:
    import pandas as pd

    for rec in res.events.to_dict("records"):
        clean = {k: (None if (v is None or v is pd.NA or (isinstance(v, float) and v != v)) else v)
                 for k, v in rec.items() if k in COLUMNS}
        for k in ("line", "devices", "rails", "fi_addr"):
            if clean.get(k) is not None:
                clean[k] = int(clean[k])
        clean["line"] = clean.get("line") or 0
        clean["text"] = clean.get("text") or ""
        clean["event"] = clean.get("event") or "line"
        yield Event(**clean)


def _feed(source: str | Path | ParseResult, accs: Sequence[Accumulator]) -> tuple[str, int]:
    if isinstance(source, ParseResult):
        for ev in _events_of(source):
            for a in accs:
                a.add(ev)
        return source.source, source.lines
    return str(source), feed_file(source, accs)


def _feed_uncached(source: str | Path, accs: Sequence[Accumulator]) -> tuple[str, int]:
    """The reference path: every candidate line classified in full (no caches). Tests compare it with :func:`_feed`."""
    name = str(source)
    scan = FileScan(source)
    for no, raw in scan:
        ev = classify(raw, no, name, prefiltered=True)
        if ev is not None:
            for a in accs:
                a.add(ev)
    return name, scan.lines


def diagnose(*sources: str | Path | ParseResult) -> Diagnosis:
    """One diagnosis over all sources together (files are scanned fast; ParseResults reuse their events).

    Raises:
        LogParseError: a file is missing, a directory or unreadable.
    """
    acc = Accumulator()
    names, total = [], 0
    for s in sources:
        name, n = _feed(s, [acc])
        names.append(name)
        total += n
    return acc.diagnosis(names, total)


MAX_PODS = 256  # pods kept apart in one prefixed file (more are counted in the combined view only)


def _has_pod_prefix(path: str | Path) -> bool:
    """True when the file's first 256 KiB has ``kubectl logs --prefix`` lines (``[pod/NAME/CONTAINER] ``)."""
    try:
        with open(path, "rb") as f:
            head = f.read(256 << 10)
    except OSError:
        return False
    return head.startswith(b"[pod/") or b"\n[pod/" in head


def _feed_pods(path: str | Path, combined: Accumulator | None) -> tuple[str, int, dict[str, Accumulator]]:
    """Classify a prefixed file line by line (exact; the template cache cannot tell pods apart) into one accumulator
    per pod, and into ``combined``."""
    name = str(path)
    pods: dict[str, Accumulator] = {}
    scan = FileScan(path)
    for no, raw in scan:
        ev = classify(raw, no, name, prefiltered=True)
        if ev is None:
            continue
        key = ev.pod or Path(name).name
        acc = pods.get(key)
        if acc is None and len(pods) < MAX_PODS:
            acc = pods[key] = Accumulator()
        if acc is not None:
            acc.add(ev)
        if combined is not None:
            combined.add(ev)
    return name, scan.lines, pods


def expand_paths(paths: Sequence[str | Path]) -> list[Path]:
    """Files as given; a directory gives its regular files (sorted, hidden files skipped, not recursive).

    Raises:
        LogParseError: a directory with no files in it.
    """
    from workshop_lib.errors import LogParseError

    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files = sorted(x for x in p.iterdir() if not x.name.startswith(".") and x.is_file())
            if not files:
                raise LogParseError(str(p), "directory has no log files", "save logs into it: kubectl logs POD > DIR/POD.log")
            out.extend(files)
        else:
            out.append(p)
    return out


def diagnose_files(paths: Sequence[str | Path]) -> MultiDiagnosis:
    """Diagnose each file (directories expand to their files), each pod, and all of them together, then check the
    sides against each other. The combined verdict is :func:`combine` of the pods when there are several."""
    from workshop_lib.logs.parser import check_readable

    files = expand_paths(paths)
    for p in files:
        check_readable(p)  # before anything opens it: a FIFO would block, /dev/zero never ends
    combined = Accumulator()
    per: dict[str, Diagnosis] = {}
    pods: dict[str, Diagnosis] = {}
    total = 0
    for p in files:
        if _has_pod_prefix(p):
            name, n, accs = _feed_pods(p, combined)
            own = Accumulator()  # the file's own view: re-read through the pods' events would double memory; rescan
            _feed(p, [own])
            for pod, acc in accs.items():
                pods[pod if pod not in pods else f"{Path(name).name}:{pod}"] = acc.diagnosis([name], n)
        else:
            own = Accumulator()
            name, n = _feed(p, [own] if len(files) == 1 else [own, combined])
            if len(files) == 1:
                combined = own  # one file: the combined view is that file's
        per[name] = own.diagnosis([name], n)
        if not _has_pod_prefix(p):
            pods[Path(name).name if Path(name).name not in pods else name] = per[name]
        total += n
    comb = combined.diagnosis(list(per), total)
    if len(pods) > 1:
        worst = combine(list(pods.values()))
        if worst and worst != comb.verdict:
            comb.notes.append(f"combined verdict from the pods ({worst}); all lines together read {comb.verdict}")
            comb.verdict = worst
    return MultiDiagnosis(per, comb, cross_checks(per if len(per) > 1 or not pods else pods), pods)


def cross_checks(per: dict[str, Diagnosis]) -> list[dict]:
    """PASS/FAIL/WARN rows comparing the files (e.g. prefill and decode pods). Keys: check, status, detail."""
    rows: list[dict] = []

    def add(check: str, status: str, detail: str) -> None:
        rows.append({"check": check, "status": status, "detail": detail})

    def show(attr: str) -> str:
        return ", ".join(f"{Path(k).name}={getattr(d, attr)}" for k, d in per.items())

    backends = {d.nixl_backend for d in per.values()}
    add("same NIXL backend on every side",
        "PASS" if len(backends) == 1 and None not in backends else ("WARN" if backends <= {None} | backends and
                                                                      len(backends - {None}) <= 1 else "FAIL"),
        show("nixl_backend"))
    providers = {d.libfabric_provider for d in per.values()} - {None}
    add("same libfabric provider on every side", "PASS" if len(providers) == 1 and all(
        d.libfabric_provider for d in per.values()) else ("FAIL" if len(providers) > 1 else "WARN"),
        show("libfabric_provider"))
    hs = [d.handshakes for d in per.values()]
    add("EFA handshakes on each side", "PASS" if all(hs) and len(set(hs)) == 1 else ("WARN" if all(hs) else "FAIL"),
        show("handshakes") + " (the seed workshop sees 8 and 8)")
    rails = {d.data_rails for d in per.values()} - {None}
    add("same data rail count", "PASS" if len(rails) == 1 and all(d.data_rails for d in per.values()) else ("FAIL" if len(rails) > 1 else "WARN"), show("data_rails"))
    n_err = sum(len(d.errors) for d in per.values())
    add("no errors on any side", "PASS" if n_err == 0 else "FAIL", show("verdict"))
    add("every side on EFA RDMA", "PASS" if all(d.verdict == "efa-rdma" for d in per.values()) else "FAIL",
        show("verdict"))
    return rows


from workshop_lib.logs.fastscan import feed_file  # noqa: E402 - fastscan imports this module's names lazily
