"""plots.show: every figure reaches Jupyter as image/png (a bare Figure gives only text/plain under papermill)."""

from __future__ import annotations

import pandas as pd
from IPython.core.formatters import DisplayFormatter

from workshop_lib import plots


def _fig():
    info = plots.FigureInfo.for_target("local", run_date="2026-12-07")
    df = pd.DataFrame({"concurrency": [1, 2], "ttft_p50_ms": [10.0, 12.0], "itl_p50_ms": [1.0, 1.1],
                       "output_tokens_per_s": [50.0, 90.0]})
    return plots.plot_serving({"UCX (tcp)": df}, info)


def test_show_gives_image_png() -> None:
    shown = plots.show(_fig())
    data, _ = DisplayFormatter().format(shown)
    assert "image/png" in data and data["image/png"][:8] == b"\x89PNG\r\n\x1a\n"
    assert "TTFT and ITL" in repr(shown)


def test_bare_figure_is_not_png() -> None:
    # The failure side: what the notebooks showed before (no inline backend registered for a pyplot-free Figure).
    data, _ = DisplayFormatter().format(_fig())
    assert "image/png" not in data


def test_show_none_says_so() -> None:
    assert plots.show(None).startswith("no figure")


def test_local_bandwidth_keeps_published_efa_on_its_own_axis() -> None:
    info = plots.FigureInfo.for_target("local", run_date="2026-12-07")
    df = pd.DataFrame({"source": ["lab", "lab"], "backend": ["UCX", "UCX"], "op": ["READ", "READ"],
                       "mem": ["DRAM", "DRAM"], "block_size": [4096, 2**20], "gbps": [0.01, 0.4],
                       "transport": ["tcp", "tcp"]})
    fig = plots.plot_bandwidth(df, info)
    local, pub = fig.axes
    local_labels = [t.get_text() for t in local.get_legend().get_texts()]
    pub_labels = [t.get_text() for t in pub.get_legend().get_texts()]
    assert local_labels == ["UCX (tcp) READ DRAM"]
    assert all(lbl.startswith(("published:", "EFA line rate")) for lbl in pub_labels) and len(pub_labels) >= 2
    assert "not this machine" in pub.get_title()
    eks = plots.plot_bandwidth(df, plots.FigureInfo.for_target("eks", run_date="2026-12-07"))
    assert len(eks.axes) == 1  # eks: one axis, as before
