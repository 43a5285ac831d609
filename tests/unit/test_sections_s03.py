"""Tests for section 03's memory lesson (rails -> registered memory)."""

from __future__ import annotations

import pytest

from workshop_lib.sections import s03_cross_node as s03


def test_registered_bytes_per_rail() -> None:
    assert s03.registered_bytes(0) == 32 * 2**20  # the control rail alone
    assert s03.registered_bytes(32) == 33 * 32 * 2**20  # p5.48xlarge: 32 data + 1 control rail
    with pytest.raises(ValueError):
        s03.registered_bytes(-1)


def test_rail_rows_from_parsed_rails() -> None:
    rows = s03.rail_memory_rows(1, gpus_per_worker=8)
    assert rows[0]["where"].startswith("this run") and rows[0]["registered_mib"] == 64.0 and rows[0]["agents"] == 1
    p5 = next(r for r in rows if r["where"].startswith("p5.48xlarge"))
    assert (p5["data_rails"], p5["registered_mib"], p5["agents"], p5["total_gib"]) == (32, 1056.0, 8, 8.25)
    p4d = next(r for r in rows if r["where"].startswith("p4d"))
    assert p4d["registered_mib"] == 160.0
    assert len(s03.rail_memory_rows(None)) == 4
