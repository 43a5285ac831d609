"""Pure logic of a NIXL pair run: default sizes, GPU pair, iteration counts, descriptor layout, rates, log scanning.

No processes, no NIXL import: unit-tested on any machine. :mod:`~workshop_lib.lab.nixl_pair` (the parent) and
:mod:`~workshop_lib.lab.nixl_agent` (the worker) both use it. Sizes are parsed and written by
:mod:`workshop_lib.parsing`; percentiles come from :func:`workshop_lib.bench.stats.percentile`.

Example:
    >>> parse_gpus("0,1"), gbps(2 * 10**9, 1.0)
    ((0, 1), 2.0)
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from workshop_lib.errors import ConfigError
from workshop_lib.parsing import GiB, KiB, MiB

DEFAULT_SIZES = [4 * KiB, 64 * KiB, 1 * MiB, 16 * MiB, 64 * MiB]
OPS = ("READ", "WRITE")  # NIXL transfer operations
MEMS = ("DRAM", "VRAM")  # where the buffers live


def parse_gpus(text: str) -> tuple[int, int]:
    """``"0,1"`` -> (0, 1): initiator GPU, target GPU."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise ConfigError("--gpus", f"{text!r} is not two GPU indices", "write e.g. 0,1 (initiator GPU, target GPU)")
    return int(parts[0]), int(parts[1])


# ---------------------------------------------------------------------------------------------------------------------
# Iterations and memory


