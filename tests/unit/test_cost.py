"""Tests for workshop_lib.cost: node-hours x price and the teardown reminder."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from workshop_lib.config import WorkshopConfig
from workshop_lib.cost import CostEstimate, estimate, gpu_node_starts, teardown_reminder
from workshop_lib.errors import ConfigError

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_two_p5_nodes() -> None:
    est = estimate(["2026-03-01T10:00:00Z", NOW - timedelta(minutes=30)], 55.04, now=NOW)
    assert est.nodes == 2
    assert est.node_hours == pytest.approx(2.5)
    assert est.total_usd == pytest.approx(137.6)
    assert est.per_hour_usd == pytest.approx(110.08)
    assert est.projected_usd(60) == pytest.approx(137.6 + 110.08)
    assert est.to_dict()["total_usd"] == 137.6


def test_future_start_counts_zero_and_naive_is_utc() -> None:
    est = estimate([NOW + timedelta(hours=1), datetime(2026, 3, 1, 11, 0)], 10.0, now=NOW)
    assert est.node_hours == pytest.approx(1.0)


@pytest.mark.parametrize("price", [-1, "55", True])
def test_bad_price(price: object) -> None:
    with pytest.raises(ConfigError, match="price_per_node_hour"):
        estimate([NOW], price, now=NOW)  # type: ignore[arg-type]


def test_bad_time() -> None:
    with pytest.raises(ConfigError, match="creationTimestamp"):
        estimate(["yesterday"], 1.0, now=NOW)


def test_gpu_node_starts_filters_instance_type() -> None:
    nodes = [
        {"metadata": {"labels": {"node.kubernetes.io/instance-type": "p5.48xlarge"}, "creationTimestamp": "2026-03-01T10:00:00Z"}},
        {"metadata": {"labels": {"node.kubernetes.io/instance-type": "m5.xlarge"}, "creationTimestamp": "2026-03-01T09:00:00Z"}},
        {"metadata": {"labels": {}}},
    ]
    assert gpu_node_starts(nodes, "p5.48xlarge") == ["2026-03-01T10:00:00Z"]


def test_reminder_names_namespace_and_cost() -> None:
    cfg = WorkshopConfig(target="eks", namespace="team-a")
    msg = teardown_reminder(cfg, CostEstimate(2, 1.0, 55.04))
    assert "'team-a'" in msg and "$55.04" in msg and "--nodes 0" in msg and "p5.48xlarge" in msg


@pytest.mark.parametrize("price", [float("nan"), float("inf"), -1.0, True, "55"])
def test_estimate_rejects_a_non_price(price) -> None:
    from workshop_lib.cost import estimate
    from workshop_lib.errors import ConfigError

    with pytest.raises(ConfigError, match="price_per_node_hour"):
        estimate(["2026-03-01T10:00:00Z"], price)
