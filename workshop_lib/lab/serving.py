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
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from workshop_lib.errors import LabError, LabUnsupported
from workshop_lib.lab import procs
from workshop_lib.lab.chat import ChatResult, chat
from workshop_lib.lab.model import default_lab_dir, ensure_model
from workshop_lib.lab.stack import (
    DEFAULT_PORTS,
    DEFAULT_SPEEDUP,
    LOOPBACK,
    NAMES,
    SIGNED_16BIT_PORTS,
    extra_ports,
    find_binaries,
    lab_env,
    listed_models,
    plan,
    probe,
)

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

    def status(self) -> LabStatus:
        """Health of every process the state file names: pid alive (same command) + port + service probe."""
        state = self._load()
        if not state:
            return LabStatus(False, None, None, None, {})
        for p in self._popens.values():
            p.poll()  # reap our own children so a dead one is not a zombie
        recs = self._records(state)
        url, model, ports = state.get("frontend_url"), state.get("model"), state.get("ports", {})
        out: dict[str, ProcStatus] = {}
        for name in NAMES:
            rec = recs.get(name)
            if rec is None:
                continue
            alive = procs.is_running(rec)
            if alive:
                healthy, detail = probe(name, rec.port, url, model)
                rss = round(procs.rss_bytes(rec) / 2**20, 1)
            else:
                healthy, rss = False, None
                detail = f"not running (pid {rec.pid} exited); last log lines:\n{procs.tail(rec.log, 15)}"
            out[name] = ProcStatus(
                name, rec.pid, rec.port, Path(rec.log), healthy, detail, rss, extra_ports(name, ports)
            )
        running = any(procs.is_running(r) for r in recs.values())
        return LabStatus(running, Path(state["run_dir"]), url, model, out)

    # -- actions --------------------------------------------------------------------------------------------------
    def up(self, timeout: float = 120, progress: bool = True) -> LabStatus:
        """Start the lab (or return the running one); returns once ``/v1/models`` lists the model and a chat succeeded.

        Raises:
            LabUnsupported: not Linux.
            LabError: a binary is missing, a process exited (with its log tail), a half-dead lab is running, or the
                lab was not ready within ``timeout`` seconds.
        """
        if platform.system() != "Linux":
            raise LabUnsupported(
                "local lab", f"needs Linux (this is {platform.system()})", "use TARGET='eks' or a Linux machine/VM"
            )
        current = self.status()
        if current.running:
            return self._await_running(current, timeout)
        bins = find_binaries(self.binaries)
        model_dir = ensure_model(lab_dir=self.root)
        deadline = time.monotonic() + timeout
        for attempt in range(1, 4):
            try:
                return self._start(bins, model_dir, max(deadline - time.monotonic(), 10.0), progress)
            except LabError as exc:
                # Another program may take a port between our check and the server's bind: try again.
                if attempt == 3 or "already in use" not in str(exc).lower():
                    raise
        raise AssertionError("unreachable")

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
                    "run `workshop lab down` then `workshop lab up`",
                )
            time.sleep(0.5)
            current = self.status()
        return current

    def _start(self, bins: dict[str, str], model_dir: Path, timeout: float, progress: bool) -> LabStatus:
        try:
            ports = procs.pick_ports(self.preferred_ports, max_port=SIGNED_16BIT_PORTS)
        except OSError as exc:
            raise LabError("ports", str(exc), "free some loopback ports") from exc
        run_dir = self._new_run_dir()
        url = f"http://{LOOPBACK}:{ports['frontend']}"
        state = {
            "run": run_dir.name,
            "run_dir": str(run_dir),
            "started": time.time(),
            "frontend_url": url,
            "model": str(model_dir),
            "speedup": self.speedup,
            "ports": ports,
            "processes": {},
        }
        self._save(state)
        env = lab_env(ports)
        try:
            self._start_all(plan(bins, ports, model_dir, run_dir, self.speedup), env, state, timeout, progress)
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

    def _start_all(self, steps: list, env: dict, state: dict, timeout: float, progress: bool) -> None:
        from tqdm.auto import tqdm

        deadline = time.monotonic() + timeout
        url, model = state["frontend_url"], state["model"]
        run_dir = Path(state["run_dir"])
        waits: dict[str, Callable[[], bool]] = {
            "etcd": lambda: probe("etcd", state["ports"]["etcd"], None, None)[0],
            "nats": lambda: procs.port_accepts(state["ports"]["nats"]),
            "frontend": lambda: procs.port_accepts(state["ports"]["frontend"]),
        }
        bar = tqdm(total=len(steps) + 2, desc="lab up", unit="step", disable=not progress, leave=True)
        try:
            for name, argv, extra, port in steps:
                bar.set_postfix_str(f"starting {name}")
                try:
                    rec, popen = procs.spawn(name, argv, {**env, **extra}, run_dir / f"{name}.log", port)
                except OSError as exc:
                    raise LabError(name, f"cannot start {argv[0]} ({exc})", "run `workshop lab setup`") from exc
                self._popens[name] = popen
                state["processes"][name] = rec.to_json()
                self._save(state)
                if name in waits:
                    self._wait(f"{name} accepts connections", waits[name], state, deadline)
                bar.update(1)
            bar.set_postfix_str("waiting for /v1/models")
            self._wait(f"/v1/models at {url} lists {model}", lambda: model in listed_models(url), state, deadline)
            bar.update(1)
            bar.set_postfix_str("first chat completion")
            self._wait("a first chat completion", lambda: _chat_ok(url, model), state, deadline)
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
        state = self._load()
        if not state:
            return []
        recs = self._records(state)
        order = [recs[n] for n in reversed(NAMES) if n in recs]
        workers = [r for r in order if r.name in ("decode", "prefill", "frontend")]
        stopped = procs.stop(workers, grace=8.0, popens=self._popens)
        stopped += procs.stop([r for r in order if r not in workers], grace=5.0, popens=self._popens)
        self._popens.clear()
        self.state_path.unlink(missing_ok=True)
        return [n for n in reversed(NAMES) if n in stopped]


def _chat_ok(url: str, model: str) -> bool:
    try:
        return chat(url, model, "Say hello.", stream=False, max_tokens=4, timeout=10).tokens > 0
    except LabError:
        return False
