"""The one interface the notebook steps call, whatever runs the graph: :class:`Target`.

A target deploys the DynamoGraphDeployment(s) rendered by :mod:`workshop_lib.manifests` (the single source of truth),
waits for them, reads each role's logs and metrics, gives the frontend URL and tears down. It also says what it is
(:meth:`Target.describe`, the banner), what it can show (``efa``: whether the transport the workshop teaches exists
here; ``engine``: what serves the requests) and which commands a step corresponds to (:meth:`Target.commands`), so
a learner on either target sees the kubectl/helm or lab command beside the library call.

Two implementations: :class:`~workshop_lib.targets.eks.EksTarget` (a real cluster through the kubeconfig) and
:class:`~workshop_lib.targets.local.LocalTarget` (the local lab). :func:`workshop_lib.targets.for_config` picks one
from the config; it is the only place that looks at ``cfg.target``.

Example:
    >>> from workshop_lib.config import WorkshopConfig
    >>> from workshop_lib.targets import for_config
    >>> t = for_config(WorkshopConfig(target="local", engine="mocker"))
    >>> t.name, t.efa
    ('local', False)
    >>> dgd_names([{"kind": "DynamoGraphDeployment", "metadata": {"name": "vllm-disagg"}}, {"kind": "Secret"}])
    ['vllm-disagg']
"""

from __future__ import annotations

import re
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from workshop_lib.checks import CheckTable
from workshop_lib.config import WorkshopConfig
from workshop_lib.k8s import DGD_KIND

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

ROLES = ("frontend", "prefill", "decode")
# The DGD service of each role in the kit's graphs (workshop_lib.manifests); the pods carry it as their component.
ROLE_SERVICES = {"frontend": "Frontend", "prefill": "PrefillWorker", "decode": "DecodeWorker"}
_SAMPLE = re.compile(r"^([A-Za-z_:][\w:]*)(?:\{.*\})?\s+(\S+)")
# How a serving sweep names each backend's graph: by the backend its DGD renders (the transport is read from the logs).
GRAPH_LABELS = {"UCX": "UCX graph", "LIBFABRIC": "LIBFABRIC graph"}
STEPS = ("platform", "verify", "secret", "deploy", "logs", "metrics", "frontend", "teardown")


def docs_of(files: list[Any]) -> list[dict[str, Any]]:
    """Every Kubernetes object (a dict with a ``kind``) in rendered files or plain dicts, in order."""
    out: list[dict[str, Any]] = []
    for f in files:
        for d in (f.docs if hasattr(f, "docs") else [f]):
            if isinstance(d, dict) and d.get("kind"):
                out.append(d)
    return out


def dgd_names(files: list[Any]) -> list[str]:
    """Names of the DynamoGraphDeployments among rendered files (or plain dicts)."""
    return [d["metadata"]["name"] for d in docs_of(files) if d.get("kind") == DGD_KIND]


def dgds(files: list[Any]) -> list[dict[str, Any]]:
    """The DynamoGraphDeployment documents among rendered files."""
    return [d for d in docs_of(files) if d.get("kind") == DGD_KIND]


def graph_backend(files: list[Any]) -> str | None:
    """The NIXL backend the rendered graph's workers are configured with: vLLM's ``--kv-transfer-config``
    ``kv_connector_extra_config.backends[0]``, or TRT-LLM's ``TRTLLM_NIXL_KVCACHE_BACKEND``; None when none says.

    >>> args = ["--kv-transfer-config", '{"kv_connector_extra_config":{"backends":["UCX"]}}']
    >>> graph_backend([{"kind": DGD_KIND, "spec": {"services": {"DecodeWorker": {
    ...     "extraPodSpec": {"mainContainer": {"args": args}}}}}}])
    'UCX'
    """
    import json

    for d in dgds(files):
        for svc in ((d.get("spec") or {}).get("services") or {}).values():
            args = list((((svc or {}).get("extraPodSpec") or {}).get("mainContainer") or {}).get("args") or [])
            if "--kv-transfer-config" in args[:-1]:
                try:
                    kvc = json.loads(args[args.index("--kv-transfer-config") + 1])
                except ValueError:
                    continue
                backends = (kvc.get("kv_connector_extra_config") or {}).get("backends") or []
                if backends:
                    return str(backends[0]).upper()
            for env in (svc or {}).get("envs") or []:
                if env.get("name") == "TRTLLM_NIXL_KVCACHE_BACKEND" and env.get("value"):
                    return str(env["value"]).upper()
    return None


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text exposition -> ``{name: value}``, summing a metric's series over their labels.

    >>> parse_metrics('# HELP x\\nvllm:nixl_bytes_transferred_sum{model="m"} 163840.0\\nup 1\\nup{a="b"} 2\\n')
    {'vllm:nixl_bytes_transferred_sum': 163840.0, 'up': 3.0}
    """
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if m is None:
            continue
        try:
            value = float(m.group(2))
        except ValueError:
            continue
        out[m.group(1)] = out.get(m.group(1), 0.0) + value
    return out


def fetch_metrics(url: str, timeout: float = 10.0) -> dict[str, float]:
    """GET a ``/metrics`` URL and parse it (:func:`parse_metrics`).

    Raises:
        OSError: the endpoint did not answer (the caller turns it into a check row naming the URL).
    """
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - a loopback or port-forwarded URL
        return parse_metrics(resp.read().decode(errors="replace"))


@dataclass
class ServingRun:
    """One deployment a serving sweep runs against: its label (with the engine/transport it really uses), URL, model."""

    label: str
    url: str
    model: str
    tokenizer: str | None = None


@dataclass
class Sides:
    """Section 3's two "nodes": each side's log file, and the NIXL pair's result when the target ran one."""

    logs: dict[str, Path]
    table: Any = None  # what the deploy step shows (the applied objects, or the pair's transfer table)
    pair: Any = None
    netns: bool = False
    # requests sent through the graph's frontend before its logs were read (vLLM's NIXL handshake is lazy): a list of
    # {"request", "ok", "tokens", "error"}; None where the target sent none (the local pair moves bytes by itself)
    warmup: list[dict[str, Any]] | None = None
    # local: where the cross-node graph's workers ran ({"mode": "netns" | "loopback", "why", evidence}); None on eks
    graph: dict[str, Any] | None = None


