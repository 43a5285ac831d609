"""The local serving lab: etcd, NATS, the Dynamo 0.9.0 frontend and a prefill + decode worker, disaggregated.

Everything is real software: Dynamo's frontend discovers the two workers through etcd, activates its prefill router,
and each request goes prefill worker -> KV transfer -> decode worker. With the real engine (``engine="vllm"``) the
workers are vLLM 0.14.1 (CPU) and vLLM's NixlConnector moves each request's KV cache through NIXL; with
``netns=True`` the two workers run in two network namespaces (:mod:`~workshop_lib.lab.labnet`), so the KV cache
crosses a real network interface. The mocker engine simulates timing and moves no KV bytes
(``../shared/reference/LOCAL-LAB.md``).

State lives in the lab directory (``.lab/`` at the repository root, or ``$WORKSHOP_LAB_DIR``): ``state.json`` (pids,
ports, run directory, network) and ``runs/<run>/<name>.log`` per process, so ``status`` and ``down`` work from a new
shell. Process starting and waiting is :mod:`~workshop_lib.lab.supervisor`; the records :mod:`.labstate`.

Example:
    >>> from workshop_lib.lab.serving import Lab, chat
    >>> lab = Lab()
    >>> st = lab.up()                                                     # doctest: +SKIP
    >>> chat(st.frontend_url, st.model, "What is NIXL?", stream=True).tokens   # doctest: +SKIP
    32
    >>> lab.down()                                                        # doctest: +SKIP
    ['decode', 'prefill', 'frontend', 'nats', 'etcd']
"""

from __future__ import annotations

import platform
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from workshop_lib.bench.client import ChatResult, chat
from workshop_lib.errors import LabError, LabUnsupported
from workshop_lib.lab import labnet, procs
from workshop_lib.lab.graph import GraphPlan, check_backend, check_engine, plan_graph, render_lab_dgd
from workshop_lib.lab.labstate import (
    KEEP_RUNS,
    MAX_TMPDIR_LEN,
    LabStatus,
    ProcStatus,
    StateFile,
    graph_name,
    keep_runs,
    new_run_dir,
    prune_runs,
    records,
    remove_rpc_dir,
    require_engine,
    run_tmpdir,
    same_graph,
)
from workshop_lib.lab.model import ensure_model
from workshop_lib.lab.stack import (
    DEFAULT_PORTS,
    DEFAULT_SPEEDUP,
    LOOPBACK,
    NAMES,
    SIGNED_16BIT_PORTS,
    extra_ports,
    find_binaries,
    probe,
)
from workshop_lib.lab.supervisor import Supervisor, remove_stale_netns
from workshop_lib.paths import lab_dir

# Library callers that name no engine get the mocker (fast, light); the CLI and the notebooks' config default to
# the real engine and pass it explicitly (`engine="vllm"`).
LIBRARY_DEFAULT_ENGINE = "mocker"
# Readiness timeouts: the real engine loads torch and compiles its first batch.
DEFAULT_TIMEOUT = {"mocker": 120.0, "vllm": 420.0}

__all__ = [
    "Lab",
    "LabStatus",
    "ProcStatus",
    "ChatResult",
    "chat",
    "NAMES",
    "DEFAULT_PORTS",
    "DEFAULT_SPEEDUP",
    "KEEP_RUNS",
    "MAX_TMPDIR_LEN",
    "find_binaries",
    "prune_runs",
    "require_engine",
    "run_tmpdir",
]


