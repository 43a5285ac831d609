"""Tests for workshop_lib.checks: statuses, verdicts, text and HTML rendering."""

from __future__ import annotations

import pytest

from workshop_lib.checks import COLUMNS, Check, CheckTable, assert_agree, disagreements, verdict_of


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
    assert t.counts() == {"PASS": 1, "WARN": 1, "FAIL": 1, "INFO": 1, "EXPECTED": 0}
    assert not t.ok
    assert t.verdict() == "FAIL"
    assert [r.check for r in t.failed()] == ["EFA allocatable"]
    assert t["EFA allocatable"].expected == ">= 32"


def test_fix_kept_only_for_failures() -> None:
    t = CheckTable()
    assert t.require("a", "x", "X", fix="never shown").fix == ""  # case-insensitive PASS
    assert t.require("b", "x", "y", fix="do y").fix == "do y"


def test_empty_and_info_tables_are_no_evidence() -> None:
    assert CheckTable().verdict() == "NO EVIDENCE" and not CheckTable().judged
    t = CheckTable()
    t.info("x", 1)
    assert t.verdict() == "NO EVIDENCE"
    t.require("y", 1, 1)
    assert t.verdict() == "PASS"


def test_worst_row_wins() -> None:
    order = ["PASS", "EXPECTED", "WARN", "FAIL"]
    for i, worst in enumerate(order):
        t = CheckTable()
        for s in order[: i + 1]:
            t.add(s.lower(), s)
        t.info("note", "x")
        assert t.verdict() == worst
        # the order of rows does not matter
        assert verdict_of(reversed([r.status for r in t.rows])) == worst


def test_expected_row_is_neither_pass_nor_fail() -> None:
    t = CheckTable("s03")
    t.require("bytes verified", True, True)
    row = t.expected_here("transport", "tcp-fallback", "efa-rdma", why="no EFA on this machine", evidence="Discovered 1")
    assert row.status == "EXPECTED" and row.fix == "expected on local: no EFA on this machine"
    assert t.verdict() == "EXPECTED" and t.ok
    t.require("backend", "UCX", "LIBFABRIC")
    assert t.verdict() == "FAIL"
    assert "1 expected on local" in t._repr_html_()


def test_disagreements_find_pass_over_fail() -> None:
    rows = [{"check": "a", "status": "PASS"}, {"check": "b", "status": "FAIL"}]
    assert disagreements({"verdict_x": "FAIL", "checks_x": rows}) == []
    assert disagreements({"verdict_x": "PASS", "checks_x": rows}) == ["verdict_x is 'PASS' but its rows say 'FAIL' (FAIL: b)"]
    assert disagreements({"checks_y": rows}) == ["checks_y recorded without verdict_y"]
    assert disagreements({"verdict_z": "PASS", "checks_z": []}) == ["verdict_z is 'PASS' but its rows say 'NO EVIDENCE'"]
    with pytest.raises(AssertionError, match="PASS"):
        assert_agree({"verdict_x": "PASS", "checks_x": rows})
    with pytest.raises(AssertionError, match="NO EVIDENCE"):
        assert_agree({"verdict_e": "NO EVIDENCE", "checks_e": [{"check": "i", "status": "INFO"}]})
    assert_agree({"verdict_e": "NO EVIDENCE", "checks_e": []}, allow_no_evidence=True)


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