class Target(ABC):
    """What the notebook steps call; one instance per notebook run (it holds port-forwards and deployed names)."""

    name: ClassVar[str]
    efa: ClassVar[bool]  # whether the EFA transport the workshop teaches exists on this target
    published_comparable: ClassVar[bool]  # whether the seed workshop's GPU figures are comparable with a run here
    sweep_defaults: ClassVar[dict[str, Any]]

    def __init__(self, cfg: WorkshopConfig) -> None:
        self.cfg = cfg
        self.graphs: list[str] = []  # DGDs this run deployed (or found), in order

    # ------------------------------------------------------------------------------------------ what it is
    @property
    @abstractmethod
    def engine(self) -> str:
        """What serves the requests here (``vllm``, ``mocker``, ``trtllm``), as the running deployment says."""

    @abstractmethod
    def describe(self) -> list[str]:
        """The banner's lines: where the graph runs and what is real here."""

    @abstractmethod
    def commands(self, step: str) -> list[str]:
        """The shell commands (kubectl/helm on eks, ``workshop lab`` locally) a notebook step corresponds to."""

    @abstractmethod
    def cost_note(self, final: bool = False) -> str:
        """What this run costs so far (with the teardown reminder when ``final``); never raises."""

    def serving_label(self) -> str:
        """How a table or plot names this target's serving deployment (engine included)."""
        return f"{self.name} ({self.engine})"

    # ------------------------------------------------------------------------------------------ section 01
    @abstractmethod
    def preflight(self) -> pd.DataFrame:
        """Preflight rows (check, status, found, expected, fix)."""

    @abstractmethod
    def install_platform(self) -> pd.DataFrame:
        """Install what graphs need (eks: CRDs + platform through Helm; local: the lab's etcd, NATS and workers)."""

    @abstractmethod
    def verify_platform(self) -> CheckTable:
        """Section 01's checks of what :meth:`install_platform` set up."""

    @abstractmethod
    def put_secret(self, token: str | None) -> str:
        """Store the Hugging Face token where the workers read it; returns a message without the value."""

    @abstractmethod
    def uninstall_platform(self) -> list[str]:
        """Undo :meth:`install_platform` (safe twice)."""

    # ------------------------------------------------------------------------------------------ graphs
    @abstractmethod
    def deploy(self, files: list[Any]) -> pd.DataFrame:
        """Deploy the rendered graph(s) and wait until they serve; returns what was started (one row each)."""

    @abstractmethod
    def log_files(self, work_dir: Path, roles: tuple[str, ...] = ROLES) -> dict[str, Path]:
        """Each role's current log as a file (role -> path)."""

    @abstractmethod
    def metrics_url(self, role: str) -> str | None:
        """The ``/metrics`` URL of a role (None when this deployment exposes none)."""

    def metrics(self, role: str) -> dict[str, float]:
        """A role's Prometheus metrics (series summed per name); empty when it exposes none.

        Raises:
            OSError: the metrics endpoint named by :meth:`metrics_url` did not answer.
        """
        url = self.metrics_url(role)
        return fetch_metrics(url) if url else {}

    @abstractmethod
    def frontend(self, graph: str | None = None) -> tuple[str, str]:
        """(URL, model id) of a graph's frontend (the first deployed graph by default)."""

    def forwards(self) -> dict[str, str]:
        """Service -> local URL of every port-forward this run holds open (none locally)."""
        return {}

    def close(self, service: str | None = None) -> list[str]:
        """Close port-forwards (one service, or all); safe twice."""
        return []

    @abstractmethod
    def teardown(self, names: list[str]) -> list[str]:
        """Remove the named graphs (safe twice)."""

    @abstractmethod
    def oom_killed(self) -> list[dict[str, Any]]:
        """Workers killed for memory (pod/process, problem, explanation, fix)."""

    # ------------------------------------------------------------------------------------------ KV transfer
    @abstractmethod
    def cross_node(self, files: list[Any], work_dir: Path, pair_spec: Any) -> Sides:
        """Section 3: run the KV path between two "nodes" and return both sides' logs."""

    def transfer_pair(self, spec: Any, work_dir: Path) -> Any:
        """The NIXL pair micro-benchmark beside the graph (a ``NixlPairResult``: real bytes moved and verified), where
        the target runs one; None where the graph's own workers are the only evidence (eks)."""
        return None

    @property
    def kv_metrics_expected(self) -> bool:
        """Whether the decode worker's ``vllm:nixl_*`` metrics can be read here (:meth:`metrics`)."""
        return False

    @abstractmethod
    def serving_plan(self, profiles: dict[str, str]) -> pd.DataFrame | None:
        """What :meth:`serving_runs` will do, step by step, before it does it (None when there is nothing to plan)."""

    @abstractmethod
    def serving_runs(self, profiles: dict[str, str]) -> Iterator[ServingRun]:
        """Yield each deployment to sweep (deploying/deleting between them as the target needs)."""

    @abstractmethod
    def transfer_sweep(self, backends: tuple[str, ...], sizes: str, iters: int, work_dir: Path) -> pd.DataFrame:
        """Bandwidth by block size per backend (``workshop_lib.bench.nixl.COLUMNS``)."""

