"""The memory lesson: a worker's host-memory budget, term by term, measured where the lab can and labelled where not.

Why 64Gi workers were OOMKilled at LIBFABRIC init on P5 (seed workshop) is not explained by one term: the NIXL
control pools of 33 rails are about 1 GiB (arithmetic from the NIXL 0.9.0 source), far below 64Gi. The budget lists
every term a worker pays, says for each whether this machine measured it or the kit asserts it (and from what), and
ends with what the known terms do *not* explain.

Measured here: :func:`measure_pair_rss` runs the lab's NIXL pair (two real NIXL 0.9.0 agents) once per backend and
reads each agent's peak resident memory (``VmHWM`` in ``/proc/<pid>/status``, sampled while it runs).

Example:
    >>> budget_rows(efa=32, model_params_b=0.6)[0]["term"]
    'NIXL control pools (all rails)'
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workshop_lib.parsing import MiB

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

MEASURED = "measured here"
ASSERTED = "asserted (not measured here)"
BUDGET_COLUMNS = ["term", "per worker", "mib", "how we know", "basis"]


def gib(quantity: str) -> float:
    """A Kubernetes memory quantity in GiB (``"16Gi"`` -> 16.0, ``"512Mi"`` -> 0.5).

    Raises:
        ValueError: not a binary-unit quantity.
    """
    units = {"Ki": 1 / 2**20, "Mi": 1 / 1024, "Gi": 1.0, "Ti": 1024.0}
    q = str(quantity).strip()
    for unit, factor in units.items():
        if q.endswith(unit):
            return float(q[: -len(unit)]) * factor
    raise ValueError(f"memory quantity {quantity!r} needs a binary unit (Ki, Mi, Gi, Ti), e.g. 16Gi")


def model_params_b(model: str) -> float | None:
    """Billions of parameters from a model id that states them (``Qwen/Qwen3-0.6B`` -> 0.6), else None.

    >>> model_params_b("Qwen/Qwen2.5-7B-Instruct"), model_params_b("my-model")
    (7.0, None)
    """
    import re

    m = re.search(r"(\d+(?:\.\d+)?)B(?![a-z])", model.split("/")[-1], re.IGNORECASE)
    return float(m.group(1)) if m else None


def _status_kib(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


@dataclass
class PeakSampler:
    """Samples the peak RSS (``VmHWM``) of this process's descendants whose command line contains ``needle``.

    ``VmHWM`` is the kernel's own high-water mark of a process's resident memory, so a sample taken any time after
    the peak still sees it; sampling only has to catch the process before it exits.
    """

    needle: str
    interval_s: float = 0.05
    peaks: dict[int, int] = field(default_factory=dict)  # pid -> peak bytes
    cmdlines: dict[int, str] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _loop(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.is_set():
            for child in me.children(recursive=True):
                try:
                    cmd = " ".join(child.cmdline())
                except (psutil.Error, OSError):
                    continue
                if self.needle not in cmd:
                    continue
                kib = _status_kib(child.pid, "VmHWM")
                if kib is not None:
                    self.peaks[child.pid] = max(self.peaks.get(child.pid, 0), kib * 1024)
                    self.cmdlines[child.pid] = cmd
            self._stop.wait(self.interval_s)

    def __enter__(self) -> PeakSampler:
        self._thread = threading.Thread(target=self._loop, daemon=True, name="peak-rss")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def measure_pair_rss(backend: str, log_dir: Path, size: int = 1 << 20, iters: int = 5, netns: bool = False) -> dict[str, Any]:
    """Run the lab's NIXL pair for ``backend`` and return each agent's peak RSS (MiB) and what the log says.

    Raises:
        RuntimeError: no agent was sampled (the pair ran too fast or under another parent).
    """
    from workshop_lib.lab.nixl_pair import NixlPairSpec, run_pair
    from workshop_lib.logs.diagnose import diagnose

    spec = NixlPairSpec(backend=backend, sizes=[size], iters=iters, netns=netns)
    t0 = time.monotonic()
    with PeakSampler("nixl_agent") as sampler:
        result = run_pair(spec, log_dir, progress=False)
    if not sampler.peaks:
        raise RuntimeError(f"measure_pair_rss({backend}): no nixl_agent process was sampled; rerun, or check "
                           f"that the pair starts agents as child processes (logs in {log_dir})")
    peaks = sorted(sampler.peaks.values())
    diag = diagnose(result.logs["initiator"])
    return {
        "backend": backend,
        "agents": len(peaks),
        "peak_rss_mib_max": round(peaks[-1] / MiB, 1),
        "peak_rss_mib_min": round(peaks[0] / MiB, 1),
        "data_rails": diag.data_rails,
        "provider": diag.libfabric_provider,
        "region_mib": round(size / MiB, 2),
        "verified": result.all_verified,
        "seconds": round(time.monotonic() - t0, 1),
    }


def measure_backends(log_root: Path, backends: tuple[str, ...] = ("UCX", "LIBFABRIC"), netns: bool = False) -> pd.DataFrame:
    """:func:`measure_pair_rss` for each backend, one row each (about 4 s per backend here)."""
    import pandas as pd

    rows = [measure_pair_rss(b, Path(log_root) / f"rss-{b.lower()}", netns=netns) for b in backends]
    return pd.DataFrame(rows)


def libfabric_overhead_mib(measured: pd.DataFrame) -> float | None:
    """Peak RSS of a LIBFABRIC agent minus a UCX agent's (same size, same machine), or None without both rows."""
    by = {r["backend"]: r["peak_rss_mib_max"] for _, r in measured.iterrows()}
    if "LIBFABRIC" not in by or "UCX" not in by:
        return None
    return round(by["LIBFABRIC"] - by["UCX"], 1)


