"""Read-only checks against a real cluster. Runs only with ``WORKSHOP_LIVE_KUBECONFIG=/path/to/kubeconfig``
(optionally ``WORKSHOP_LIVE_CONTEXT``); creates, changes and deletes nothing."""

from __future__ import annotations

import os

import pytest

from workshop_lib import dynamo_platform, preflight
from workshop_lib.cluster import Cluster
from workshop_lib.config import WorkshopConfig

KUBECONFIG = os.environ.get("WORKSHOP_LIVE_KUBECONFIG")
CONTEXT = os.environ.get("WORKSHOP_LIVE_CONTEXT") or None

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not KUBECONFIG, reason="set WORKSHOP_LIVE_KUBECONFIG to run the live-cluster tests"),
]


@pytest.fixture(scope="module")
def cluster() -> Cluster:
    return Cluster.connect(KUBECONFIG, CONTEXT)


def test_version(cluster: Cluster) -> None:
    assert cluster.version().startswith("v1.")


def test_preflight_rows(cluster: Cluster) -> None:
    df = preflight.preflight_eks(cluster, WorkshopConfig(target="eks"))
    assert list(df.columns) == preflight.COLUMNS
    assert set(df["status"]) <= {"PASS", "WARN", "FAIL"}
    assert df.iloc[0]["check"] == "cluster reachable" and df.iloc[0]["status"] in ("PASS", "WARN")
    print(df.to_string(index=False))


def test_platform_status(cluster: Cluster) -> None:
    df = dynamo_platform.status(cluster, WorkshopConfig(target="eks"))
    assert df.iloc[0]["check"] == "Dynamo CRDs"
    print(df.to_string(index=False))


def test_discovery_of_core_kinds(cluster: Cluster) -> None:
    assert cluster.resource("apps/v1", "DaemonSet").plural == "daemonsets"
    assert cluster.list("v1", "Node")
