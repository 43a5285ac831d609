"""NIXL VRAM -> VRAM between two GPUs of one host, measured against the hardware's own peer copy (issue 9).

Runs the kit's own NIXL pair (``workshop_lib.lab.nixl_pair``: two agents in two processes, torch CUDA buffers
registered as VRAM, checksums on the GPU) in three ways of driving the transfers, for READ and WRITE:

- ``one-at-a-time``: one descriptor per request, one request in flight (what the first measurement did),
- ``batched-16``: each request carries 16 KV blocks of ``size/16`` (the way engines post many blocks at once),
- ``inflight-4``: four requests of ``size`` kept in flight,

and, in the same agent processes, a torch device-to-device copy of the same bytes (the physical reference). Every
NIXL figure is reported as a percentage of that copy.

On a machine without two GPUs it skips with one line (exit 0): CI has no GPU. The recorded run lives beside this
file (``results.json``, ``RESULTS.md``, ``vram-bandwidth.png``).

Usage:
    python benchmarks/nixl_vram/run.py --out DIR            # on the GPU host: runs and writes DIR/results.json
    python benchmarks/nixl_vram/run.py --report DIR/results.json   # anywhere: RESULTS.md + plot beside this file
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from workshop_lib.bench.vram_report import (  # noqa: E402
    MODES,
    build_report,
    goal_rows,
    mode_spec_sizes,
)

DEFAULT_SIZES = "1M,4M,16M,64M,256M"


def _gpu_facts() -> dict[str, Any]:
    out: dict[str, Any] = {"host": platform.node(), "python": platform.python_version()}
    if shutil.which("nvidia-smi"):
        q = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True, text=True, check=False,
        )
        out["nvidia_smi"] = [line.strip() for line in q.stdout.splitlines() if line.strip()]
        topo = subprocess.run(["nvidia-smi", "topo", "-m"], capture_output=True, text=True, check=False)
        out["topology"] = [line.rstrip() for line in topo.stdout.splitlines()[:3]]
    try:
        from importlib import metadata

        out["nixl"] = metadata.version("nixl")
        out["nixl_cu12"] = metadata.version("nixl-cu12")
        out["cuda_runtime_wheel"] = metadata.version("nvidia-cuda-runtime-cu12")
    except Exception as exc:  # recorded, never fatal
        out["nixl"] = f"unknown ({exc})"
    return out


def gpus_available() -> str | None:
    """None when two CUDA GPUs are usable here, else the one-line reason to skip."""
    try:
        import torch
    except ImportError:
        return "torch is not installed (the VRAM lab needs torch CUDA tensors)"
    if not torch.cuda.is_available():
        return "no CUDA GPU is visible"
    if torch.cuda.device_count() < 2:
        return f"{torch.cuda.device_count()} GPU visible, two are needed"
    return None


def run(
    out: Path, sizes: str, ops: list[str], backends: list[str], modes: list[str], mem: str = "VRAM", iters: int = 0
) -> dict[str, Any]:
    from workshop_lib.lab import setup as lab_setup
    from workshop_lib.lab.nixl_pair import NixlPairSpec, run_pair
    from workshop_lib.parsing import parse_sizes

    request_sizes = parse_sizes(sizes)
    results: dict[str, Any] = {"meta": _gpu_facts(), "runs": [], "skipped": []}
    results["meta"]["started"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    results["meta"]["modes"] = {m: MODES[m] for m in modes}
    for backend in backends:
        if backend == "LIBFABRIC":
            reason = lab_setup.libfabric_unavailable_reason()
            if reason:
                results["skipped"].append({"backend": backend, "reason": reason})
                print(f"LIBFABRIC skipped: {reason}", flush=True)
                continue
        for op in ops:
            for mode in modes:
                block_sizes, batch, inflight = mode_spec_sizes(mode, request_sizes)
                spec = NixlPairSpec(
                    backend=backend, op=op, mem=mem, sizes=block_sizes, batch=batch, inflight=inflight,
                    gpus=(0, 1), isolate=False, timeout_s=480, iters=iters,
                )
                log_dir = out / "logs" / f"{backend}-{op}-{mode}"
                t0 = time.monotonic()
                res = run_pair(spec, log_dir=log_dir, progress=False)
                entry = {"backend": backend, "op": op, "mode": mode, **res.to_json()}
                results["runs"].append(entry)
                ok = "all verified" if res.all_verified else "CHECKSUM MISMATCH"
                print(f"{backend} {op} {mode}: {len(res.rows)} sizes, {ok}, {time.monotonic() - t0:.0f} s", flush=True)
                for r in res.rows:
                    print(
                        f"  {r.block_size * r.batch:>10} B  {r.gbps:8.1f} GB/s  peer {r.peer_copy_gbps or 0:8.1f}"
                        f"  {r.pct_of_peer_copy or 0:5.1f}%  transport={r.transport}",
                        flush=True,
                    )
    results["meta"]["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, help="run on this GPU host and write OUT/results.json")
    ap.add_argument("--report", type=Path, help="build RESULTS.md and the plot from a results.json")
    ap.add_argument("--sizes", default=DEFAULT_SIZES, help=f"bytes per request (default {DEFAULT_SIZES})")
    ap.add_argument("--ops", default="READ,WRITE")
    ap.add_argument("--backends", default="UCX,LIBFABRIC")
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--iters", type=int, default=40, help="timed requests per size (0: the lab's auto policy)")
    ap.add_argument("--mem", default="VRAM", choices=["VRAM", "DRAM"], help="DRAM: the same run on the CPU (a check)")
    # Called by `python -m benchmarks` (imported): defaults only; as a script: the command line.
    args = ap.parse_args(argv if argv is not None or __name__ == "__main__" else [])
    if args.report:
        data = json.loads(args.report.read_text())
        (HERE / "results.json").write_text(json.dumps(data, indent=2, sort_keys=True))
        ref = HERE / "refcopy.json"
        rep = HERE / "results-repeat.json"
        md = build_report(
            data,
            plot_path=HERE / "vram-bandwidth.png",
            refcopy=json.loads(ref.read_text()) if ref.exists() else None,
            repeat=json.loads(rep.read_text()) if rep.exists() else None,
        )
        (HERE / "RESULTS.md").write_text(md)
        print(md)
        sys.path.insert(0, str(HERE))
        from notes import notes  # NOTES.md: the findings, generated from the same records

        (HERE / "NOTES.md").write_text(notes())
        return 0
    reason = gpus_available() if args.mem == "VRAM" else None
    if reason:
        print(f"nixl_vram: skipped: {reason}")
        return 0
    out = args.out or HERE / "scratch"
    out.mkdir(parents=True, exist_ok=True)
    data = run(out, args.sizes, args.ops.split(","), args.backends.split(","), args.modes.split(","), args.mem, args.iters)
    (out / "results.json").write_text(json.dumps(data, indent=2, sort_keys=True))
    for row in goal_rows(data):
        print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
