"""The local target: the same rendered DynamoGraphDeployment run by the local lab (:mod:`workshop_lib.lab`) on this
machine, and the NIXL pair as the transport micro-benchmark.

The lab turns the DGD's services into local processes (``workshop lab plan`` prints the substitutions: image -> the
lab's environment, model -> the lab's model directory, GPU -> CPU settings, pod IPs -> loopback or the lab's network
namespaces). The engine is the config's ``engine`` (``vllm`` by default, ``mocker`` the lighter one); every label
says which one ran, as the lab reports it.

Example:
    >>> from workshop_lib.config import WorkshopConfig
    >>> LocalTarget(WorkshopConfig(target="local", engine="mocker")).commands("teardown")
    ['workshop lab down']
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from workshop_lib.checks import CheckTable
from workshop_lib.errors import WorkshopError
from workshop_lib.targets.base import ROLES, ServingRun, Sides, Target, dgds

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

# What a lab process's dead log says when the kernel's OOM killer or Python ran out of memory.
OOM_MARKERS = ("Killed", "MemoryError", "Out of memory", "OOM")
SERVING_TEXT = {"mocker": "mocker, no KV bytes", "vllm": "vLLM, KV over NIXL"}


def lab_frame(st: Any) -> pd.DataFrame:
    """A LabStatus as a table: process, pid, port, healthy, RSS (MB), detail."""
    import pandas as pd

    rows = [{"process": p.name, "pid": p.pid, "port": p.port, "healthy": p.healthy, "rss_mb": p.rss_mb,
             "detail": str(p.detail).splitlines()[0] if p.detail else ""} for p in st.processes.values()]
    return pd.DataFrame(rows, columns=["process", "pid", "port", "healthy", "rss_mb", "detail"])


class LocalTarget(Target):
    """The local lab: etcd, NATS, the Dynamo frontend and prefill/decode workers as local processes."""

    name: ClassVar[str] = "local"
    efa: ClassVar[bool] = False
    published_comparable: ClassVar[bool] = False
    sweep_defaults: ClassVar[dict[str, Any]] = {
        "concurrency": [1, 2, 4], "requests": 8, "isl": 64, "osl": 16, "sizes": "4K,64K,1M", "iters": 20}

    def __init__(self, cfg: Any, netns: bool = False) -> None:
        super().__init__(cfg)
        self.netns = netns
        self._status: Any = None

    @staticmethod
    def lab() -> Any:
        from workshop_lib.lab.serving import Lab

        return Lab()

    def status(self) -> Any:
        self._status = self.lab().status()
        return self._status

    # ------------------------------------------------------------------------------------------ what it is
    @property
    def engine(self) -> str:
        """The engine the running lab reports; before it runs, the one the config asks for."""
        st = self._status
        got = getattr(st, "engine", None) if st is not None and getattr(st, "running", False) else None
        if got:
            return str(got)
        if st is not None and getattr(st, "running", False):
            return "mocker"  # a lab without the engine field runs Dynamo's mocker
        return self.cfg.engine if self._lab_takes("engine") else "mocker"

    @property
    def kv_metrics_expected(self) -> bool:
        """Whether the decode worker exposes vLLM's ``vllm:nixl_*`` metrics here (the real engine does)."""
        return self.engine == "vllm"

    def describe(self) -> list[str]:
        eng = self.engine
        what = ("real vLLM 0.14.1 (CPU) prefill and decode workers whose KV cache moves through NIXL"
                if eng == "vllm" else "Dynamo's mocker engine for prefill and decode (timing only: it moves no KV "
                                      "bytes; the NIXL pair moves real ones)")
        return [f"TARGET=local: the same rendered graph run on this machine by the lab (engine {eng}): etcd, NATS, "
                f"the Dynamo 0.9.0 frontend, {what}; no GPU, no EFA, so transports are TCP/shared memory and buffers "
                "are DRAM."]

    def cost_note(self, final: bool = False) -> str:
        from workshop_lib import cost

        return cost.local_note() if final else ""

    def commands(self, step: str) -> list[str]:
        eng = f" --engine {self.cfg.engine}" if self._lab_takes("engine") else ""
        table = {
            "platform": [f"workshop lab up{eng}", "workshop lab status"],
            "verify": ["workshop lab status --json"],
            "secret": ["(none: the lab serves an offline model, no Hugging Face download)"],
            "deploy": [f"workshop lab plan{eng} --kv-backend {self.cfg.kv_backend}",
                       f"workshop lab up{eng} --kv-backend {self.cfg.kv_backend}"],
            "logs": [f"workshop lab logs {r}" for r in ROLES],
            "metrics": ["workshop lab status --json   # metrics_url of each worker"],
            "frontend": ["workshop lab status   # frontend_url"],
            "teardown": ["workshop lab down"],
        }
        return table[step]

    # ------------------------------------------------------------------------------------------ section 01
    def preflight(self) -> pd.DataFrame:
        from workshop_lib import preflight

        return preflight.preflight_local()

    def _lab_takes(self, arg: str) -> bool:
        from workshop_lib.lab.serving import Lab

        return arg in inspect.signature(Lab.up).parameters

    def _up(self, graph: dict[str, Any] | None = None) -> Any:
        """Start the lab from ``graph`` (or return the running one) with the config's engine; without a graph, from
        the single-node DGD the notebooks deploy (so notebook 01's lab is notebook 02's graph)."""
        if graph is None:
            from workshop_lib.manifests import render

            graph = next(iter(dgds(render(self.cfg, "single-node"))), None)
        kwargs: dict[str, Any] = {"progress": True}
        # The single-node graph runs on this machine's loopback; section 3 runs the cross-node graph across two
        # network namespaces (cross_node_graph). A running lab holding another graph is replaced (as applying another
        # DGD does on EKS), saying so; the same graph is kept and only what died is restarted.
        if self._lab_takes("replace"):
            kwargs["replace"] = True
        for arg, value in (("graph", graph), ("engine", self.cfg.engine)):
            if value is not None and self._lab_takes(arg):
                kwargs[arg] = value
        self._status = self.lab().up(**kwargs)
        return self._status

    def install_platform(self) -> pd.DataFrame:
        """The lab's etcd and NATS, started with the serving processes of the single-node graph."""
        return lab_frame(self._up())

    def verify_platform(self) -> CheckTable:
        """etcd and NATS as they describe themselves."""
        from workshop_lib.sections import probes

        t = CheckTable()
        ports = {n: p.port for n, p in self.status().processes.items()}
        try:
            info = probes.etcd_info(f"http://127.0.0.1:{ports.get('etcd') or 2379}")
            t.require("etcd health", info.get("health"), "true",
                      evidence=f"etcdserver {info.get('etcdserver')} /health {{\"health\":\"{info.get('health')}\"}}",
                      fix="workshop lab down && workshop lab up")
        except WorkshopError as exc:
            t.add("etcd health", "FAIL", "no answer", "true", str(exc), "workshop lab up")
        try:
            nats = probes.nats_info(port=ports.get("nats") or 4222)
            t.require("NATS JetStream", nats.get("jetstream", False), True,
                      evidence=f"INFO version={nats.get('version')} jetstream={nats.get('jetstream')}",
                      fix="start nats-server with -js (the lab does)")
        except WorkshopError as exc:
            t.add("NATS JetStream", "FAIL", "no answer", "True", str(exc), "workshop lab up")
        return t

    def put_secret(self, token: str | None) -> str:
        return "local: no Hugging Face download happens (the lab serves an offline model), so no token is needed."

    def uninstall_platform(self) -> list[str]:
        stopped = self.lab().down()
        return [f"stopped {', '.join(stopped)}" if stopped else "the lab was not running"]

    # ------------------------------------------------------------------------------------------ graphs
    def deploy(self, files: list[Any]) -> pd.DataFrame:
        """Run the rendered graph with the lab (started from the DGD when the lab takes one); one row per process."""
        graphs = dgds(files)
        self.graphs = [g["metadata"]["name"] for g in graphs]
        return lab_frame(self._up(graphs[0] if graphs else None))

    def log_files(self, work_dir: Path, roles: tuple[str, ...] = ROLES) -> dict[str, Path]:
        lab = self.lab()
        return {role: lab.log_path(role) for role in roles}

    def metrics_url(self, role: str) -> str | None:
        proc = (self.status().processes or {}).get(role)
        return getattr(proc, "metrics_url", None) if proc is not None else None

    def frontend(self, graph: str | None = None) -> tuple[str, str]:
        st = self._status if self._status is not None and self._status.running else self.status()
        return str(st.frontend_url), str(st.model)

    def teardown(self, names: list[str]) -> list[str]:
        return self.uninstall_platform()

    def oom_killed(self) -> list[dict[str, Any]]:
        """Lab processes that died with an out-of-memory line in their log."""
        rows = []
        for p in self.status().processes.values():
            detail = str(p.detail or "")
            if detail.startswith("not running") and any(m in detail for m in OOM_MARKERS):
                rows.append({"pod": f"lab process {p.name}", "problem": "OOMKilled", "explanation": detail.splitlines()[-1],
                             "fix": "workshop lab down, close other programs (or use --engine mocker), workshop lab up"})
        return rows

    # ------------------------------------------------------------------------------------------ KV transfer
    def cross_node(self, files: list[Any], work_dir: Path, pair_spec: Any) -> Sides:
        """The NIXL pair between two "nodes" (two network namespaces joined by a veth when ``pair_spec.netns``, else
        loopback) with the backend the cross-node graph renders; both agents' logs are the two sides."""
        from workshop_lib.bench.nixl import lab_frame as pair_frame
        from workshop_lib.lab.nixl_pair import run_pair
        from workshop_lib.sections.common import transfer_view

        result = run_pair(pair_spec, work_dir / f"nixl-{pair_spec.backend.lower()}")
        graphs = dgds(files)
        self.graphs = [g["metadata"]["name"] for g in graphs]
        graph = self.cross_node_graph(graphs[0] if graphs else None)
        return Sides(logs={role: Path(p) for role, p in result.logs.items()}, table=transfer_view(pair_frame(result)),
                     pair=result, netns=bool(pair_spec.netns), graph=graph)

    def cross_node_graph(self, dgd: dict[str, Any] | None) -> dict[str, Any]:
        """Run the cross-node graph's real prefill and decode workers in two network namespaces (``lab up --netns``)
        and measure one completion's KV bytes on the veths; where that cannot run, say which fallback is used and why
        (the lab stays as it is, on loopback). Returns ``{"mode": "netns" | "loopback", "why", ...evidence}``."""
        from workshop_lib.lab.crossnode import kv_over_veth
        from workshop_lib.lab.netns import can_isolate

        why = reason = None
        if not self.netns:
            why, reason = "NETNS is off (or not root): the workers share the host's loopback", "netns-off"
        elif not can_isolate():
            why = "network namespaces need root and iproute2 (`ip`): the workers share the host's loopback"
            reason = "not-root"
        elif self.engine != "vllm":
            why = "engine mocker moves no KV bytes: nothing to cross between namespaces (use ENGINE='vllm')"
            reason = "mocker"
        elif dgd is None:
            why, reason = "the render holds no DynamoGraphDeployment", "no-dgd"
        if why:
            return {"mode": "loopback", "why": why, "reason": reason}
        lab = self.lab()
        st = lab.status()
        if st.running and not st.net:
            lab.down()  # the single-node graph on loopback gives way to the cross-node one
        # replace: a namespaced lab holding another graph (e.g. `workshop lab up --netns` by hand) gives way too
        self._status = lab.up(graph=dgd, engine="vllm", netns=True, progress=True, replace=True)
        ev = kv_over_veth(lab)
        return {"mode": "netns", "why": "two network namespaces joined through a bridge (root)", **ev,
                "kv_backend": self._status.kv_backend}

    def transfer_pair(self, spec: Any, work_dir: Path) -> Any:
        """Run the NIXL pair micro-benchmark (real bytes moved and verified) beside the graph."""
        from workshop_lib.lab.nixl_pair import run_pair

        return run_pair(spec, work_dir / f"nixl-{spec.backend.lower()}")

    def serving_plan(self, profiles: dict[str, str]) -> pd.DataFrame | None:
        return None  # one lab, already running or started by the sweep: nothing to plan

    def serving_runs(self, profiles: dict[str, str]) -> Iterator[ServingRun]:
        st = self.status()
        if not st.healthy:
            st = self._up()
        model = str(st.model)
        where = "two network namespaces" if st.net else "loopback"
        yield ServingRun(f"lab ({SERVING_TEXT.get(self.engine, self.engine)}; graph {st.graph or '?'}, {where})",
                         str(st.frontend_url), model,
                         tokenizer=model if Path(model).is_dir() else None)

    def transfer_sweep(self, backends: tuple[str, ...], sizes: str, iters: int, work_dir: Path) -> pd.DataFrame:
        """Both backends' READ sweep in DRAM across the two network namespaces (root), or over loopback with UCX
        forced onto TCP when not root. Between namespaces UCX uses TCP by itself."""
        from workshop_lib.bench.nixl import sweep_nixl

        return sweep_nixl(backends, "READ", sizes, mem="DRAM", netns=self.netns, iters=iters,
                          ucx_tls=None if self.netns else "tcp", log_dir=work_dir / "transfer")
