"""One NIXL agent process of a :mod:`~workshop_lib.lab.nixl_pair` run (initiator or target).

Run by :func:`workshop_lib.lab.nixl_pair.run_pair`, never by hand::

    python -m workshop_lib.lab.nixl_agent --role target --ctl-fd 5

The parent talks to each agent over an inherited Unix socket (``--ctl-fd``), one JSON object a line: that is the
application's side channel (what vLLM does with ZMQ), carrying buffer addresses, checksums and results. The NIXL
agent metadata itself (connection info and memory keys) travels through NIXL's own listener:
``fetch_remote_metadata`` + ``send_local_metadata`` by the initiator, both agents listening.

Everything NIXL, UCX and libfabric print goes to this process's stdout/stderr, which the parent sends to the log
file it reports. Lines this script adds start with ``[workshop-nixl]``. The process ends with ``os._exit`` after
flushing: NIXL 0.9.0 agents segfault at interpreter exit (LOCAL-LAB.md).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
import traceback
import types
import zlib
from typing import Any

from workshop_lib.lab.nixl_plan import IterPolicy, split_descriptors

TAG = "[workshop-nixl]"


def log(msg: str) -> None:
    """A line of ours in the agent log, flushed at once so a crash keeps it."""
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {TAG} {msg}", flush=True)


def import_nixl() -> tuple[Any, Any, bool]:
    """Import NIXL's Python API; return ``(nixl_agent, nixl_agent_config, torch_is_real)``.

    NIXL 0.9.0's ``_api.py`` runs ``import torch`` at import time but uses torch only for ``isinstance`` checks on
    ``torch.Tensor``. Where torch is not installed (the GPU-less lab, which must not pull a CUDA torch) a one-class
    stand-in module is put in ``sys.modules`` first, so nothing can be an instance of it.
    """
    torch_real = True
    try:
        import torch  # noqa: F401
    except ImportError:
        torch_real = False
        shim = types.ModuleType("torch")

        class Tensor:  # a type nothing is an instance of
            """Stand-in for torch.Tensor in a process without torch."""

        shim.Tensor = Tensor  # type: ignore[attr-defined]
        shim.__workshop_stand_in__ = True  # type: ignore[attr-defined]
        sys.modules["torch"] = shim
    from nixl._api import nixl_agent, nixl_agent_config

    return nixl_agent, nixl_agent_config, torch_real


class Channel:
    """JSON lines over the inherited control socket."""

    def __init__(self, fd: int) -> None:
        self.sock = socket.socket(fileno=fd)
        self.buf = b""

    def send(self, **obj: Any) -> None:
        self.sock.sendall(json.dumps(obj).encode() + b"\n")

    def recv(self) -> dict[str, Any]:
        while b"\n" not in self.buf:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise EOFError("control channel closed by the parent")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return json.loads(line)


# ---------------------------------------------------------------------------------------------------------------------
# Buffers: DRAM (numpy) or VRAM (torch CUDA), with a seeded pattern and a checksum computed where the bytes live.


class Buffers:
    """One region per block size: ``block * batch * inflight`` bytes, split into slots of ``batch`` blocks."""

    def __init__(self, mem: str, gpu: int) -> None:
        self.mem = mem
        self.gpu = gpu
        self.arrays: dict[int, Any] = {}
        self.torch: Any = None
        if mem == "VRAM":
            import torch

            torch.cuda.set_device(gpu)
            self.torch = torch

    def alloc(self, block: int, nbytes: int, seed: int | None) -> None:
        """Allocate the region for ``block``; fill it with the pattern of ``seed``, or zeros when None."""
        import numpy as np

        if seed is None:
            host = np.zeros(nbytes, dtype=np.uint8)
        else:
            host = np.random.default_rng(seed).integers(0, 256, size=nbytes, dtype=np.uint8)
        if self.mem == "VRAM":
            self.arrays[block] = self.torch.from_numpy(host).to(f"cuda:{self.gpu}")
            self.torch.cuda.synchronize()
        else:
            self.arrays[block] = host

    def addr(self, block: int) -> int:
        a = self.arrays[block]
        return int(a.data_ptr()) if self.mem == "VRAM" else int(a.ctypes.data)

    def devid(self) -> int:
        return self.gpu if self.mem == "VRAM" else 0

    def checksum(self, block: int) -> str:
        """crc32 of the bytes for DRAM; for VRAM two integer sums computed on the GPU (no copy to the host)."""
        a = self.arrays[block]
        if self.mem != "VRAM":
            return f"crc32:{zlib.crc32(memoryview(a)):08x}"
        return gpu_checksum(self.torch, a)

    def block_checksums(self, block: int) -> list[str]:
        """One checksum per ``block``-byte block of the region, in offset order (what the mismatch diagnosis reads)."""
        a = self.arrays[block]
        n = (a.numel() if self.mem == "VRAM" else a.size) // block
        if self.mem != "VRAM":
            view = memoryview(a)
            return [f"crc32:{zlib.crc32(view[j * block : (j + 1) * block]):08x}" for j in range(n)]
        return [gpu_checksum(self.torch, a[j * block : (j + 1) * block]) for j in range(n)]


def settled_checksum(bufs: Buffers, block: int, expect: str | None, settle_s: float) -> tuple[str, float]:
    """The region's checksum, re-read until it equals ``expect`` or ``settle_s`` has passed; ``(checksum, waited_s)``.

    LIBFABRIC on tcp reports a WRITE DONE at the initiator before the bytes are in the target's memory (about 20 ms
    on this 2-core VM), so the target may read its region a little later. Bytes that went to the wrong place never
    settle: the check stays an exact comparison.
    """
    t0 = time.monotonic()
    while True:
        got = bufs.checksum(block)
        waited = time.monotonic() - t0
        if expect is None or got == expect or waited >= settle_s:
            return got, waited
        time.sleep(0.005)


def gpu_checksum(torch: Any, t: Any) -> str:
    """Byte sum and position-weighted sum of a uint8 CUDA tensor, in chunks, on its GPU."""
    total = 0
    weighted = 0
    chunk = 1 << 24
    for start in range(0, t.numel(), chunk):
        part = t[start : start + chunk].to(torch.int64)
        idx = torch.arange(start, start + part.numel(), device=t.device, dtype=torch.int64) % 65521 + 1
        total += int(part.sum().item())
        weighted += int((part * idx).sum().item()) % (1 << 61)
    return f"gpusum:{total}:{weighted % (1 << 61)}"


# ---------------------------------------------------------------------------------------------------------------------


def poll_done(agent: Any, handle: Any, deadline: float) -> None:
    """Busy-poll one transfer until DONE; raise on ERR or past ``deadline``."""
    while True:
        state = agent.check_xfer_state(handle)
        if state == "DONE":
            return
        if state == "ERR":
            raise RuntimeError("transfer state ERR")
        if time.monotonic() > deadline:
            raise TimeoutError("transfer still in progress past its deadline")


def run_size(
    agent: Any, bufs: Buffers, size: dict[str, Any], cfg: dict[str, Any], remote: dict[str, Any]
) -> dict[str, Any]:
    """Time transfers of one block size; returns the row fields the initiator knows."""
    block = int(size["block"])
    batch = int(cfg["batch"])
    inflight = int(cfg["inflight"])
    op = cfg["op"]
    mem = cfg["mem"]
    per_req = block * batch
    local_base = bufs.addr(block)
    remote_base = int(remote["addr"])
    remote_dev = int(remote["devid"])
    handles = []
    local_slots = split_descriptors(local_base, block, batch, inflight, bufs.devid())
    remote_slots = split_descriptors(remote_base, block, batch, inflight, remote_dev)
    for local, rem in zip(local_slots, remote_slots, strict=True):
        ldesc = agent.get_xfer_descs(local, mem)
        rdesc = agent.get_xfer_descs(rem, mem)
        handles.append(agent.initialize_xfer(op, ldesc, rdesc, cfg["peer_name"]))

    timeout = float(cfg["xfer_timeout_s"]) + per_req / 20e6  # generous: 20 MB/s floor
    # Warm-up: one round on every slot (connection set-up and protocol selection happen here).
    t0 = time.perf_counter()
    for h in handles:
        if agent.transfer(h) == "ERR":
            raise RuntimeError("posting the warm-up transfer returned ERR")
    for h in handles:
        poll_done(agent, h, time.monotonic() + timeout)
    warmup_s = time.perf_counter() - t0

    fixed = int(size["iters"])
    policy = IterPolicy(**cfg["iter_policy"])
    min_iters = max(policy.min_iters, inflight)
    budget_s = policy.time_budget_s
    want = fixed if fixed > 0 else policy.iters_for(block, batch, inflight)

    yield_s = cfg.get("poll_sleep_s")
    lat_ns: list[int] = []
    posted = 0
    done = 0
    start_ns = [0] * inflight
    active = [False] * inflight
    begin = time.perf_counter()
    stop_posting = False
    while True:
        # keep every slot busy while requests are still wanted
        for s, h in enumerate(handles):
            if not active[s] and not stop_posting and posted < want:
                start_ns[s] = time.perf_counter_ns()
                st = agent.transfer(h)
                if st == "ERR":
                    raise RuntimeError(f"posting transfer {posted} returned ERR")
                active[s] = True
                posted += 1
        if not any(active):
            break
        for s, h in enumerate(handles):
            if not active[s]:
                continue
            state = agent.check_xfer_state(h)
            if state == "DONE":
                lat_ns.append(time.perf_counter_ns() - start_ns[s])
                active[s] = False
                done += 1
            elif state == "ERR":
                raise RuntimeError(f"transfer {done} of {block} B ended in ERR")
            elif (time.perf_counter_ns() - start_ns[s]) / 1e9 > timeout:
                raise TimeoutError(f"a {per_req} B transfer did not finish within {timeout:.0f} s")
        if fixed <= 0 and not stop_posting and done >= min_iters and time.perf_counter() - begin > budget_s:
            stop_posting = True
        if yield_s is not None and any(active):
            time.sleep(yield_s)  # leave the CPU to the backend's progress thread
    seconds = time.perf_counter() - begin
    for h in handles:
        try:
            agent.release_xfer_handle(h)
        except Exception as exc:  # a failed release is logged, never fatal for the figures
            log(f"release of a transfer handle failed: {exc}")
    return {
        "block": block,
        "iters": done,
        "seconds": seconds,
        "warmup_s": warmup_s,
        "lat_us": [x / 1000.0 for x in lat_ns],
    }


def peer_copy_gbps(bufs: Buffers, block: int, batch: int, src_gpu: int, dst_gpu: int, iters: int = 20) -> float:
    """GB/s of a torch device-to-device copy of ``block * batch`` bytes from ``src_gpu`` to ``dst_gpu``."""
    torch = bufs.torch
    n = block * batch
    src = torch.empty(n, dtype=torch.uint8, device=f"cuda:{src_gpu}")
    dst = torch.empty(n, dtype=torch.uint8, device=f"cuda:{dst_gpu}")
    dst.copy_(src)
    torch.cuda.synchronize(src_gpu)
    torch.cuda.synchronize(dst_gpu)
    t0 = time.perf_counter()
    for _ in range(iters):
        dst.copy_(src, non_blocking=True)
    torch.cuda.synchronize(src_gpu)
    torch.cuda.synchronize(dst_gpu)
    secs = time.perf_counter() - t0
    del src, dst
    return n * iters / secs / 1e9


def serve(ch: Channel, role: str) -> None:
    cfg = ch.recv()
    assert cfg.get("cmd") == "config", cfg
    log(f"role={role} pid={os.getpid()} host={socket.gethostname()} config={json.dumps(cfg, sort_keys=True)}")
    nixl_agent, nixl_agent_config, torch_real = import_nixl()
    from importlib import metadata

    versions = {}
    for dist in ("nixl", "nixl-cu12", "nixl-cu13"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    backend = cfg["backend"]
    mem = cfg["mem"]
    conf = nixl_agent_config(True, True, int(cfg["listen_port"]), backends=[backend])
    agent = nixl_agent(cfg["name"], conf)
    if backend not in agent.backends:
        raise RuntimeError(
            f"backend {backend} was not instantiated (plugins available: {', '.join(agent.get_plugin_list())})"
        )
    ch.send(
        event="ready",
        pid=os.getpid(),
        hostname=socket.gethostname(),
        versions=versions,
        plugins=agent.get_plugin_list(),
        torch_real=torch_real,
    )

    gpu = int(cfg.get("gpu", 0))
    bufs = Buffers(mem, gpu)
    batch = int(cfg["batch"])
    inflight = int(cfg["inflight"])
    regions: dict[str, dict[str, Any]] = {}
    seed0 = int(cfg["seed"])
    for i, block in enumerate(cfg["sizes"]):
        nbytes = block * batch * inflight
        # The bytes that must arrive: the target's for READ, the initiator's for WRITE; the other side starts zeroed.
        source = (role == "target") == (cfg["op"] == "READ")
        bufs.alloc(block, nbytes, seed0 + i if source else None)
        agent.register_memory([(bufs.addr(block), nbytes, bufs.devid(), "")], mem)
        regions[str(block)] = {
            "addr": bufs.addr(block),
            "nbytes": nbytes,
            "devid": bufs.devid(),
            "checksum": bufs.checksum(block) if source else None,
        }
    log(f"registered {len(regions)} {mem} regions with {backend}")
    ch.send(event="registered", regions=regions)

    while True:
        msg = ch.recv()
        cmd = msg["cmd"]
        if cmd == "connect":  # initiator: fetch the target's metadata through its listener, send ours back
            peer, ip, port = msg["peer_name"], msg["ip"], int(msg["port"])
            t0 = time.perf_counter()
            agent.fetch_remote_metadata(peer, ip, port)
            agent.send_local_metadata(ip, port)
            deadline = time.monotonic() + float(msg["timeout_s"])
            while not agent.check_remote_metadata(peer):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no metadata from {peer} at {ip}:{port} within {msg['timeout_s']} s")
                time.sleep(0.01)
            log(f"metadata of {peer} loaded from {ip}:{port} in {time.perf_counter() - t0:.3f} s")
            ch.send(event="connected", seconds=time.perf_counter() - t0)
        elif cmd == "await_peer":  # target: wait until the initiator's metadata has arrived
            peer = msg["peer_name"]
            deadline = time.monotonic() + float(msg["timeout_s"])
            while not agent.check_remote_metadata(peer):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the initiator {peer!r} never sent its metadata ({msg['timeout_s']} s)")
                time.sleep(0.01)
            log(f"metadata of {peer} received")
            ch.send(event="connected")
        elif cmd == "run":  # initiator: every size, in order, one row each
            cfg["peer_name"] = msg["peer_name"]
            remote_regions = msg["regions"]
            for size in msg["sizes"]:
                block = int(size["block"])
                row = run_size(agent, bufs, size, cfg, remote_regions[str(block)])
                row["checksum"] = bufs.checksum(block)
                if mem == "VRAM" and msg.get("peer_copy"):
                    src, dst = msg["peer_copy"]
                    row["peer_copy_gbps"] = peer_copy_gbps(bufs, block, batch, int(src), int(dst))
                log(
                    f"{cfg['op']} block={block} batch={batch} inflight={inflight} iters={row['iters']} "
                    f"seconds={row['seconds']:.4f} checksum={row['checksum']}"
                )
                ch.send(event="row", row=row)
            ch.send(event="ran")
        elif cmd == "checksums":
            expect = msg.get("expect") or {}
            sums: dict[str, str] = {}
            waited: dict[str, float] = {}
            for b in msg["blocks"]:
                sums[str(b)], waited[str(b)] = settled_checksum(
                    bufs, int(b), expect.get(str(b)), float(msg.get("settle_s", 0.0))
                )
            ch.send(event="checksums", checksums=sums, waited_s=waited)
        elif cmd == "block_checksums":
            ch.send(event="block_checksums", sums={str(b): bufs.block_checksums(int(b)) for b in msg["blocks"]})
        elif cmd == "notify":  # a NIXL notification to the peer: shows the notification path in the logs
            agent.send_notif(msg["peer_name"], msg["text"].encode())
            ch.send(event="notified")
        elif cmd == "await_notif":
            deadline = time.monotonic() + float(msg["timeout_s"])
            got = False
            while time.monotonic() < deadline:
                if agent.check_remote_xfer_done(msg["peer_name"], msg["text"].encode()):
                    got = True
                    break
                time.sleep(0.005)
            ch.send(event="notif", received=got)
        elif cmd == "exit":
            log("exiting")
            ch.send(event="bye")
            return
        else:
            raise RuntimeError(f"unknown command {cmd!r}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m workshop_lib.lab.nixl_agent")
    ap.add_argument("--role", choices=["initiator", "target"], required=True)
    ap.add_argument("--ctl-fd", type=int, required=True)
    args = ap.parse_args(argv)
    code = 0
    ch = Channel(args.ctl_fd)
    try:
        serve(ch, args.role)
    except BaseException as exc:  # report, flush and leave: never an interpreter exit (segfault)
        code = 1
        log(f"FAILED: {type(exc).__name__}: {exc}")
        traceback.print_exc()
        try:
            ch.send(event="error", error=f"{type(exc).__name__}: {exc}")
        except OSError:
            pass
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    main()