@dataclass(frozen=True, slots=True)
class IterPolicy:
    """How many timed transfers a size gets when ``iters`` is 0 (auto)."""

    target_bytes: int = 512 * MiB  # enough bytes for a stable GB/s figure
    min_iters: int = 8
    max_iters: int = 2000
    time_budget_s: float = 2.0  # per size, once min_iters are done

    def iters_for(self, block: int, batch: int = 1, inflight: int = 1) -> int:
        """The number of requests wanted before the time budget cuts in."""
        per_req = block * batch
        return int(min(self.max_iters, max(self.min_iters, inflight, self.target_bytes // max(per_req, 1))))


def region_bytes(block: int, batch: int, inflight: int) -> int:
    """Bytes one side registers for one block size: ``inflight`` slots of ``batch`` blocks."""
    return block * batch * inflight


def total_region_bytes(sizes: Iterable[int], batch: int, inflight: int) -> int:
    return sum(region_bytes(b, batch, inflight) for b in sizes)


def split_descriptors(
    base: int, block: int, batch: int, inflight: int, devid: int = 0
) -> list[list[tuple[int, int, int]]]:
    """Descriptor lists, one per in-flight slot: ``batch`` consecutive blocks ``(addr, len, devid)`` each.

    Slot ``s`` covers ``[base + s*batch*block, base + (s+1)*batch*block)``; slots never overlap, so each
    in-flight request moves its own bytes (as an engine's KV blocks would).
    """
    if block <= 0 or batch <= 0 or inflight <= 0:
        raise ValueError("block, batch and inflight must be positive")
    per_req = block * batch
    return [[(base + s * per_req + i * block, block, devid) for i in range(batch)] for s in range(inflight)]


def gbps(nbytes: int, seconds: float) -> float:
    """Decimal GB/s (1e9 bytes per second), the unit nixlbench prints."""
    return nbytes / seconds / 1e9 if seconds > 0 else 0.0


def pct_of_peer_copy(value_gbps: float | None, peer_gbps: float | None) -> float | None:
    """``value`` as a percentage of the device-to-device copy rate; None when either is unknown or zero."""
    if value_gbps is None or not peer_gbps:
        return None
    return 100.0 * value_gbps / peer_gbps


# ---------------------------------------------------------------------------------------------------------------------
# What the logs say about the path the bytes took


# UCX_PROTO_INFO=y: a table header such as
#   | ucp_context_0 intra-node cfg#3 | remote memory read by ucp_get* from host memory |
# then rows such as
#   |           0..8183 | zero-copy                 | tcp/lo                 |
#   |        8184..inf  | multi-frag zero-copy      | cma/memory             |
_UCX_HEADER = re.compile(
    r"\|\s*(?P<ctx>\S+)\s+(?P<scope>intra-node|inter-node|self)\s+cfg#\d+\s*\|\s*(?P<what>[^|]+?)\s*\|"
)
_UCX_ROW = re.compile(
    r"\|\s*(?P<lo>\d+(?:\.\d+)?[KMG]?)\s*\.\.\s*(?P<hi>\d+(?:\.\d+)?[KMG]?|inf)\s*\|\s*(?P<proto>[^|]+?)\s*\|\s*(?P<lanes>[^|]+?)\s*\|"
)
_UCX_SIZE = re.compile(r"^(\d+(?:\.\d+)?)([KMG]?)$")


def _ucx_bytes(text: str) -> float:
    if text == "inf":
        return float("inf")
    m = _UCX_SIZE.match(text)
    if not m:
        return float("nan")
    mult = {"": 1, "K": KiB, "M": MiB, "G": GiB}[m.group(2)]
    return float(m.group(1)) * mult


@dataclass(frozen=True, slots=True)
class UcxProtoRange:
    """One row of a UCX_PROTO_INFO table: sizes ``lo..hi`` of ``operation`` go by ``protocol`` over ``lanes``."""

    scope: str  # intra-node / inter-node
    operation: str  # e.g. "remote memory read by ucp_get* from host memory"
    lo: float
    hi: float
    protocol: str
    lanes: str  # e.g. "cma/memory", "tcp/lo", "cuda_ipc/cuda"

    @property
    def transports(self) -> list[str]:
        """Transport names of the lanes: ``"tcp/lo, cma/memory"`` -> ``["tcp", "cma"]``."""
        out = []
        for m in re.finditer(r"([a-z_0-9]+)/[\w.:-]+", self.lanes):
            if m.group(1) not in out:
                out.append(m.group(1))
        return out


def scan_ucx_proto_info(lines: Iterable[str]) -> list[UcxProtoRange]:
    """The UCX_PROTO_INFO tables of a log, as size ranges (streams the lines)."""
    out: list[UcxProtoRange] = []
    current: tuple[str, str] | None = None
    for line in lines:
        h = _UCX_HEADER.search(line)
        if h:
            current = (h.group("scope"), h.group("what").strip())
            continue
        if current is None:
            continue
        r = _UCX_ROW.search(line)
        if r:
            out.append(
                UcxProtoRange(
                    current[0],
                    current[1],
                    _ucx_bytes(r.group("lo")),
                    _ucx_bytes(r.group("hi")),
                    r.group("proto").strip(),
                    r.group("lanes").strip(),
                )
            )
    return out


def _local_memory(operation: str, verb: str) -> str | None:
    """``"host"`` or ``"cuda"``: the initiator's side of a UCX operation line.

    READ lines say ``ucp_get* into <local> ... from <remote>``, WRITE lines ``ucp_put* from <local> ... to <remote>``.
    """
    if verb == "ucp_get":
        m = re.search(r"\binto (host|cuda)", operation) or re.search(r"\bfrom (host|cuda)", operation)
    else:
        m = re.search(r"\bfrom (host|cuda)", operation)
    return m.group(1) if m else None


def ucx_transport_for(ranges: list[UcxProtoRange], op: str, mem: str, block: int) -> str | None:
    """The UCX transport(s) that carried ``block``-byte ``op`` transfers, e.g. ``"cma"``, ``"tcp"``, ``"cuda_ipc"``.

    READ is ``ucp_get*``, WRITE ``ucp_put*``; only tables whose initiator-side memory matches ``mem`` (host for DRAM,
    cuda for VRAM) count, and tables between two agents win over an agent's own loopback (``self``) tables.
    """
    verb = "ucp_get" if op == "READ" else "ucp_put"
    memword = "cuda" if mem == "VRAM" else "host"
    picks = [r for r in ranges if verb in r.operation and r.lo <= block <= r.hi]
    picks = [r for r in picks if _local_memory(r.operation, verb) in (memword, None)]
    picks = [r for r in picks if r.scope != "self"] or picks  # the agent's own loopback tables come last
    if not picks:
        return None
    both = [r for r in picks if r.operation.count(memword) >= 2]  # local and remote of that memory type
    names: list[str] = []
    for r in both or picks:
        for t in r.transports:
            if t not in names:
                names.append(t)
    return "+".join(names) if names else None


_FI_PROV = re.compile(r"^libfabric:\d+:(?:\d+::)?(?P<prov>[a-z_0-9]+):(?P<subsys>[a-z_]+):")
_LF_FALLBACK = re.compile(r"Discovered (\d+) socket devices \(TCP fallback\)")
_LF_EFA = re.compile(r"Discovered (\d+) EFA devices")


def scan_libfabric(lines: Iterable[str]) -> dict[str, object]:
    """What a NIXL 0.9.0 LIBFABRIC log says: the device discovery and which libfabric providers spoke."""
    providers: dict[str, int] = {}
    av_providers: list[str] = []
    out: dict[str, object] = {"socket_devices": None, "efa_devices": None, "fabric_names": []}
    for line in lines:
        m = _FI_PROV.match(line)
        if m:
            prov = m.group("prov")
            providers[prov] = providers.get(prov, 0) + 1
            if m.group("subsys") == "av" and "insert" in line and prov not in av_providers:
                av_providers.append(prov)  # the provider whose address vector took the peer's address
            continue
        if (f := _LF_FALLBACK.search(line)) is not None:
            out["socket_devices"] = int(f.group(1))
        elif (e := _LF_EFA.search(line)) is not None:
            out["efa_devices"] = int(e.group(1))
        elif "fabric_attr->name" in line:
            name = line.split("fabric_attr->name", 1)[1].strip()
            if name not in out["fabric_names"]:  # type: ignore[operator]
                out["fabric_names"].append(name)  # type: ignore[union-attr]
    out["providers"] = providers
    out["av_providers"] = av_providers
    out["tcp_fallback"] = bool(out["socket_devices"]) and not out["efa_devices"]
    return out


def libfabric_transport(scan: dict[str, object]) -> str | None:
    """The libfabric provider that carried the bytes: the one whose address vector took the peer's address
    (``"tcp"`` in the lab's TCP fallback, ``"efa"`` on EFA); else ``"efa"``/``"sockets"`` from NIXL's discovery line."""
    av = scan.get("av_providers") or []
    assert isinstance(av, list)
    for p in ("efa", "tcp", "sockets", "udp", "shm"):
        if p in av:
            return p
    if av:
        return str(av[0])
    if scan.get("efa_devices"):
        return "efa"
    if scan.get("socket_devices"):
        return "sockets"
    return None


def read_lines(path: Path) -> Iterable[str]:
    """Lines of a log, streamed, undecodable bytes replaced."""
    with path.open("r", errors="replace") as fh:
        yield from fh
