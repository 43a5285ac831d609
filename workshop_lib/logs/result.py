"""What a diagnosis says: the instructors' JSON contract (:class:`Diagnosis`), several pods or files at once
(:class:`MultiDiagnosis`), the combined verdict (:func:`combine`) and the cross-file checks (:func:`cross_checks`).

Example:
    >>> d = Diagnosis("UCX", None, None, None, 0, False, [], "ucx")
    >>> sorted(d.to_dict()) == sorted(CONTRACT_KEYS)
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas only where a DataFrame is asked for (the CLI's JSON and text paths never import it)
    import pandas as pd

VERDICTS = ("efa-rdma", "tcp-fallback", "ucx", "error", "unknown")
CONTRACT_KEYS = ("nixl_backend", "libfabric_provider", "efa_devices", "data_rails", "handshakes",
                 "prefill_router_active", "errors", "verdict")


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
