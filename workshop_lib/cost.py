"""What the EKS GPU nodes cost while the workshop runs: node-hours x price, and a teardown reminder.

Two P5.48xlarge nodes run for the whole workshop and bill by the second whether or not a notebook is using them, so
every eks notebook shows the running total and ends by reminding the attendee to tear down. The price is a parameter
(``PRICE_PER_NODE_HOUR``, USD); the default in :class:`~workshop_lib.config.WorkshopConfig` is an on-demand figure
that attendees should replace with their own (region, reservation, Capacity Block).

Example:
    >>> from datetime import datetime, timedelta, UTC
    >>> now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    >>> est = estimate([now - timedelta(hours=2), now - timedelta(minutes=30)], 55.04, now=now)
    >>> est.node_hours, round(est.total_usd, 2)
    (2.5, 137.6)
    >>> est.per_hour_usd
    110.08
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from workshop_lib.errors import ConfigError
from workshop_lib.k8s import INSTANCE_LABEL

if TYPE_CHECKING:  # pragma: no cover
    from workshop_lib.config import WorkshopConfig

GPU_NODE_LABEL = INSTANCE_LABEL
WORKSHOP_MINUTES = 60  # the four sections: 15 + 15 + 20 + 10


def _aware(ts: datetime | str) -> datetime:
    """A timezone-aware datetime from a datetime or an RFC 3339 string (``2026-03-01T10:00:00Z``).

    >>> _aware("2026-03-01T10:00:00Z").isoformat()
    '2026-03-01T10:00:00+00:00'
    """
    if isinstance(ts, str):
        try:
            ts = datetime.fromisoformat(ts.replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError("creationTimestamp", f"{ts!r} is not an RFC 3339 time", "pass e.g. 2026-03-01T10:00:00Z") from None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class CostEstimate:
    """The running cost of ``nodes`` GPU nodes.

    Attributes:
        nodes: GPU nodes billed.
        node_hours: sum over nodes of the hours since each started.
        price_per_node_hour: USD per node-hour.
        instance_type: for the message.
    """

    nodes: int
    node_hours: float
    price_per_node_hour: float
    instance_type: str = "p5.48xlarge"

    @property
    def total_usd(self) -> float:
        """USD spent so far."""
        return self.node_hours * self.price_per_node_hour

    @property
    def per_hour_usd(self) -> float:
        """USD per wall-clock hour while all ``nodes`` run."""
        return round(self.nodes * self.price_per_node_hour, 2)

    def projected_usd(self, minutes: float = WORKSHOP_MINUTES) -> float:
        """USD after ``minutes`` more of all nodes running."""
        return self.total_usd + self.per_hour_usd * minutes / 60

    def text(self) -> str:
        """One line for the notebook.

        >>> CostEstimate(2, 1.0, 55.04).text()
        '2 x p5.48xlarge running: 1.00 node-hours so far = $55.04; $110.08 per hour while they run'
        """
        return (
            f"{self.nodes} x {self.instance_type} running: {self.node_hours:.2f} node-hours so far = "
            f"${self.total_usd:,.2f}; ${self.per_hour_usd:,.2f} per hour while they run"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "nodes": self.nodes,
            "node_hours": round(self.node_hours, 3),
            "price_per_node_hour": self.price_per_node_hour,
            "total_usd": round(self.total_usd, 2),
            "per_hour_usd": self.per_hour_usd,
        }


def estimate(
    started: Iterable[datetime | str],
    price_per_node_hour: float,
    *,
    now: datetime | None = None,
    instance_type: str = "p5.48xlarge",
) -> CostEstimate:
    """Cost of nodes that started at ``started`` (one time per node, e.g. each Node's ``creationTimestamp``).

    Raises:
        ConfigError: a negative price or a malformed time.
    """
    if (isinstance(price_per_node_hour, bool) or not isinstance(price_per_node_hour, (int, float))
            or not math.isfinite(price_per_node_hour) or price_per_node_hour < 0):
        raise ConfigError("price_per_node_hour", f"{price_per_node_hour!r} is not a price", "use USD per node-hour, e.g. 55.04")
    when = _aware(now or datetime.now(UTC))
    starts = [_aware(s) for s in started]
    hours = sum(max(0.0, (when - s).total_seconds()) / 3600 for s in starts)
    return CostEstimate(len(starts), round(hours, 4), float(price_per_node_hour), instance_type)


def gpu_node_starts(nodes: Sequence[dict[str, Any]], instance_type: str) -> list[str]:
    """``creationTimestamp`` of each Node (API dicts) whose instance-type label is ``instance_type``.

    >>> gpu_node_starts([{"metadata": {"labels": {GPU_NODE_LABEL: "p5.48xlarge"},
    ...                   "creationTimestamp": "2026-03-01T10:00:00Z"}}], "p5.48xlarge")
    ['2026-03-01T10:00:00Z']
    """
    out = []
    for n in nodes:
        meta = n.get("metadata", {}) or {}
        if (meta.get("labels") or {}).get(GPU_NODE_LABEL) == instance_type and meta.get("creationTimestamp"):
            out.append(str(meta["creationTimestamp"]))
    return out


def teardown_reminder(cfg: WorkshopConfig, est: CostEstimate | None = None) -> str:
    """The reminder every eks notebook ends with: what keeps billing and how to stop it.

    >>> from workshop_lib.config import WorkshopConfig
    >>> "--nodes 0" in teardown_reminder(WorkshopConfig(target="eks"))
    True
    """
    head = est.text() + ". " if est is not None else ""
    return (
        f"{head}GPU nodes bill until the node group is scaled to zero or deleted: deleting the "
        f"DynamoGraphDeployments in namespace {cfg.namespace!r} frees the GPUs but NOT the nodes. When you are done, "
        f"run the teardown cell, then scale the {cfg.instance_type} node group to 0 "
        f"(eksctl scale nodegroup --cluster <cluster> --name <nodegroup> --nodes 0) or delete the cluster."
    )


def local_note() -> str:
    """What the local target costs (nothing billed), for symmetry with the eks message."""
    return "TARGET=local: everything runs on this machine; nothing is billed. Teardown stops the lab processes."
