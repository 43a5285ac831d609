"""Review 6 of the diagnose fast path (ids read as zeros, C id masking, FIRST_DETAIL_ONLY, 4 KiB C lines).

Each test is an input where the fast paths (native C scan and/or pure-Python scan) and the uncached reference
(``diagnose.feed_uncached``) gave different diagnoses. Both holes were older than the id work: a cached template's
cheap repeat did more or less than ``Accumulator.add`` does for the same line. Fixed in ``templates.Template``: a
table line that also names a provider is replayed in full, and a plugin that failed to load as an optional one notes
no provider (``accumulator.only_notes_a_plugin``, the one test both use).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.test_logs_shapescan import _all_same, _diag

# A libfabric-header line whose message is a UCX_PROTO_INFO table header: classify gives it event ucx.transport,
# component libfabric, provider efa (from the header), so Accumulator.add notes efa as the "last seen" weak provider
# on every occurrence; the template is a UCXHDR whose cheap repeat (and _table_bulk) only sets the table operation.
UCX_HDR_BEHIND_LIBFABRIC = b"libfabric:2:2::efa:core:f():51<warn> self cfg#61 | x | remote memory write by ucp_put\n"
# An INFO "Failed to load plugin" line behind a libfabric header: classify makes it nixl.plugin_load_failed with
# provider efa, component libfabric. Accumulator.add returns early for plugin_load_failed (no provider noted), but
# the template counts as a weak-provider REF, so every cheap repeat notes efa as the last weak provider.
PLUGIN_FAIL_BEHIND_LIBFABRIC = (b"libfabric:2:3::efa:core:f():1<info> Failed to load plugin 'GDS': "
                                b"libplugin_GDS.so: cannot open shared object file\n")
# The same with a table row (UCXROW): its cheap repeat only adds transport classes.
UCX_ROW_BEHIND_LIBFABRIC = b"libfabric:2:2::efa:core:f():51<warn> | 0..inf | zero-copy | rc_mlx5/mlx5_0:1 |\n"
TCP_LINE = b"libfabric:1:1::tcp:core:f():1<warn> hello\n"


def _verdicts(path: Path) -> dict[str, tuple]:
    out = {}
    for scanner in ("reference", "native", "python"):
        d = _diag(path, scanner)
        out[scanner] = (d["contract"]["verdict"], d["contract"].get("libfabric_provider"), d["evidence"])
    return out


@pytest.mark.parametrize("table_line", [UCX_HDR_BEHIND_LIBFABRIC, UCX_ROW_BEHIND_LIBFABRIC], ids=["header", "row"])
def test_ucx_table_line_behind_libfabric_header_repeats_note_the_weak_provider(tmp_path: Path, table_line: bytes) -> None:
    # reference: provider efa (the table line is the last weak provider), verdict unknown;
    # native and python: provider tcp, verdict tcp-fallback (the repeats never note efa again)
    p = tmp_path / "ucxtable.log"
    p.write_bytes(table_line + TCP_LINE + table_line + TCP_LINE + table_line)
    got = _verdicts(p)
    assert got["native"] == got["reference"], got
    assert got["python"] == got["reference"], got
    _all_same(p)


def test_plugin_load_failed_behind_libfabric_header_repeats_do_not_note_a_provider(tmp_path: Path) -> None:
    # reference: provider tcp, verdict tcp-fallback (plugin_load_failed lines never note a provider);
    # native and python: provider efa, verdict unknown (the second and third occurrences note efa)
    p = tmp_path / "plugin.log"
    p.write_bytes(PLUGIN_FAIL_BEHIND_LIBFABRIC + TCP_LINE + PLUGIN_FAIL_BEHIND_LIBFABRIC + TCP_LINE
                  + PLUGIN_FAIL_BEHIND_LIBFABRIC)
    got = _verdicts(p)
    assert got["native"] == got["reference"], got
    assert got["python"] == got["reference"], got
    _all_same(p)
