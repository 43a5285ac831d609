"""Predict, then run: the learner writes a guess before a measurement; :func:`grade` compares it with what was measured.

A numeric prediction is "close" within a factor (default 2: these are order-of-magnitude lessons), a categorical one
when it names the same thing (case-insensitive). No prediction (``None``, the headless default) is never an error:
the grade says what was measured, so a papermill run reads the same lesson.

Each notebook's question is in :data:`QUESTIONS`, with the function that pulls the measured answer out of the table
the notebook already shows (pure functions, tested).

Example:
    >>> grade(50, 61.0, unit="ms").verdict
    'close'
    >>> grade("ucx", "tcp").verdict
    'off'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workshop_lib.k8s import EFA_RESOURCE

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


@dataclass(frozen=True)
class Grade:
    """A prediction against the measured value."""

    question: str
    prediction: Any
    measured: Any
    unit: str
    verdict: str  # "close" | "off" | "no prediction" | "not measured"
    note: str

    def __str__(self) -> str:
        m = f"{self.measured}{(' ' + self.unit) if self.unit else ''}"
        if self.verdict == "no prediction":
            return f"{self.question}\n  measured: {m} (set the prediction variable above and rerun to test yourself)"
        if self.verdict == "not measured":
            return f"{self.question}\n  nothing was measured in this run: {self.note}"
        p = f"{self.prediction}{(' ' + self.unit) if self.unit else ''}"
        return f"{self.question}\n  you predicted {p}; measured {m}: {self.verdict.upper()}. {self.note}"

    def _repr_markdown_(self) -> str:
        return "\n\n".join(f"**{ln}**" if i == 0 else ln for i, ln in enumerate(str(self).splitlines()))


def grade(prediction: Any, measured: Any, *, question: str = "", unit: str = "", factor: float = 2.0,
          explain: str = "") -> Grade:
    """Compare ``prediction`` with ``measured``: numbers within ``factor`` of each other, or the same name.

    Raises:
        ValueError: ``factor`` is below 1, or a numeric ``measured`` meets a prediction that is not a number.
    """
    if factor < 1:
        raise ValueError(f"factor {factor} must be >= 1 (2 means within 2x either way)")
    if measured is None:
        return Grade(question, prediction, None, unit, "not measured", explain or "the step did not run")
    if prediction is None:
        return Grade(question, None, measured, unit, "no prediction", explain)
    if isinstance(measured, (int, float)) and not isinstance(measured, bool):
        try:
            p = float(prediction)
        except (TypeError, ValueError):
            raise ValueError(f"prediction {prediction!r} is not a number; this question wants a number"
                             f"{' in ' + unit if unit else ''}") from None
        m = float(measured)
        if p <= 0 or m <= 0:
            ok = p == m
        else:
            ok = max(p, m) / min(p, m) <= factor
        ratio = f"measured/predicted = {m / p:.2g}. " if p else ""
        return Grade(question, prediction, measured, unit, "close" if ok else "off", ratio + explain)
    ok = str(prediction).strip().lower() == str(measured).strip().lower()
    return Grade(question, prediction, measured, unit, "close" if ok else "off", explain)


# ------------------------------------------------------------------------------------------------ measured answers
def efa_requested(view_parts: pd.DataFrame) -> int | None:
    """EFA devices one worker requests, from :func:`workshop_lib.lessons.dgd.annotate` rows."""
    rows = view_parts[view_parts["part"].str.endswith(EFA_RESOURCE)]
    return int(rows["value"].iloc[0]) if len(rows) else None


def recorded_value(records: dict[str, Any], *names: str) -> Any:
    """The first of ``names`` that the notebook recorded with a value (records are what its tests assert on)."""
    return next((records[n] for n in names if records.get(n) not in (None, "")), None)


def best_block(transfer: pd.DataFrame, backend: str | None = None) -> str | None:
    """The block size with the highest GB/s (e.g. ``'1M'``) in a transfer table (``block_size``, ``gbps``)."""
    from workshop_lib.parsing import format_size

    t = transfer if backend is None else transfer[transfer["backend"] == backend]
    if t.empty or "gbps" not in t or "block_size" not in t:
        return None
    return format_size(int(t.loc[t["gbps"].idxmax(), "block_size"]))


QUESTIONS: dict[str, str] = {
    "01": "How many EFA devices will each worker of the cross-node graph request on a p5.48xlarge?",
    "02": "What time to first token (ms) will the completion show?",
    "03": "Which libfabric provider will the local LIBFABRIC pair end up on (efa, tcp or sockets)?",
    "04": "Which block size will move the most GB/s in the KV-transfer sweep (4K, 64K or 1M)?",
}


EXPLAIN: dict[str, str] = {
    "01": "One data rail per EFA device: the worker asks for all of its node's EFA, though VRAM uses only 4 of them.",
    "02": "On the lab TTFT is routing + prefill on a CPU + the KV hand-off; on a P5 with LIBFABRIC it is tens of ms.",
    "03": "No EFA here: NIXL finds a sockets device (TCP fallback) and libfabric runs it on its tcp provider.",
    "04": "Small blocks are latency-bound on any transport; bandwidth grows with block size until the link saturates.",
}


def ask(section: str, prediction: Any, cfg: Any = None, transfer: pd.DataFrame | None = None,
        records: dict[str, Any] | None = None) -> Grade:
    """Grade notebook ``section``'s :data:`QUESTIONS` entry against what this run measured.

    01 reads the rendered cross-node DGD (``cfg``), 02 and 03 the notebook's records, 04 the transfer table.
    """
    from workshop_lib.record import recorded

    if section not in QUESTIONS:
        raise ValueError(f"no prediction question for section {section!r}: use one of {', '.join(QUESTIONS)}")
    recs = recorded() if records is None else records
    q = QUESTIONS[section]
    if section == "01":
        from workshop_lib.lessons.dgd import dgd_view

        measured: Any = efa_requested(dgd_view(cfg.replace(kv_backend="LIBFABRIC"), "cross-node").parts)
        return grade(prediction, measured, question=q, unit="EFA devices", factor=1.0, explain=EXPLAIN[section])
    if section == "02":
        measured = recorded_value(recs, "completion_ttft_ms")
        return grade(prediction, measured, question=q, unit="ms", explain=EXPLAIN[section])
    if section == "03":
        measured = recorded_value(recs, "initiator_provider", "target_provider")
        fallback = {"tcp", "sockets"}  # NIXL calls the device "sockets"; libfabric's provider under it is tcp
        if isinstance(prediction, str) and str(measured) in fallback and prediction.strip().lower() in fallback:
            measured = prediction.strip().lower()
        return grade(prediction, measured, question=q, explain=EXPLAIN[section])
    measured = best_block(transfer) if transfer is not None else None
    return grade(prediction, measured, question=q, explain=EXPLAIN[section])
