"""Does a UCX setting close the gap between NIXL UCX READ and the CUDA-IPC copy? One row per setting.

Runs the lab's NIXL pair (VRAM, READ, one request at a time) once per UCX environment variant; the agents inherit
the caller's ``UCX_*`` variables (recorded in each result's meta). Prints JSON; skips in one line without two GPUs.

Usage: python benchmarks/nixl_vram/ucx_knobs.py [SIZES] > knobs.json
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

VARIANTS: dict[str, dict[str, str]] = {
    "default": {},
    "UCX_PROTO_ENABLE=n": {"UCX_PROTO_ENABLE": "n"},
    "UCX_TLS=cuda_ipc,cuda_copy,tcp,self": {"UCX_TLS": "cuda_ipc,cuda_copy,tcp,self"},
    "UCX_MEMTYPE_CACHE=n": {"UCX_MEMTYPE_CACHE": "n"},
    "UCX_CUDA_IPC_MAX_POLL=1": {"UCX_CUDA_IPC_MAX_POLL": "1"},
}


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from run import gpus_available

    reason = gpus_available()
    if reason:
        print(f"ucx_knobs: skipped: {reason}")
        return 0
    from workshop_lib.lab.nixl_pair import NixlPairSpec, run_pair
    from workshop_lib.parsing import parse_sizes

    sizes = parse_sizes(sys.argv[1] if len(sys.argv) > 1 else "64M,256M")
    out = []
    for name, env in VARIANTS.items():
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            spec = NixlPairSpec(backend="UCX", op="READ", mem="VRAM", sizes=sizes, iters=40, isolate=False)
            res = run_pair(spec, log_dir=Path(f"/tmp/knobs/{len(out)}"), progress=False)
            rows = [{"bytes": r.block_size, "gbps": r.gbps, "pct": r.pct_of_peer_copy, "verified": r.verified,
                     "transport": r.transport} for r in res.rows]
        except Exception as exc:  # a setting that breaks UCX is a result too
            rows = [{"error": str(exc)[:300]}]
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        out.append({"variant": name, "env": env, "rows": rows})
        print(json.dumps(out[-1]), file=sys.stderr, flush=True)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
