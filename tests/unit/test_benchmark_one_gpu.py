"""The one-GPU appendix record: ONE-GPU.md is exactly what the benchmark generates from its record (no typed figures)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

HERE = Path(__file__).resolve().parents[2] / "benchmarks" / "nixl_vram"


def _module():
    import sys

    sys.path.insert(0, str(HERE))
    spec = importlib.util.spec_from_file_location("one_gpu", HERE / "one_gpu.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_one_gpu_report_is_generated_from_its_record():
    mod = _module()
    data = json.loads((HERE / "one-gpu.json").read_text())
    assert (HERE / "ONE-GPU.md").read_text() == mod.report(data)
    assert all(r["verified"] for r in mod.rows(data))


def test_one_gpu_report_follows_the_data():
    mod = _module()
    data = json.loads((HERE / "one-gpu.json").read_text())
    for run in data["runs"]:
        for r in run["rows"]:
            r["transport"] = "cuda_ipc"
    text = mod.report(data)
    assert "READ and WRITE took different transports" not in text
    assert "READ: UCX used cuda_ipc" in text
