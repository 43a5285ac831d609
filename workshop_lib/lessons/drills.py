"""Break it on purpose: local drills a learner runs in about a minute, each with a check of the symptom they saw.

Every drill has a runner (real processes of the lab, nothing simulated) and a pure ``check_*`` function that takes
what the learner saw (a log, a table, an error) and says whether it is the symptom the drill teaches. The checks are
pure so that each has a test with an input that must pass and one that must fail.

Drills:

- ``backend_env``: set ``NIXL_BACKEND=LIBFABRIC`` and start a NIXL agent the way vLLM's NixlConnector does when
  ``kv_connector_extra_config`` names no backends: the log still says ``Backend UCX was instantiated``.
- ``corrupt_kv``: LIBFABRIC with several descriptors per request on the tcp provider (the lab's fallback): the
  bytes arrive wrong and the pair's integrity check (a checksum per block) catches it.
- ``colocate``: pin prefill and decode to one node in the cross-node graph: the kit refuses before deploying; on
  EFA the decode side would log ``fi_read still retrying EAGAIN``.
- ``decode_oom``: too little memory for a worker: the check reads an OOMKilled event, exit code 137 or the engine's
  own "not enough memory" line (the runner needs the real engine on the lab; see :data:`DRILLS`).

Example:
    >>> check_backend_env("NIXL INFO _api.py:363 Backend UCX was instantiated").saw
    True
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

EAGAIN_SOURCE = ("https://github.com/ai-dynamo/dynamo/blob/3c426420d09668b022d27797fc1ac21fb36d3257/docs/kubernetes/"
                 "disagg-communication-guide.md")


@dataclass(frozen=True)
class Drill:
    """What a drill asks the learner to do, the symptom to look for, and where it runs."""

    name: str
    do: str
    symptom: str
    runs_on: str
    minutes: float


DRILLS: list[Drill] = [
    Drill("backend_env", "set NIXL_BACKEND=LIBFABRIC and start a NIXL agent as vLLM does (no backends list)",
          "Backend UCX was instantiated: nothing reads NIXL_BACKEND", "local (one NIXL agent)", 0.2),
    Drill("corrupt_kv", "run the LIBFABRIC pair with 8 descriptors per request on the tcp provider",
          "the integrity check marks the block size verified=False", "local (NIXL pair)", 0.2),
    Drill("colocate", "pin PREFILL_NODE and DECODE_NODE to the same node in the cross-node graph",
          "the kit refuses (decode_node); on EFA: fi_read still retrying EAGAIN", "local (config + render)", 0.1),
    Drill("decode_oom", "give the decode worker less memory than it needs",
          "OOMKilled / exit code 137, or the engine's own out-of-memory line", "real engine on the lab or EKS", 2.0),
]


@dataclass(frozen=True)
class SymptomCheck:
    """Did the learner see the drill's symptom? ``evidence`` is the line or value that decided it."""

    drill: str
    saw: bool
    evidence: str
    explanation: str

    def __str__(self) -> str:
        head = "You saw the symptom" if self.saw else "That is not the symptom this drill teaches"
        return f"{head} ({self.drill}): {self.evidence}\n{self.explanation}"


def drills_table() -> pd.DataFrame:
    """:data:`DRILLS` as a table."""
    import pandas as pd

    return pd.DataFrame([d.__dict__ for d in DRILLS])


# ------------------------------------------------------------------------------------------------ backend_env
_BACKEND_RE = re.compile(r"Backend (\w+) was instantiated")


def check_backend_env(log_text: str, asked: str = "LIBFABRIC") -> SymptomCheck:
    """The symptom: ``NIXL_BACKEND=<asked>`` was set, yet the log instantiated another backend (UCX)."""
    got = _BACKEND_RE.findall(log_text)
    line = next((ln.strip() for ln in log_text.splitlines() if _BACKEND_RE.search(ln)), "(no 'Backend ... was "
                "instantiated' line: set NIXL_LOG_LEVEL=INFO)")
    saw = bool(got) and asked.upper() not in {g.upper() for g in got}
    why = ("NIXL_BACKEND is read by nothing in the pinned stack (NIXL 0.9.0, vLLM 0.14.1): vLLM takes the backend from "
           "--kv-transfer-config kv_connector_extra_config.backends, and defaults to UCX." if saw else
           f"the log shows {got or 'no backend'}; the drill expects {asked} asked for and UCX instantiated")
    return SymptomCheck("backend_env", saw, line, why)


_AGENT_CODE = """
import sys
from nixl._api import nixl_agent, nixl_agent_config
agent = nixl_agent("drill-backend-env", nixl_agent_config())  # backends default to ['UCX'], as vLLM's do
print("backends:", sorted(agent.backends), flush=True)
"""


