"""pytest fixtures around the mock API server. Import them into a test module::

    from tests.support.k8s_fixtures import mock_api, serve_scenario  # noqa: F401

``serve_scenario(name)`` (context manager) starts a scenario and yields a :class:`Served` with the server, its
kubeconfig path and a connected :class:`~workshop_lib.cluster.Cluster`.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.mock_k8s import MockApiServer, MockCluster
from tests.support.scenarios import build
from workshop_lib.cluster import Cluster


@dataclass
class Served:
    server: MockApiServer
    kubeconfig: Path
    cluster: Cluster

    @property
    def mock(self) -> MockCluster:
        return self.server.cluster


@contextlib.contextmanager
def serve_scenario(name: str = "healthy", cluster: MockCluster | None = None) -> Iterator[Served]:
    with tempfile.TemporaryDirectory(prefix="mock-k8s-") as tmp, MockApiServer(cluster or build(name)) as srv:
        kc = srv.write_kubeconfig(Path(tmp) / "kubeconfig")
        yield Served(srv, kc, Cluster.connect(kc))


@pytest.fixture
def mock_api() -> Iterator[Served]:
    """The ``healthy`` scenario, served for one test."""
    with serve_scenario("healthy") as s:
        yield s
