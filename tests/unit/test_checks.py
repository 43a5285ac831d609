"""Tests for workshop_lib.checks: statuses, verdicts, text and HTML rendering."""

from __future__ import annotations

import pytest

from workshop_lib.checks import COLUMNS, Check, CheckTable


def _table() -> CheckTable:
    t = CheckTable("NIXL on the decode worker")
    t.require("backend", "LIBFABRIC", "LIBFABRIC", evidence="Backend LIBFABRIC was instantiated")
    t.require("provider", "sockets", "efa", evidence="Discovered 1 socket devices (TCP fallback)",
              fix="run on a P5 node with the EFA device plugin", warn=True)
    t.at_least("EFA allocatable", 0, 32, fix="install the EFA device plugin")
    t.info("node", "ip-10-0-1-2")
    return t


def test_statuses_and_verdict() -> None:
    t = _table()
    assert [r.status for r in t.rows] == ["PASS", "WARN", "FAIL", "INFO"]
    assert t.counts() == {"PASS": 1, "WARN": 1, "FAIL": 1, "INFO": 1}
    assert not t.ok
    assert t.verdict() == "FAIL"
    assert [r.check for r in t.failed()] == ["EFA allocatable"]
    assert t["EFA allocatable"].expected == ">= 32"


def test_fix_kept_only_for_failures() -> None:
    t = CheckTable()
    assert t.require("a", "x", "X", fix="never shown").fix == ""  # case-insensitive PASS
    assert t.require("b", "x", "y", fix="do y").fix == "do y"


def test_empty_and_info_tables_pass() -> None:
    assert CheckTable().verdict() == "PASS" and CheckTable().ok
    t = CheckTable()
    t.info("x", 1)
    assert t.verdict() == "PASS"


def test_missing_value_fails_at_least() -> None:
    row = CheckTable().at_least("handshakes", None, 8)
    assert (row.status, row.found) == ("FAIL", "missing")


def test_bad_status_rejected() -> None:
    with pytest.raises(ValueError):
        Check("x", "MAYBE", "", "")


def test_evidence_is_one_clipped_line() -> None:
    row = CheckTable().add("x", "PASS", evidence="line one\nline two " + "y" * 400)
    assert "\n" not in row.evidence and len(row.evidence) == 160 and row.evidence.endswith("...")


def test_frame_text_html() -> None:
    t = _table()
    frame = t.to_frame()
    assert list(frame.columns) == list(COLUMNS) and len(frame) == 4
    text = str(t)
    assert text.splitlines()[0] == "NIXL on the decode worker: FAIL"
    assert "Discovered 1 socket devices (TCP fallback)" in text
    html = t._repr_html_()
    assert "#f8d7da" in html and "1 pass, 1 warn, 1 fail" in html


def test_from_rows_and_extend() -> None:
    t = CheckTable.from_rows([{"check": "etcd", "status": "pass", "found": "up", "expected": "up"}], "lab")
    t.extend(_table())
    assert len(t) == 5 and t.rows[0].status == "PASS"
    assert t.to_records()[0]["check"] == "etcd"
