"""lessons.memory: the budget's arithmetic and labels, the peak-RSS sampler, and (lab) the real pair measurement."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from workshop_lib.lessons import memory


def test_budget_terms_and_labels() -> None:
    b = memory.budget(efa=32, model_params_b=0.6).set_index("term")
    assert b.loc["NIXL control pools (all rails)", "mib"] == 1056.0
    assert b.loc["NIXL control pools (all rails)", "how we know"] == memory.ASSERTED
    assert b.loc["EFA provider buffers per rail", "how we know"].startswith("not measured")
    assert memory.MEASURED not in set(b["how we know"])  # nothing measured was given


def test_measured_rows_and_overhead() -> None:
    m = pd.DataFrame([{"backend": "UCX", "peak_rss_mib_max": 700.0, "data_rails": None, "provider": None,
                       "region_mib": 1.0},
                      {"backend": "LIBFABRIC", "peak_rss_mib_max": 761.0, "data_rails": 1, "provider": "sockets",
                       "region_mib": 1.0}])
    assert memory.libfabric_overhead_mib(m) == 61.0
    assert memory.libfabric_overhead_mib(m[m.backend == "UCX"]) is None
    b = memory.budget(measured=m, engine_rss_mib=512.0, engine_label="vllm decode").set_index("term")
    assert b.loc["LIBFABRIC - UCX (same pair)", "how we know"] == memory.MEASURED
    assert "says 64 MiB" in b.loc["LIBFABRIC - UCX (same pair)", "basis"]
    assert b.loc["engine process (host side)", "mib"] == 512.0


def test_shortfall_says_rails_cannot_explain_64gi() -> None:
    text = memory.shortfall(memory.budget())
    assert "cannot explain an OOM at 64Gi" in text and "memory.peak" in text
    assert "2.1 GiB" in text


def test_peak_sampler_sees_a_child_peak() -> None:
    code = "import time; b = bytearray(80 * 2**20); b[::4096] = b'x' * len(b[::4096]); del b; time.sleep(1.0)"
    with memory.PeakSampler("peak-sampler-probe", interval_s=0.02) as s:
        subprocess.run([sys.executable, "-c", code + "  # peak-sampler-probe"], check=True, timeout=60)
    assert s.peaks and max(s.peaks.values()) > 80 * 2**20


def test_peak_sampler_ignores_other_processes() -> None:
    with memory.PeakSampler("no-such-needle", interval_s=0.02) as s:
        subprocess.run([sys.executable, "-c", "import time; time.sleep(0.3)"], check=True, timeout=60)
    assert s.peaks == {}


@pytest.mark.lab
@pytest.mark.slow
def test_pair_rss_libfabric_vs_ucx(tmp_path: Path) -> None:
    from tests.conftest import lab_missing

    missing = lab_missing()
    if missing:
        pytest.skip(f"local lab not set up ({missing}): run `workshop lab setup`")
    m = memory.measure_backends(tmp_path)
    assert set(m["backend"]) == {"UCX", "LIBFABRIC"} and m["verified"].all() and (m["agents"] == 2).all()
    extra = memory.libfabric_overhead_mib(m)
    # 1 data + 1 control rail register 2 x 32 MiB of control pools; allow for allocator and sampling noise.
    assert extra is not None and 32 <= extra <= 256, m.to_string()
