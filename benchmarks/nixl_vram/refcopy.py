"""Physical references for a GPU0 <-> GPU1 copy: which engine and which direction, measured with CuPy.

NIXL UCX moves VRAM between processes with CUDA IPC and ``cuMemcpyDtoDAsync`` on one stream, i.e. a copy-engine (CE)
copy in which the initiator's GPU pulls (READ) or pushes (WRITE). The torch reference in ``run.py`` is
``dst.copy_(src)``, issued on the source GPU. To tell the engine and direction apart, this measures, in one process
with peer access enabled:

- ``ce-pull`` / ``ce-push``: ``cudaMemcpyPeerAsync`` issued on the destination / the source GPU's stream,
- ``sm-pull`` / ``sm-push``: a vectorised copy kernel running on the destination / the source GPU,

for GPU1 -> GPU0 (the direction of a READ by GPU0) at each size; and ``ipc-pull`` / ``ipc-pull-4streams``: the
same copy across two processes through a CUDA IPC handle (what UCX cuda_ipc does), in one stream and split over four.
Prints JSON (GB/s = 1e9 B/s).
"""

from __future__ import annotations

import json
import sys
import time

import cupy as cp

SIZES = [int(s) for s in (sys.argv[1] if len(sys.argv) > 1 else "1048576,4194304,16777216,67108864,268435456").split(",")]
ITERS = 40
SRC, DST = 1, 0  # a READ by GPU0 moves bytes from GPU1 to GPU0

KERNEL = r"""
extern "C" __global__ void copy16(const int4* __restrict__ s, int4* __restrict__ d, unsigned long long n) {
    for (unsigned long long i = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x; i < n;
         i += (unsigned long long)gridDim.x * blockDim.x) d[i] = s[i];
}
"""


def timed(fn, sync) -> float:
    """Seconds for ``ITERS`` calls of ``fn`` after one warm-up, ``sync()`` waiting for the GPU work both times."""
    fn()
    sync()
    t0 = time.perf_counter()
    for _ in range(ITERS):
        fn()
    sync()
    return time.perf_counter() - t0


def _ce(src, dst, n, stream):
    return lambda: cp.cuda.runtime.memcpyPeerAsync(dst.data.ptr, DST, src.data.ptr, SRC, n, stream.ptr)


def _sm(dev, kern, src, dst, n, stream):
    def go():
        with cp.cuda.Device(dev):
            kern((264,), (1024,), (src, dst, cp.uint64(n // 16)), stream=stream)

    return go


def _exporter(conn, n: int) -> None:
    """Child process on GPU1: allocate, export an IPC handle, wait until told to exit."""
    import cupy as cpc

    with cpc.cuda.Device(SRC):
        buf = cpc.arange(n, dtype=cpc.uint8)
        cpc.cuda.runtime.deviceSynchronize()
        conn.send(cpc.cuda.runtime.ipcGetMemHandle(buf.data.ptr))
        conn.recv()


def ipc_rows(sizes: list[int]) -> list[dict]:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    rows = []
    for n in sizes:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_exporter, args=(child, n))
        proc.start()
        handle = parent.recv()
        with cp.cuda.Device(DST):
            remote = cp.cuda.runtime.ipcOpenMemHandle(handle)
            dst = cp.zeros(n, dtype=cp.uint8)
            streams = [cp.cuda.Stream(non_blocking=True) for _ in range(4)]

            def one(dst=dst, remote=remote, n=n, streams=streams) -> None:
                cp.cuda.runtime.memcpyAsync(dst.data.ptr, remote, n, 3, streams[0].ptr)

            def four(dst=dst, remote=remote, n=n, streams=streams) -> None:
                q = n // 4
                for i, st in enumerate(streams):
                    cp.cuda.runtime.memcpyAsync(dst.data.ptr + i * q, remote + i * q, q, 3, st.ptr)

            def sync_all(streams=streams) -> None:
                for st in streams:
                    st.synchronize()

            row = {"bytes": n}
            row["ipc-pull"] = n * ITERS / timed(one, sync_all) / 1e9
            row["ipc-pull-4streams"] = n * ITERS / timed(four, sync_all) / 1e9
            row["verified"] = bool((cp.asnumpy(dst) == (cp.asnumpy(cp.arange(n, dtype=cp.uint8)))).all())
            cp.cuda.runtime.ipcCloseMemHandle(remote)
        parent.send("done")
        proc.join(30)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


def main() -> None:
    for a, b in ((0, 1), (1, 0)):
        with cp.cuda.Device(a):
            try:
                cp.cuda.runtime.deviceEnablePeerAccess(b)
            except cp.cuda.runtime.CUDARuntimeError:
                pass
    out = {"src_gpu": SRC, "dst_gpu": DST, "iters": ITERS, "rows": []}
    for n in SIZES:
        with cp.cuda.Device(SRC):
            src = cp.arange(n, dtype=cp.uint8)
            s_stream = cp.cuda.Stream(non_blocking=True)
            k_src = cp.RawKernel(KERNEL, "copy16")
        with cp.cuda.Device(DST):
            dst = cp.zeros(n, dtype=cp.uint8)
            d_stream = cp.cuda.Stream(non_blocking=True)
            k_dst = cp.RawKernel(KERNEL, "copy16")
        row = {"bytes": n}
        with cp.cuda.Device(DST):
            row["ce-pull"] = n * ITERS / timed(_ce(src, dst, n, d_stream), d_stream.synchronize) / 1e9
            row["sm-pull"] = n * ITERS / timed(_sm(DST, k_dst, src, dst, n, d_stream), d_stream.synchronize) / 1e9
        with cp.cuda.Device(SRC):
            row["ce-push"] = n * ITERS / timed(_ce(src, dst, n, s_stream), s_stream.synchronize) / 1e9
            row["sm-push"] = n * ITERS / timed(_sm(SRC, k_src, src, dst, n, s_stream), s_stream.synchronize) / 1e9
        row["verified"] = bool((cp.asnumpy(dst) == cp.asnumpy(src)).all())
        out["rows"].append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
        del src, dst
    out["ipc_rows"] = ipc_rows(SIZES)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