class Lab:
    """The serving lab of one lab directory. Safe to construct anywhere; only :meth:`up` and :meth:`down` act.

    Args:
        root: lab directory (default :func:`workshop_lib.paths.lab_dir`).
        speedup: the mockers' ``--speedup-ratio``.
        binaries: paths overriding ``etcd``, ``nats-server`` or ``python``.
        ports: preferred ports overriding :data:`DEFAULT_PORTS` entries.
    """

    def __init__(
        self,
        root: Path | None = None,
        *,
        speedup: float = DEFAULT_SPEEDUP,
        binaries: Mapping[str, str] | None = None,
        ports: Mapping[str, int] | None = None,
    ) -> None:
        self.root = Path(root) if root else lab_dir()
        self.speedup = speedup
        self.binaries = dict(binaries or {})
        self.preferred_ports = {**DEFAULT_PORTS, **(ports or {})}
        self._file = StateFile(self.root)
        self._sup = Supervisor(self._file, lambda: self.status(counters=False))

    # -- state file -----------------------------------------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return self._file.path

    def _load(self) -> dict | None:
        return self._file.load()

    @staticmethod
    def _records(state: dict | None) -> dict[str, procs.ProcRecord]:
        return records(state)

    @staticmethod
    def _net(state: dict | None) -> labnet.LabNet | None:
        d = (state or {}).get("net")
        return labnet.LabNet.from_json(d) if d else None

    # -- queries --------------------------------------------------------------------------------------------------
    def log_path(self, name: str) -> Path:
        """The log file of ``name`` (one of :data:`NAMES`) in the current (or last) run."""
        if name not in NAMES:
            raise LabError("log name", f"{name!r} is not a lab process", f"use one of {', '.join(NAMES)}")
        state = self._load()
        if state and state.get("run_dir"):
            return Path(state["run_dir"]) / f"{name}.log"
        runs = sorted((self.root / "runs").glob("*/"), key=lambda p: p.stat().st_mtime) if self.root.exists() else []
        if runs:
            return runs[-1] / f"{name}.log"
        raise LabError(str(self.root), "the lab has never run here, so there is no log", "run `workshop lab up`")

    def tail(self, name: str, n: int = 40) -> str:
        """The last ``n`` lines of ``name``'s log."""
        return procs.tail(self.log_path(name), n)

    def logs(self, role: str, n: int = 40) -> str:
        """The last ``n`` lines of ``role``'s log (etcd, nats, frontend, prefill or decode); same as :meth:`tail`."""
        return self.tail(role, n)

    def veth_counters(self) -> dict[str, dict[str, int]] | None:
        """Each worker veth's byte/packet counters (``ip -s link`` in its namespace); None on a loopback lab."""
        net = self._net(self._load())
        if net is None:
            return None
        try:
            return labnet.counters(net)
        except LabError:
            return None  # the namespace is gone (a killed lab): status says which process is not running

    def status(self, counters: bool = True) -> LabStatus:
        """Health of every declared process: pid alive (same command) + port + service probe; with ``counters``, a
        ``--netns`` lab's veth byte counters too (two ``ip`` calls: the start-up polls leave them out).

        The declared set is written before anything starts, so a half-started lab (some processes never started)
        is reported with those processes not healthy, never as healthy.
        """
        state = self._load()
        if not state:
            return LabStatus(False, None, None, None, {})
        self._sup.reap()
        recs = self._records(state)
        url, model, ports = state.get("frontend_url"), state.get("model"), state.get("ports", {})
        metrics, hosts, spaces = state.get("metrics_urls", {}), state.get("hosts", {}), state.get("netns", {})
        declared = [n for n in NAMES if n in state.get("declared", list(recs))]
        out: dict[str, ProcStatus] = {}
        for name in declared:
            rec, host = recs.get(name), hosts.get(name, LOOPBACK)
            xports = {**extra_ports(name, ports), **state.get("extra_ports", {}).get(name, {})}
            if rec is None:
                out[name] = ProcStatus(
                    name, None, None, Path(state["run_dir"]) / f"{name}.log", False,
                    "declared but not started (the last `lab up` stopped early); run `workshop lab up`",
                    None, xports, metrics.get(name), host, spaces.get(name),
                )  # fmt: skip
                continue
            if procs.is_running(rec):
                healthy, detail = probe(name, rec.port, url, model, host)
                rss: float | None = round(procs.rss_bytes(rec) / 2**20, 1)
            else:
                healthy, rss = False, None
                detail = f"not running (pid {rec.pid} exited); last log lines:\n{procs.tail(rec.log, 15)}"
            out[name] = ProcStatus(name, rec.pid, rec.port, Path(rec.log), healthy, detail, rss, xports,
                                   metrics.get(name), host, spaces.get(name))  # fmt: skip
        running = any(procs.is_running(r) for r in recs.values())
        engine = state.get("engine", "mocker")
        kv = None
        if engine == "vllm" and out.get("decode") and out["decode"].healthy and metrics.get("decode"):
            from workshop_lib.lab.kvmetrics import nixl_totals

            kv = nixl_totals(metrics["decode"])
        return LabStatus(
            running, Path(state["run_dir"]), url, model, out, engine, state.get("kv_backend"), kv,
            list(state.get("notes", [])), state.get("net"), self.veth_counters() if running and counters else None,
            graph_name(state.get("graph")),
        )  # fmt: skip

    # -- actions --------------------------------------------------------------------------------------------------
    def plan(
        self, graph: dict | None = None, engine: str | None = None, kv_backend: str = "UCX", netns: bool = False
    ) -> GraphPlan:
        """What :meth:`up` would run (with the preferred ports and lab network 0; busy ones are replaced at start)."""
        engine = check_engine(engine or LIBRARY_DEFAULT_ENGINE)
        dgd = graph if graph is not None else render_lab_dgd(check_backend(kv_backend))
        bins = dict(self.binaries)
        return plan_graph(
            dgd, engine=engine, lab_dir=self.root, ports=self.preferred_ports, netns=netns,
            bins={k: v for k, v in bins.items() if k in ("etcd", "nats-server")},
            python=bins.get("python"), model_dir=self.root / "model" / "workshop-tiny-bpe",
        )  # fmt: skip

    def up(
        self,
        timeout: float | None = None,
        progress: bool = True,
        *,
        graph: dict | None = None,
        engine: str | None = None,
        kv_backend: str = "UCX",
        netns: bool | None = None,
        replace: bool = False,
    ) -> LabStatus:
        """Bring the lab to its declared state and return once a completion works.

        A lab that is not running is started from ``graph`` (default: the kit's single-node disaggregated DGD with
        ``kv_backend``) on ``engine`` (``vllm`` the real engine, ``mocker`` Dynamo's simulated one; library default
        mocker, the CLI's vllm); ``netns`` puts the two workers in two network namespaces (root, real engine; None:
        as the running lab, else off). A running lab is kept: what died is restarted (in start order, in its namespace), the rest is left alone;
        asking for another engine, backend, network or ``graph`` than the running lab's raises (``lab down`` first),
        unless ``replace``: then the running lab goes down and the asked one starts (as applying another DGD replaces
        the running one on EKS).

        Raises:
            LabUnsupported: not Linux, or ``netns`` without root or ``ip``.
            LabError: a binary or the engine is missing, a process exited (with its log tail), or the lab was not
                ready within ``timeout`` seconds.
        """
        if platform.system() != "Linux":
            raise LabUnsupported(
                "local lab", f"needs Linux (this is {platform.system()})", "use TARGET='eks' or a Linux machine/VM"
            )
        state = self._load()
        own = self._net(state)
        remove_stale_netns("lab up", keep=_names(own))
        current = self.status()
        if state and current.running and replace and graph is not None and not same_graph(graph, state.get("graph")):
            if progress:
                print(f"lab up: the running lab holds graph {graph_name(state.get('graph'))!r}: stopping it for "
                      f"{graph_name(graph)!r}", file=sys.stderr, flush=True)
            self.down()
            state, current = self._load(), self.status()
        if state and current.running:
            if graph is not None and not same_graph(graph, state.get("graph")):
                raise LabError(
                    "lab up",
                    f"the running lab holds graph {graph_name(state.get('graph'))!r}, not {graph_name(graph)!r}",
                    "run `workshop lab down` first (or pass replace=True), then start the graph you want",
                )
            want_engine = check_engine(engine) if engine else state.get("engine", "mocker")
            want_backend = check_backend(kv_backend) if engine and want_engine == "vllm" else state.get("kv_backend")
            if (want_engine != state.get("engine", "mocker") or (netns is not None and netns != (own is not None)) or (
                    want_engine == "vllm" and graph is None and want_backend != state.get("kv_backend"))):
                raise LabError(
                    "lab up",
                    f"a lab with engine {state.get('engine')} / KV backend {state.get('kv_backend')} / "
                    f"{'two network namespaces' if own else 'loopback'} is running",
                    "run `workshop lab down` first, then `workshop lab up` with the new choice",
                )
            return self._reconcile(state, current, timeout or DEFAULT_TIMEOUT[want_engine], progress)
        if state:
            self.down()  # a stopped lab's leftovers (state file, stale groups, its namespaces) before a fresh start
        engine = check_engine(engine or LIBRARY_DEFAULT_ENGINE)
        if netns:
            from workshop_lib.lab.netns import require_netns_support

            require_netns_support()
        if engine == "vllm":
            require_engine()
        dgd = graph if graph is not None else render_lab_dgd(check_backend(kv_backend))
        if netns:  # refuse a mocker before anything starts (the plan says why)
            plan_graph(dgd, engine=engine, lab_dir=self.root, ports=self.preferred_ports, netns=True, lib_env={},
                       python=sys.executable)  # fmt: skip
        bins = find_binaries(self.binaries)
        model_dir = ensure_model(lab_dir=self.root)
        timeout = timeout or DEFAULT_TIMEOUT[engine]
        deadline = time.monotonic() + timeout
        for attempt in range(1, 4):
            try:
                return self._start(
                    bins, model_dir, dgd, engine, netns, max(deadline - time.monotonic(), 10.0), progress
                )
            except LabError as exc:
                # Another program may take a port between our check and the server's bind: try again.
                if attempt == 3 or "already in use" not in str(exc).lower():
                    raise
        raise AssertionError("unreachable")

    def _reconcile(self, state: dict, current: LabStatus, timeout: float, progress: bool) -> LabStatus:
        """Restart every declared process that is not running (or never started), then wait for health."""
        dead = [p.name for p in current.processes.values() if p.pid is None or p.detail.startswith("not running")]
        if not dead:
            return self._await_running(current, timeout)
        net = self._net(state)
        if net is not None:
            labnet.create_lab_net(net)  # a killed worker's namespace may have been removed as stale: make it again
        plan_ = self._plan_from_state(state)
        steps = [p for p in plan_.processes if p.name in dead]
        notes = state.setdefault("notes", [])
        notes.append(f"{time.strftime('%H:%M:%S')} lab up restarted {', '.join(dead)} (found not running)")
        print(f"lab up: restarting {', '.join(dead)} (found not running)", file=sys.stderr)
        recs = self._records(state)
        procs.stop([recs[n] for n in dead if n in recs], grace=3.0)  # stray children of a killed leader
        try:
            self._sup.start_all(steps, state, timeout, progress)
        except BaseException:
            self._file.save(state)
            raise
        return self.status()

    def _plan_from_state(self, state: dict) -> GraphPlan:
        bins = state.get("bins") or find_binaries(self.binaries)
        return plan_graph(
            state["graph"], engine=state.get("engine", "mocker"), lab_dir=self.root, ports=state["ports"],
            bins={k: v for k, v in bins.items() if k in ("etcd", "nats-server")}, python=bins["python"],
            model_dir=Path(state["model"]), run_dir=Path(state["run_dir"]), net=self._net(state),
            tmpdir=Path(state["tmpdir"]) if state.get("tmpdir") else None,
            rpc_dir=Path(state["rpcdir"]) if state.get("rpcdir") else None,
        )  # fmt: skip

    def _await_running(self, current: LabStatus, timeout: float) -> LabStatus:
        """The lab is already up: return it once healthy; raise at once for a dead process, or after ``timeout``."""
        deadline = time.monotonic() + timeout
        while not current.healthy:
            dead = [p for p in current.processes.values() if p.detail.startswith("not running")]
            bad = (dead or current.unhealthy())[0]
            if dead or time.monotonic() > deadline:
                raise LabError(
                    f"lab process {bad.name} (log {bad.log})",
                    f"the running lab is unhealthy: {bad.detail}",
                    "run `workshop lab up` again (it restarts what died), or `workshop lab down`",
                )
            time.sleep(0.5)
            current = self.status()
        return current

    def _start(
        self, bins: dict[str, str], model_dir: Path, dgd: dict, engine: str, netns: bool, timeout: float,
        progress: bool,
    ) -> LabStatus:  # fmt: skip
        try:
            ports = procs.pick_ports(self.preferred_ports, max_port=SIGNED_16BIT_PORTS)
        except OSError as exc:
            raise LabError("ports", str(exc), "free some loopback ports") from exc
        moved = [f"port {self.preferred_ports[k]} ({k}) is busy: using {v}" for k, v in ports.items()
                 if v != self.preferred_ports[k]]  # fmt: skip
        for m in moved:
            print(f"lab up: {m}", file=sys.stderr)
        run_dir = new_run_dir(self.root)
        prune_runs(self.root / "runs", keep=keep_runs(), current=run_dir)
        tmp, rpc = run_tmpdir(run_dir)
        state: dict = {"run": run_dir.name, "run_dir": str(run_dir), "started": time.time(), "processes": {}}
        try:
            net = self._new_net(state) if netns else None
            if net is not None and labnet.host_address() is None:  # named, not silent: see labnet.create_lab_net
                moved = [*moved, "no default route on this host: the worker namespaces got no route to the frontend's "
                         "response-stream address (Dynamo 0.9.0 advertises the default-route address); if completions "
                         "time out, add a default route or run without --netns"]
            plan_ = plan_graph(
                dgd, engine=engine, lab_dir=self.root, ports=ports, net=net,
                bins={k: v for k, v in bins.items() if k in ("etcd", "nats-server")}, python=bins["python"],
                model_dir=model_dir, run_dir=run_dir, tmpdir=tmp, rpc_dir=rpc,
            )  # fmt: skip
            url = f"http://{LOOPBACK}:{ports['frontend']}"
            state.update({
                "frontend_url": url, "model": str(model_dir), "engine": engine, "kv_backend": plan_.kv_backend,
                "speedup": self.speedup, "ports": ports, "bins": bins, "graph": dgd,
                "declared": [p.name for p in plan_.processes],
                "metrics_urls": {p.name: p.metrics_url for p in plan_.processes if p.metrics_url},
                "extra_ports": {p.name: p.extra_ports for p in plan_.processes if p.extra_ports},
                "hosts": {p.name: p.host for p in plan_.processes},
                "netns": {p.name: p.netns for p in plan_.processes if p.netns},
                "notes": list(moved), "tmpdir": str(tmp), "rpcdir": str(rpc),
            })  # fmt: skip
            self._file.save(state)  # the declared state first: a lab killed half-way is never reported healthy
            self._sup.start_all(plan_.processes, state, timeout, progress)
        except BaseException:
            self.down()
            raise
        return self.status()

    def _new_net(self, state: dict) -> labnet.LabNet:
        """A new lab network, recorded in ``state`` before it exists (`lab down` removes a half-made one); another lab
        taking the same names at the same moment makes this one pick the next."""
        for attempt in range(5):
            net = labnet.choose_lab_net()
            state["net"] = net.to_json()
            self._file.save(state)
            try:
                return labnet.create_lab_net(net, fresh=True)
            except LabError:
                taken = bool({net.namespace(r) for r in labnet.ROLES} & labnet.existing_namespaces())
                if taken:  # another lab took these names between choose and create: they are not ours to delete
                    state.pop("net")
                    self._file.save(state)
                if attempt == 4 or not taken:
                    raise
        raise AssertionError("unreachable")

    def down(self) -> list[str]:
        """Stop every process this lab started (decode first, etcd last) and delete its network namespaces; returns
        the names that were running.

        Only the recorded process groups are signalled, and only members created after the recorded start, so a
        recycled pid is never touched. Safe to call twice. Logs stay in the run directory.
        """
        state = self._load()
        remove_stale_netns("lab down", keep=_names(self._net(state)))
        if not state:
            return []
        recs = self._records(state)
        order = [recs[n] for n in reversed(NAMES) if n in recs]
        workers = [r for r in order if r.name in ("decode", "prefill", "frontend")]
        stopped = procs.stop(workers, grace=8.0, popens=self._sup.popens)
        stopped += procs.stop([r for r in order if r not in workers], grace=5.0, popens=self._sup.popens)
        self._sup.popens.clear()
        net = self._net(state)
        if net is not None:
            for err in labnet.delete_lab_net(net):
                print(f"lab down: {err}", file=sys.stderr)
        remove_rpc_dir(state)
        self._file.remove()
        return [n for n in reversed(NAMES) if n in stopped]


def _names(net: labnet.LabNet | None) -> set[str]:
    """The namespace and bridge names of ``net`` (what stale-namespace cleanup must leave alone)."""
    return set() if net is None else {net.bridge, *(net.namespace(r) for r in labnet.ROLES)}