def budget_rows(efa: int = 32, model_params_b: float | None = 0.6, shm_gib: float = 16.0,
                measured: pd.DataFrame | None = None, engine_rss_mib: float | None = None,
                engine_label: str = "") -> list[dict[str, Any]]:
    """The budget of one P5 worker (one GPU, ``efa`` EFA devices), term by term, each labelled measured/asserted."""
    from workshop_lib.sections.s03_cross_node import CONTROL_BUFFER_BYTES, CONTROL_POOL_BUFFERS, registered_bytes

    pool = CONTROL_POOL_BUFFERS * CONTROL_BUFFER_BYTES
    rows: list[dict[str, Any]] = [
        {"term": "NIXL control pools (all rails)", "per worker": f"({efa} data + 1 control) x {pool // MiB} MiB",
         "mib": round(registered_bytes(efa) / MiB, 1), "how we know": ASSERTED,
         "basis": "arithmetic from the NIXL 0.9.0 source: 4096 x 8 KiB registered per rail, one rail per EFA device"},
        {"term": "VRAM registration", "per worker": "on the GPU's 4 local EFA rails only",
         "mib": 0.0, "how we know": ASSERTED,
         "basis": "NIXL 0.9.0 selectRailsForMemory: GPU memory is registered (pinned on the GPU), not copied to host; "
                  "the other 28 rails carry no KV"},
        {"term": "EFA provider buffers per rail", "per worker": f"{efa} x (unknown)", "mib": None,
         "how we know": "not measured: no EFA device here",
         "basis": "libfabric's efa provider allocates its own packet pools per endpoint; size not published for P5"},
        {"term": "/dev/shm (sharedMemory)", "per worker": f"up to {shm_gib:g} GiB", "mib": None, "how we know": ASSERTED,
         "basis": "tmpfs pages count against the pod's memory limit once written; the size is a ceiling, "
                  "not a reservation"},
        {"term": "model weights while loading",
         "per worker": f"{model_params_b:g}B params x 2 bytes (bf16)" if model_params_b else "model size unknown",
         "mib": round(model_params_b * 1e9 * 2 / MiB, 1) if model_params_b else None, "how we know": ASSERTED,
         "basis": "safetensors are read through host memory (page cache charged to the pod) on the way to the GPU"},
    ]
    if engine_rss_mib is not None:
        rows.append({"term": "engine process (host side)", "per worker": engine_label or "this lab's worker",
                     "mib": round(engine_rss_mib, 1), "how we know": MEASURED,
                     "basis": "RSS of the lab's worker process (CPU engine: not the size of a GPU worker's)"})
    else:
        rows.append({"term": "engine process (host side)", "per worker": "python + torch + CUDA context",
                     "mib": None, "how we know": "not measured: start the lab first", "basis": ""})
    if measured is not None and not measured.empty:
        for _, r in measured.iterrows():
            rails = _rails(r)
            where = f"{rails} data + 1 control rail, provider {r['provider']}" if rails else "UCX (no rails)"
            rows.append({"term": f"NIXL agent peak RSS, {r['backend']}", "per worker": f"{where}, "
                         f"{r['region_mib']} MiB region",
                         "mib": r["peak_rss_mib_max"], "how we know": MEASURED,
                         "basis": "VmHWM of the lab's NIXL pair agents (sampled every 50 ms)"})
        extra = libfabric_overhead_mib(measured)
        lf = measured[measured["backend"] == "LIBFABRIC"]
        rails = _rails(lf.iloc[0]) if len(lf) else None
        if extra is not None and rails:
            arith = registered_bytes(rails) / MiB
            rows.append({"term": "LIBFABRIC - UCX (same pair)", "per worker": "what the LIBFABRIC backend adds here",
                         "mib": extra, "how we know": MEASURED,
                         "basis": f"difference of the two measured peaks; the arithmetic for {rails} data + 1 control "
                                  f"rail(s) says {arith:.0f} MiB"})
    return rows


def _rails(row: Any) -> int | None:
    value = row.get("data_rails") if hasattr(row, "get") else None
    try:
        return int(value) if value is not None and value == value else None
    except (TypeError, ValueError):
        return None


def budget(efa: int = 32, model_params_b: float | None = 0.6, shm_gib: float = 16.0, measured: pd.DataFrame | None = None,
           engine_rss_mib: float | None = None, engine_label: str = "") -> pd.DataFrame:
    """:func:`budget_rows` as a DataFrame with :data:`BUDGET_COLUMNS`."""
    import pandas as pd

    return pd.DataFrame(budget_rows(efa, model_params_b, shm_gib, measured, engine_rss_mib, engine_label),
                        columns=BUDGET_COLUMNS)


def shortfall(frame: pd.DataFrame, limit_gib: float = 64.0) -> str:
    """What the known (numeric, asserted) terms add up to against ``limit_gib``, and what that leaves unexplained."""
    known = frame[frame["how we know"] == ASSERTED]["mib"].dropna().sum()
    left = limit_gib * 1024 - known
    return (f"Known per-worker terms add up to {known / 1024:.1f} GiB, {left / 1024:.1f} GiB short of the "
            f"{limit_gib:g}Gi limit. The rails alone cannot explain an OOM at {limit_gib:g}Gi. What the kit cannot "
            "measure without EFA (the efa provider's per-rail buffers x 32, /dev/shm use, the engine's host buffers "
            "on a GPU image) must make up the rest; the 128Gi figure is an observation (seed workshop: 64Gi was "
            "OOMKilled at init, 128Gi ran), not a derivation. On EKS read the real peak: "
            "kubectl exec <worker-pod> -- cat /sys/fs/cgroup/memory.peak")