def run_backend_env(log_dir: Path, asked: str = "LIBFABRIC", timeout_s: float = 180.0) -> str:
    """Start one NIXL 0.9.0 agent with ``NIXL_BACKEND=<asked>`` and no backend list; return its log text.

    Raises:
        RuntimeError: the agent failed to start (the message holds the log's tail and the fix).
    """
    from workshop_lib.lab import setup

    env = {**os.environ, **setup.lab_env(dict(os.environ)), "NIXL_BACKEND": asked, "NIXL_LOG_LEVEL": "INFO"}
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / "backend-env.log"
    r = subprocess.run([sys.executable, "-c", _AGENT_CODE], env=env, capture_output=True, text=True, timeout=timeout_s,
                       check=False)
    text = r.stdout + r.stderr
    log.write_text(text)
    if r.returncode != 0:
        raise RuntimeError(f"the drill's NIXL agent exited {r.returncode} (log {log}): {text[-400:]}; "
                           "run `workshop lab setup` first")
    return text


# ------------------------------------------------------------------------------------------------ corrupt_kv
def check_corrupt_kv(frame: pd.DataFrame, meta: dict[str, Any] | None = None) -> SymptomCheck:
    """The symptom: at least one block size of the pair came back ``verified=False`` (checksum mismatch)."""
    bad = frame[~frame["verified"].astype(bool)] if len(frame) else frame
    diag = (meta or {}).get("diagnosis") or ""
    if len(bad):
        r = bad.iloc[0]
        ev = f"block {int(r['block_size'])} B x batch {int(r['batch'])} on {r['transport']}: verified=False"
        if diag:
            ev += f"; {diag}"
        return SymptomCheck("corrupt_kv", True, ev,
                            "the bytes that arrived differ from the bytes sent, and NIXL reported success: only an "
                            "end-to-end check (a checksum per block) catches it. Never trust a transfer you have not "
                            "verified; on EFA keep FI_EFA_ENABLE_SHM_TRANSFER=0 for the same reason.")
    return SymptomCheck("corrupt_kv", False, f"all {len(frame)} sizes verified",
                        "every block arrived intact: run the drill's pair (LIBFABRIC, batch 8, tcp provider)")


def run_corrupt_kv(log_dir: Path, batch: int = 8, size: int = 64 * 1024, iters: int = 5) -> tuple[pd.DataFrame, dict]:
    """The LIBFABRIC pair with ``batch`` descriptors per request (about 3 s here); returns its rows and meta."""
    from workshop_lib.lab.nixl_pair import NixlPairSpec, run_pair

    res = run_pair(NixlPairSpec(backend="LIBFABRIC", sizes=[size], iters=iters, batch=batch), Path(log_dir),
                   progress=False)
    return res.to_frame(), res.meta


# ------------------------------------------------------------------------------------------------ colocate
def check_colocate(seen: str | BaseException) -> SymptomCheck:
    """The symptom: the kit refused one node for both workers, or an EFA log says ``fi_read still retrying EAGAIN``."""
    text = str(seen)
    field = getattr(seen, "field", "")
    if "EAGAIN" in text:
        line = next(ln for ln in text.splitlines() if "EAGAIN" in ln).strip()
        return SymptomCheck("colocate", True, line, "same-node EFA reads stall: pin prefill and decode to two nodes "
                            f"of one availability zone (Dynamo disagg guide: {EAGAIN_SOURCE})")
    if field == "decode_node" or ("both pinned" in text and "decode" in text):
        return SymptomCheck("colocate", True, text.splitlines()[0],
                            "the kit refuses before anything is deployed; on EFA the decode side would log "
                            "'fi_read still retrying EAGAIN on rail 0' (quoted in the Dynamo disagg guide: "
                            f"{EAGAIN_SOURCE})")
    return SymptomCheck("colocate", False, text.splitlines()[0] if text else "(nothing)",
                        "set PREFILL_NODE and DECODE_NODE to the same name and render the cross-node graph")


def run_colocate(node: str = "ip-10-0-0-1.ec2.internal") -> str | BaseException:
    """Render the cross-node graph with prefill and decode pinned to ``node``; returns the error (or the file path)."""
    from workshop_lib.config import WorkshopConfig
    from workshop_lib.errors import ConfigError
    from workshop_lib.manifests import render

    try:
        cfg = WorkshopConfig(target="eks", prefill_node=node, decode_node=node)
        files = render(cfg, "cross-node")
    except ConfigError as exc:
        return exc
    return files[0].path


# ------------------------------------------------------------------------------------------------ decode_oom
_OOM_RE = re.compile(r"OOMKilled|exit code:?\s*137|Exit Code:\s*137|out of memory|No available memory for the cache "
                     r"blocks|Cannot allocate memory|MemoryError", re.IGNORECASE)


def check_decode_oom(text: str) -> SymptomCheck:
    """The symptom: an OOM kill (OOMKilled, exit 137) or the engine's own out-of-memory error."""
    line = next((ln.strip() for ln in text.splitlines() if _OOM_RE.search(ln)), None)
    if line:
        return SymptomCheck("decode_oom", True, line,
                            "the worker needed more memory than it was given; read the budget in notebook 03 and "
                            "give the worker what it needs (128Gi for LIBFABRIC on P5)")
    return SymptomCheck("decode_oom", False, (text.strip().splitlines() or ["(nothing)"])[-1],
                        "no OOM kill and no out-of-memory line: lower the worker's memory further")


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """``fn(*args, **kwargs)`` and its wall time in seconds (drills report how long they took)."""
    t0 = time.monotonic()
    out = fn(*args, **kwargs)
    return out, round(time.monotonic() - t0, 1)
