"""Per-request records and their summaries (mean and percentiles), shared by the serving client and aiperf reader.

All latencies are milliseconds. Percentiles use linear interpolation between closest ranks (numpy's default), the
same method aiperf reports, so the two tools' p50/p90/p99 are comparable.

Example:
    >>> summarize([10.0, 20.0, 30.0, 40.0])
    {'mean': 25.0, 'p50': 25.0, 'p90': 37.0, 'p99': 39.7}
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

PERCENTILES = (50, 90, 99)
STAT_KEYS = ("mean", "p50", "p90", "p99")
METRICS = ("ttft", "itl", "tpot", "e2e", "gap")


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) of ``values``, linear interpolation between the two nearest ranks (numpy's
    default); None when there are no values. The one percentile of the kit (serving sweeps and NIXL pair rows).

    >>> percentile([4.0, 1.0, 3.0, 2.0], 50), percentile([], 99)
    (2.5, None)
    """
    n = len(values)
    if n == 0:
        return None
    xs = sorted(values)  # O(n) on sorted input
    pos = (n - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, n - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def summarize(values: Iterable[float], ndigits: int = 3) -> dict[str, float]:
    """Mean, p50, p90 and p99 of ``values`` (NaN for each when there are none), rounded to ``ndigits``."""
    vals = sorted(values)
    if not vals:
        return {k: math.nan for k in STAT_KEYS}
    out = {"mean": sum(vals) / len(vals)}
    out.update({f"p{q}": p for q in PERCENTILES if (p := percentile(vals, q)) is not None})
    return {k: round(v, ndigits) for k, v in out.items()}


@dataclass(slots=True)
class RequestRecord:
    """One request as the client saw it. Times are ``perf_counter_ns`` values; derived values are in ms.

    ``chunk_ns`` holds the arrival time of every SSE event that carried output text; ``output_tokens`` comes from
    the server's ``usage`` when it sent one (``tokens_from_usage``), else it is the number of such events.
    """

    concurrency: int
    index: int
    start_ns: int
    end_ns: int = 0
    chunk_ns: list[int] = field(default_factory=list)
    output_tokens: int = 0
    tokens_from_usage: bool = False
    status: int | None = None
    error: str | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def ttft_ms(self) -> float:
        """Time to the first output event; NaN when none arrived."""
        return (self.chunk_ns[0] - self.start_ns) / 1e6 if self.chunk_ns else math.nan

    @property
    def e2e_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6 if self.end_ns else math.nan

    @property
    def gaps_ms(self) -> list[float]:
        """Every gap between consecutive output events (the inter-token latencies this request saw)."""
        c = self.chunk_ns
        return [(c[i] - c[i - 1]) / 1e6 for i in range(1, len(c))]

    @property
    def itl_ms(self) -> float:
        """Mean gap between this request's text events: (last - first) / (events - 1)."""
        c = self.chunk_ns
        return (c[-1] - c[0]) / 1e6 / (len(c) - 1) if len(c) > 1 else math.nan

    @property
    def tpot_ms(self) -> float:
        """Time per output token after the first: (last event - first event) / (output tokens - 1)."""
        c = self.chunk_ns
        if len(c) < 2 or self.output_tokens < 2:
            return math.nan
        return (c[-1] - c[0]) / 1e6 / (self.output_tokens - 1)

    def to_row(self) -> dict[str, Any]:
        """A flat dict for the per-request DataFrame (no raw timestamp list)."""
        d = asdict(self)
        d.pop("chunk_ns")
        d.update(
            ttft_ms=self.ttft_ms, tpot_ms=self.tpot_ms, e2e_ms=self.e2e_ms, events=len(self.chunk_ns),
            itl_ms=self.itl_ms,
        )
        return d


@dataclass(slots=True)
class LevelSummary:
    """The summary of one concurrency level: the public JSON contract's ``runs[i]``."""

    concurrency: int
    requests: int
    errors: int
    ttft_ms: dict[str, float]
    itl_ms: dict[str, float]
    tpot_ms: dict[str, float]
    e2e_ms: dict[str, float]
    gap_ms: dict[str, float]
    output_tokens_per_s: float
    requests_per_s: float
    duration_s: float
    error_reasons: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_row(self) -> dict[str, Any]:
        """One DataFrame row: ``concurrency, ttft_mean_ms, ttft_p50_ms, ..., errors``."""
        row: dict[str, Any] = {"concurrency": self.concurrency, "requests": self.requests, "errors": self.errors}
        for metric in METRICS:
            stats = getattr(self, f"{metric}_ms")
            row.update({f"{metric}_{k}_ms": stats.get(k, math.nan) for k in STAT_KEYS})
        row.update(output_tokens_per_s=self.output_tokens_per_s, requests_per_s=self.requests_per_s,
                   duration_s=self.duration_s)
        return row


def summarize_level(concurrency: int, records: Sequence[RequestRecord], duration_s: float) -> LevelSummary:
    """Summarize the records of one level measured over ``duration_s`` wall seconds.

    Latency statistics use successful requests only; throughput counts their output tokens over the wall time of
    the level; ``errors`` and ``error_reasons`` count the failed ones by kind.
    """
    ok = [r for r in records if r.ok]
    reasons: dict[str, int] = {}
    for r in records:
        if not r.ok:
            reasons[str(r.error)] = reasons.get(str(r.error), 0) + 1
    gaps = [g for r in ok for g in r.gaps_ms]
    tokens = sum(r.output_tokens for r in ok)
    dur = max(duration_s, 1e-9)
    return LevelSummary(
        concurrency=concurrency,
        requests=len(records),
        errors=len(records) - len(ok),
        ttft_ms=summarize(r.ttft_ms for r in ok if r.chunk_ns),
        itl_ms=summarize(t for r in ok if not math.isnan(t := r.itl_ms)),
        tpot_ms=summarize(t for r in ok if not math.isnan(t := r.tpot_ms)),
        e2e_ms=summarize(r.e2e_ms for r in ok),
        gap_ms=summarize(gaps),
        output_tokens_per_s=round(tokens / dur, 3) if records else math.nan,
        requests_per_s=round(len(ok) / dur, 3) if records else math.nan,
        duration_s=round(duration_s, 4),
        error_reasons=reasons,
    )
