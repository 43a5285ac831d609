"""From log events to a verdict: which NIXL backend, which libfabric provider, is KV really moving over EFA RDMA?

The verdict is evidence-based: ``"efa-rdma"`` needs a line that confirms the efa provider (``Discovered N EFA devices``,
``Opened fabric: efa``, an EFA ``HANDSHAKE``); a silent fallback (LIBFABRIC on tcp/sockets, UCX over tcp) gives
``"tcp-fallback"``; any failure signature gives ``"error"``. Events stream into counters (constant memory).

Example:
    >>> from workshop_lib.logs.parser import classify
    >>> acc = Accumulator()
    >>> for no, line in enumerate(["Discovered 1 socket devices (TCP fallback)",
    ...                            "Using simplified topology for sockets devices"], 1):
    ...     acc.add(classify(line, no))
    >>> d = acc.diagnosis(["<stream>"], 2)
    >>> d.verdict, d.libfabric_provider, d.efa_devices
    ('tcp-fallback', 'sockets', 0)
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from workshop_lib.logs import patterns as P
from workshop_lib.logs.codes import CODE_LAYER, ERROR_CODES, LAYER_OF
from workshop_lib.logs.parser import Event
from workshop_lib.logs.result import Diagnosis

MAX_ERRORS = 50
EXPLICIT_BACKEND = {"nixl.backend_instantiated", "nixl.backend_selected", "trtllm.backend", "nixlbench.backend",
                     "trtllm.backend_fallback"}
STRONG_PROVIDER = {"libfabric.opened_fabric", "nixl.efa_devices", "nixl.socket_devices", "nixl.sockets_topology",
                    "nixl.rail_created", "efa.handshake", "efa.peer_host", "libfabric.provider"}
_RAIL_EVENTS = {"nixl.connection_created", "nixl.self_connection", "nixl.rails_serialized"}
HANDSHAKE_EVENTS = {"efa.handshake", "nixl.handshake_stored"}  # EFA (libfabric) and NIXL 1.x handshakes
_RAIL_INDEX_EVENTS = {"nixl.rail_hmem", "nixl.rail_no_hmem"}  # INFO lines of NIXL 0.9.0 naming a rail index
HELD_CODES = {"NO_GPUDIRECT_RAIL"}  # decided once the provider is known (expected on tcp/sockets rails)
# NIXL log wording -> the NIXL release line that prints it (when no "NIXL version" line is there)
_NIXL_FORMAT = {"and loaded backend ": "0.9.x", "and loaded ": "<=0.8", "backend ": "1.x"}
_NIXL_1X_EVENTS = {"nixl.rail_created", "nixl.handshake_stored", "nixl.connection_state"}
_VERSION_EVENTS = {"nixl.version": "nixl", "ucx.version": "ucx", "libfabric.version": "libfabric",
                   "vllm.version": "vllm", "trtllm.version": "trtllm"}
# Events whose detail (a version, the plugin directory) the accumulator reads from their first line only (setdefault):
# a later line's value changes nothing, so it does not key a line in the fast scan (logs/shapes.py).
FIRST_DETAIL_ONLY = frozenset({*_VERSION_EVENTS, "nixl.plugin_dir"})
_PATH_RE = re.compile(r"(?:loaded from|path:)\s*(\S+?)\)?$")
_METRIC_VALUE_RE = re.compile(r"\s([-+\d.eE]+|NaN)\s*$")
MAX_SET = 1024  # cap on rail indices / metric names kept (bounded memory on any input)


def _where(ev: Event) -> str:
    return f"{ev.source}:{ev.line}: {ev.text}"


def tl_classes(transport: str | None) -> tuple[str, ...]:
    """The transport classes of a UCX line's ``tl/device`` names (``"rc_mlx5,tcp"`` -> rdma, tcp).

    Example:
        >>> tl_classes("cuda_ipc,rc_mlx5,tcp")
        ('gpu', 'rdma', 'tcp')
    """
    return tuple(_tl_class(tl) for tl in transport.split(",")) if transport else ()


def ucx_table_op(text: str) -> str:
    """The operation a UCX_PROTO_INFO table header names: ``rma`` (remote memory read/write: the KV data path) or
    ``other`` (active messages: the control path)."""
    return "rma" if "remote memory" in text else "other"


def _tl_class(tl: str) -> str:
    if tl in P.UCX_RDMA_TLS or tl.startswith(("rc_", "dc_", "ud_")):
        return "rdma"
    if tl in P.UCX_GPU_TLS:
        return "gpu"
    if tl == "tcp":
        return "tcp"
    return "shm" if tl in P.UCX_SHM_TLS else "other"


def only_notes_a_plugin(ev: Event) -> bool:
    """True for a plugin that failed to load as an optional one (:meth:`Accumulator.add` notes the plugin and stops:
    no backend, provider or handshake comes from such a line)."""
    return ev.event == "nixl.plugin_load_failed" and bool(ev.backend)


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
        self.last_generic: _ErrorEntry | None = None
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
        if ev.code and ev.code in HELD_CODES:
            self.no_hmem = self.no_hmem or ev
        elif ev.code:
            self._add_error(ev)
        if ev.detail is not None:
            self._add_detail(e, ev)
        if only_notes_a_plugin(ev):
            if len(self.plugin_failures) < MAX_SET:
                self.plugin_failures.setdefault(ev.backend, ev)
            return
        if e in EXPLICIT_BACKEND and ev.backend:
            self.backend_explicit = (ev.backend.upper(), ev)
        elif ev.backend == "LIBFABRIC" and e != "nixl.plugin_loaded" and self.backend_implicit is None:
            self.backend_implicit = ("LIBFABRIC", ev)
        if e in STRONG_PROVIDER and ev.provider and not (e == "nixl.efa_devices" and not ev.devices):
            self.provider_strong = (ev.provider, ev)
        elif ev.provider and ev.component == "libfabric" and e not in (
                "libfabric.provider_rejected", "libfabric.efa_caps_unsupported", "benign"):
            self.note_weak_provider(ev.provider, ev)
        if e == "libfabric.provider_rejected" and ev.provider and ev.provider not in P.LAYERED_PROVIDERS:
            if len(self.rejected) < MAX_SET:
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
                self.ucx_table_header(ev.source, ucx_table_op(text))
            elif table:
                self.ucx_table_row(ev.source, tl_classes(ev.transport), ev)
            else:  # KV bytes move by remote memory read/write (RMA); active messages are only the control path
                for cls in tl_classes(ev.transport):
                    (self.ucx_rma if "rma(" in text else self.ucx).setdefault(cls, ev)

    def ucx_table_header(self, source: str, op: str) -> None:
        """A UCX_PROTO_INFO table header: the rows after it (in this source) carry ``op``."""
        self._ucx_op[source] = op

    def ucx_table_row(self, source: str, classes: tuple[str, ...], ev: object) -> None:
        """A UCX_PROTO_INFO table row: its transport classes count for the operation of the header before it
        (the first evidence per class is kept). ``ev`` may be a function giving the event (built only if kept)."""
        target = self.ucx_rma if self._ucx_op.get(source) == "rma" else self.ucx
        for cls in classes:
            if cls not in target:
                ev = ev() if callable(ev) else ev
                target[cls] = ev

    def ucx_knows(self, classes: tuple[str, ...]) -> bool:
        """True when a table row of these classes can change nothing (both tables hold them already)."""
        return all(c in self.ucx and c in self.ucx_rma for c in classes)

    def note_weak_provider(self, provider: str, ev: Event) -> None:
        """A provider named in a libfabric line, moved to "last seen" (at most MAX_SET names: bounded memory)."""
        pw = self.provider_weak
        if pw.pop(provider, None) is not None or len(pw) < MAX_SET:
            pw[provider] = ev

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
        last = self.last_generic
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
        self.last_generic = entry if code == "GENERIC_ERROR" else None

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
    spec = ERROR_CODES[x.code]
    msg = x.ev.text
    if x.count > 1:
        msg += f" [{x.count} lines]"
    if multi:
        msg = f"{Path(x.ev.source).name}: {msg}"
    layer = CODE_LAYER.get(x.code) or LAYER_OF.get(x.ev.component, LAYER_OF[None])
    cause = f"unrecognised error in {layer}" if x.code == "GENERIC_ERROR" else spec.title
    return {"code": x.code, "line": int(x.ev.line), "message": msg, "fix": spec.fix, "layer": layer, "cause": cause}
