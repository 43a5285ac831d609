"""Two NIXL 0.9.0 agents in two processes moving real bytes: the local lab's KV-transfer pair.

The initiator reads from (READ) or writes to (WRITE) the target's registered buffers, one row per block size, each
verified by checksum. Per-process logs are captured with NIXL, libfabric and UCX at INFO (and UCX_PROTO_INFO), at
the paths the result reports, for the log parser to diagnose.

How the two agents meet:

- NIXL metadata (connection info and memory keys) goes through NIXL's own listener: the target listens on a free
  port picked here, the initiator (listening on port 0, which ``fetch_remote_metadata`` needs) fetches the target's
  metadata and sends its own (``send_local_metadata``). This is the reliable path on 0.9.0 and is what
  ``meta["metadata_exchange"]`` records.
- Buffer addresses, checksums and results travel over a private Unix socket between this process and each agent
  (the application's side channel, as vLLM's ZMQ channel is).

With ``netns=True`` each agent runs in its own network namespace joined by a veth pair (root only), so the bytes
cross a network interface; otherwise everything stays on loopback (UCX still prefers CMA, a kernel memory copy,
unless ``ucx_tls="tcp"``).

The processes (readiness checks, placement, environment, the handle on each agent) live in
:mod:`workshop_lib.lab.nixl_launch`; this module holds the spec, the rows and the run's conversation.

Example:
    >>> from workshop_lib.parsing import parse_sizes
    >>> res = run_pair(NixlPairSpec(backend="UCX", op="READ", sizes=parse_sizes("4K,1M")))   # doctest: +SKIP
    >>> res.to_frame()[["block_size", "gbps", "verified", "transport"]]                      # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workshop_lib.bench.stats import percentile
from workshop_lib.config import KV_BACKENDS
from workshop_lib.errors import ConfigError
from workshop_lib.lab import setup as lab_setup
from workshop_lib.lab.nixl_diag import diagnose, summary_line, zero_checksum
from workshop_lib.lab.nixl_launch import (
    AgentDied,
    AgentProcess,
    agent_env,
    check_ready,
    default_log_dir,
    free_port,
    placement,
)
from workshop_lib.lab.nixl_plan import (
    DEFAULT_SIZES,
    MEMS,
    OPS,
    IterPolicy,
    gbps,
    libfabric_transport,
    pct_of_peer_copy,
    read_lines,
    scan_libfabric,
    scan_ucx_proto_info,
    total_region_bytes,
    ucx_transport_for,
)
from workshop_lib.parsing import GiB, format_size

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "NixlPairSpec",
    "NixlPairResult",
    "TransferRow",
    "ROW_COLUMNS",
    "run_pair",
    "AgentDied",
]

BACKENDS = KV_BACKENDS
METADATA_EXCHANGE = "NIXL listener: initiator fetch_remote_metadata + send_local_metadata (both agents listening)"
MAX_REGION_BYTES = {"DRAM": 4 * GiB, "VRAM": 16 * GiB}  # per side, all sizes together
WRITE_SETTLE_S = 2.0  # LIBFABRIC/tcp: a WRITE's bytes reach the target's memory ~20 ms after the initiator's DONE


@dataclass
class NixlPairSpec:
    """What to run: backend, operation, block sizes and how hard to push.

    ``batch`` descriptors (KV blocks) go in each transfer request and ``inflight`` requests are kept in flight, as
    inference engines do. ``iters=0`` picks a count per size (enough bytes for a stable figure, bounded time).
    """

    backend: str = "UCX"  # UCX | LIBFABRIC
    op: str = "READ"  # READ | WRITE
    sizes: list[int] = field(default_factory=lambda: list(DEFAULT_SIZES))  # bytes
    iters: int = 0  # 0: auto per size
    mem: str = "DRAM"  # DRAM | VRAM
    gpus: tuple[int, int] = (0, 1)  # initiator GPU, target GPU (VRAM only)
    netns: bool = False  # two network namespaces joined by a veth pair (root only)
    ucx_tls: str | None = None  # e.g. "tcp" to show the network path (same-host UCX uses CMA)
    batch: int = 1  # descriptors (KV blocks) per transfer request
    inflight: int = 1  # transfer requests kept in flight
    seed: int = 20260211  # pattern seed (per size: seed + index)
    isolate: bool | None = None  # without netns: both agents in one private namespace (None: when root)
    timeout_s: float = 600.0  # the whole run, start to exit

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first bad field."""
        self.backend = str(self.backend).upper()
        self.op = str(self.op).upper()
        self.mem = str(self.mem).upper()
        if self.backend not in BACKENDS:
            raise ConfigError("backend", f"{self.backend!r} is not a lab backend", f"use one of {', '.join(BACKENDS)}")
        if self.op not in OPS:
            raise ConfigError("op", f"{self.op!r} is not a NIXL operation", "use READ or WRITE")
        if self.mem not in MEMS:
            raise ConfigError("mem", f"{self.mem!r} is not a memory type", "use DRAM or VRAM")
        if not self.sizes or any(int(s) <= 0 for s in self.sizes):
            raise ConfigError("sizes", f"{self.sizes!r} must be positive byte counts", "e.g. parse_sizes('4K,1M')")
        self.sizes = [int(s) for s in self.sizes]
        if len(set(self.sizes)) != len(self.sizes):
            raise ConfigError("sizes", f"{self.sizes!r} repeats a size", "list each block size once")
        for name in ("batch", "inflight"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(name, f"{getattr(self, name)!r} must be >= 1", f"e.g. --{name} 1")
        if self.iters < 0:
            raise ConfigError("iters", f"{self.iters} is negative", "use 0 (auto) or a positive count")
        self.gpus = (int(self.gpus[0]), int(self.gpus[1]))
        total = total_region_bytes(self.sizes, self.batch, self.inflight)
        if total > MAX_REGION_BYTES[self.mem]:
            raise ConfigError(
                "sizes/batch/inflight",
                f"each side would register {total / GiB:.1f} GiB of {self.mem} "
                f"(sum of size x batch x inflight), over the {MAX_REGION_BYTES[self.mem] / GiB:.0f} GiB limit",
                "use fewer or smaller sizes, or a smaller --batch/--inflight",
            )
        if self.ucx_tls is not None and not str(self.ucx_tls).strip():
            self.ucx_tls = None
        if self.timeout_s <= 0:
            raise ConfigError("timeout_s", f"{self.timeout_s} must be positive", "e.g. 600")


@dataclass
class TransferRow:
    """One block size of a run: throughput, latency, and whether the bytes arrived intact."""

    backend: str
    op: str
    mem: str
    block_size: int
    batch: int
    inflight: int
    iters: int
    bytes_moved: int
    seconds: float
    gbps: float
    lat_p50_us: float | None
    lat_p99_us: float | None
    verified: bool
    transport: str | None
    peer_copy_gbps: float | None = None
    pct_of_peer_copy: float | None = None


ROW_COLUMNS = [f.name for f in TransferRow.__dataclass_fields__.values()]


@dataclass
class NixlPairResult:
    """Rows, the two log paths (``"initiator"``, ``"target"``) and run metadata."""

    spec: NixlPairSpec
    rows: list[TransferRow]
    logs: dict[str, Path]
    meta: dict[str, Any]

    def to_frame(self) -> pd.DataFrame:
        """The rows as a DataFrame with the stable columns of :data:`ROW_COLUMNS`."""
        import pandas as pd

        frame = pd.DataFrame([asdict(r) for r in self.rows], columns=ROW_COLUMNS)
        return frame.astype({"verified": bool})

    def to_json(self) -> dict[str, Any]:
        """Everything, JSON-serialisable (paths as strings)."""
        return {
            "spec": asdict(self.spec),
            "rows": [asdict(r) for r in self.rows],
            "logs": {k: str(v) for k, v in self.logs.items()},
            "meta": self.meta,
        }

    @property
    def all_verified(self) -> bool:
        return bool(self.rows) and all(r.verified for r in self.rows)


def _row_timeout(spec: NixlPairSpec, block: int, policy: IterPolicy) -> float:
    per_req = block * spec.batch
    n = spec.iters if spec.iters > 0 else policy.iters_for(block, spec.batch, spec.inflight)
    slow = per_req * (n + spec.inflight) / 20e6  # a 20 MB/s floor
    return 60.0 + (slow if spec.iters > 0 else min(slow, policy.time_budget_s * 3 + per_req / 20e6 * spec.inflight))


def run_pair(spec: NixlPairSpec, log_dir: Path | None = None, progress: bool = True) -> NixlPairResult:
    """Run the two agents, one row per block size; raise :class:`AgentDied` if an agent dies or hangs.

    Nothing is left running afterwards, whatever happens (agents are killed by process group, namespaces
    deleted). Rows whose checksum did not match come back with ``verified=False``.
    """
    spec.validate()
    facts = check_ready(spec)
    log_dir = Path(log_dir) if log_dir else default_log_dir(spec)
    log_dir.mkdir(parents=True, exist_ok=True)
    logs = {"initiator": log_dir / "initiator.log", "target": log_dir / "target.log"}
    for p in logs.values():
        p.write_bytes(b"")
    policy = IterPolicy()
    started = time.time()
    deadline = time.monotonic() + spec.timeout_s
    agents: dict[str, AgentProcess] = {}
    meta: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "host": socket.gethostname(),
        "metadata_exchange": METADATA_EXCHANGE,
        "side_channel": "Unix socket pair between the parent and each agent (addresses, checksums, results)",
        "log_dir": str(log_dir),
        **facts,
    }

    def left(cap: float) -> float:
        return max(1.0, min(cap, deadline - time.monotonic()))

    rows_raw: list[dict[str, Any]] = []
    block_sums: dict[str, dict[str, list[str]]] = {}
    with placement(spec) as place:
        try:
            addrs, prefixes, devs = place.addrs, place.prefixes, place.devs
            if place.mode == "netns" and spec.backend == "UCX" and not spec.ucx_tls:
                spec.ucx_tls = "tcp"  # CMA needs one network namespace; between two, UCX must use TCP
                meta["ucx_tls_note"] = "UCX_TLS=tcp set for --netns (shared memory does not cross namespaces)"
            meta["placement"] = {"mode": place.mode, "note": place.note, **place.detail}
            if place.mode == "netns":
                meta["netns"] = place.detail
            port = free_port()
            knobs_by_role = {}
            for role in ("target", "initiator"):
                env, knobs = agent_env(spec, role, devs[role])
                knobs_by_role[role] = knobs
                agents[role] = AgentProcess(role, prefixes[role], env, logs[role])
            peers = {"initiator": (agents["target"],), "target": (agents["initiator"],)}
            meta["env_knobs"] = knobs_by_role
            meta["poll"] = "yield between checks" if spec.backend == "LIBFABRIC" else "busy"
            meta["ld_library_path"] = lab_setup.lab_env().get("LD_LIBRARY_PATH", "")
            meta["addresses"] = addrs
            meta["target_listen_port"] = port
            common = {
                "cmd": "config",
                "backend": spec.backend,
                "op": spec.op,
                "mem": spec.mem,
                "sizes": spec.sizes,
                "batch": spec.batch,
                "inflight": spec.inflight,
                "seed": spec.seed,
                "xfer_timeout_s": 30.0,
                # LIBFABRIC (0.9.0): a tight check_xfer_state loop starves the plugin's progress thread (4 KiB READ
                # p50 ~16 ms busy-polling, ~0.15 ms yielding, on 2 cores); UCX completes inside the check itself.
                "poll_sleep_s": 0.0 if spec.backend == "LIBFABRIC" else None,
                "iter_policy": asdict(policy),
            }
            agents["target"].send(**common, name="target", listen_port=port, gpu=spec.gpus[1])
            agents["initiator"].send(**common, name="initiator", listen_port=0, gpu=spec.gpus[0])
            ready = {r: agents[r].expect("ready", left(120), peers[r]) for r in ("target", "initiator")}
            meta["pids"] = {r: m["pid"] for r, m in ready.items()}
            meta["hostnames"] = {r: m["hostname"] for r, m in ready.items()}
            meta["nixl_versions"] = ready["initiator"]["versions"]
            meta["nixl_version"] = ready["initiator"]["versions"].get("nixl")
            meta["plugins"] = ready["initiator"]["plugins"]
            meta["torch_stand_in"] = not ready["initiator"]["torch_real"]
            reg_timeout = 60 + total_region_bytes(spec.sizes, spec.batch, spec.inflight) / 50e6
            regs = {r: agents[r].expect("registered", left(reg_timeout), peers[r]) for r in ("target", "initiator")}
            agents["initiator"].send(cmd="connect", peer_name="target", ip=addrs["target"], port=port, timeout_s=30)
            agents["target"].send(cmd="await_peer", peer_name="initiator", timeout_s=40)
            conn = agents["initiator"].expect("connected", left(45), peers["initiator"])
            agents["target"].expect("connected", left(45), peers["target"])
            meta["metadata_seconds"] = conn.get("seconds")
            agents["initiator"].send(cmd="notify", peer_name="target", text="workshop-lab-hello")
            agents["target"].send(cmd="await_notif", peer_name="initiator", text="workshop-lab-hello", timeout_s=10)
            agents["initiator"].expect("notified", left(15), peers["initiator"])
            meta["notification_received"] = agents["target"].expect("notif", left(15), peers["target"])["received"]
            sizes_msg = [{"block": b, "iters": spec.iters} for b in spec.sizes]
            run_msg: dict[str, Any] = {
                "cmd": "run",
                "peer_name": "target",
                "regions": regs["target"]["regions"],
                "sizes": sizes_msg,
            }
            if spec.mem == "VRAM":
                # the direction the bytes go: READ pulls from the target's GPU, WRITE pushes to it
                src, dst = (spec.gpus[1], spec.gpus[0]) if spec.op == "READ" else (spec.gpus[0], spec.gpus[1])
                run_msg["peer_copy"] = [src, dst]
            agents["initiator"].send(**run_msg)
            bar = None
            if progress:
                from tqdm.auto import tqdm

                bar = tqdm(total=len(spec.sizes), desc=f"NIXL {spec.backend} {spec.op}", unit="size", file=sys.stderr)
            try:
                for b in spec.sizes:
                    if bar is not None:
                        bar.set_postfix_str(format_size(b))
                    msg = agents["initiator"].expect("row", left(_row_timeout(spec, b, policy)), peers["initiator"])
                    rows_raw.append(msg["row"])
                    if bar is not None:
                        bar.update(1)
            finally:
                if bar is not None:
                    bar.close()
            agents["initiator"].expect("ran", left(30), peers["initiator"])
            if spec.op == "READ":
                expected = {str(b): regs["target"]["regions"][str(b)]["checksum"] for b in spec.sizes}
                got = {str(r["block"]): r["checksum"] for r in rows_raw}
            else:
                expected = {str(b): regs["initiator"]["regions"][str(b)]["checksum"] for b in spec.sizes}
                agents["target"].send(cmd="checksums", blocks=spec.sizes, expect=expected, settle_s=WRITE_SETTLE_S)
                reply = agents["target"].expect("checksums", left(120), peers["target"])
                got = reply["checksums"]
                meta["write_settle_s"] = reply.get("waited_s")
            meta["checksums"] = {
                "expected": expected,
                "got": got,
                "where": "initiator" if spec.op == "READ" else "target",
            }
            bad = [b for b in spec.sizes if got.get(str(b)) != expected.get(str(b))]
            if bad:  # one checksum per block from both sides: which blocks are wrong, and what they hold
                src, dst = ("target", "initiator") if spec.op == "READ" else ("initiator", "target")
                for role in (src, dst):
                    agents[role].send(cmd="block_checksums", blocks=bad)
                block_sums = {
                    role: agents[role].expect("block_checksums", left(120), peers[role])["sums"] for role in (src, dst)
                }
                block_sums = {"source": block_sums[src], "dest": block_sums[dst]}
            for role in ("initiator", "target"):
                agents[role].send(cmd="exit")
            for role in ("initiator", "target"):
                agents[role].expect("bye", left(15))
                with contextlib.suppress(subprocess.TimeoutExpired):
                    agents[role].proc.wait(timeout=10)
            meta["exit_codes"] = {r: a.proc.poll() for r, a in agents.items()}
        finally:
            for a in agents.values():
                a.kill()
    meta["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    meta["wall_s"] = round(time.time() - started, 3)
    rows = _build_rows(spec, rows_raw, meta["checksums"], logs, meta)
    if block_sums:
        _diagnose_mismatches(spec, block_sums, meta)
    return NixlPairResult(spec=spec, rows=rows, logs=logs, meta=meta)


def _diagnose_mismatches(spec: NixlPairSpec, block_sums: dict[str, dict[str, list[str]]], meta: dict[str, Any]) -> None:
    """``meta["mismatches"]`` (per size: wrong block offsets, what they hold) and ``meta["diagnosis"]`` (one line)."""
    provider = (meta.get("libfabric") or {}).get("transport") if spec.backend == "LIBFABRIC" else spec.ucx_tls
    diags = []
    for size in spec.sizes:
        key = str(size)
        if key not in block_sums["source"]:
            continue
        diags.append(
            diagnose(
                spec.op,
                spec.backend,
                provider,
                meta.get("nixl_version"),
                size,
                spec.batch,
                spec.inflight,
                block_sums["source"][key],
                block_sums["dest"][key],
                zero=zero_checksum(spec.mem, size),
            )
        )
    meta["mismatches"] = {str(d.block): d.to_json() for d in diags}
    meta["diagnosis"] = summary_line(diags)


def _build_rows(
    spec: NixlPairSpec, raw: list[dict[str, Any]], sums: dict[str, Any], logs: dict[str, Path], meta: dict[str, Any]
) -> list[TransferRow]:
    if spec.backend == "UCX":
        ranges = scan_ucx_proto_info(read_lines(logs["initiator"]))
        meta["ucx_proto_ranges"] = len(ranges)
    else:
        scan = scan_libfabric(read_lines(logs["initiator"]))
        meta["libfabric"] = {**scan, "transport": libfabric_transport(scan)} | (
            {"library": meta["libfabric"]} if isinstance(meta.get("libfabric"), str) else {}
        )
    rows = []
    for r in raw:
        block = int(r["block"])
        moved = int(r["iters"]) * block * spec.batch
        secs = float(r["seconds"])
        rate = gbps(moved, secs)
        exp = sums["expected"].get(str(block))
        ok = exp is not None and sums["got"].get(str(block)) == exp
        if spec.backend == "UCX":
            transport = ucx_transport_for(ranges, spec.op, spec.mem, block)
        else:
            transport = meta["libfabric"]["transport"]
        peer = r.get("peer_copy_gbps")
        rows.append(
            TransferRow(
                backend=spec.backend,
                op=spec.op,
                mem=spec.mem,
                block_size=block,
                batch=spec.batch,
                inflight=spec.inflight,
                iters=int(r["iters"]),
                bytes_moved=moved,
                seconds=secs,
                gbps=rate,
                lat_p50_us=percentile(r["lat_us"], 50),
                lat_p99_us=percentile(r["lat_us"], 99),
                verified=bool(ok),
                transport=transport,
                peer_copy_gbps=peer,
                pct_of_peer_copy=pct_of_peer_copy(rate, peer),
            )
        )
    return rows
