"""workshop_lib.table: the one renderer (text, HTML, JSON) every table of the kit goes through."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pandas as pd
import pytest

from workshop_lib import table
from workshop_lib.checks import CheckTable

ROWS = [
    {"status": "PASS", "check": "etcd", "found": "up", "expected": "up", "fix": ""},
    {"status": "FAIL", "check": "nats", "found": "down " + "x" * 80, "expected": "up", "fix": "workshop lab up"},
]


def test_text_header_rule_rows_and_fix_below() -> None:
    lines = table.text(ROWS, ["status", "check", "found", "expected"], below="fix").splitlines()
    assert lines[0].split() == ["status", "check", "found", "expected"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert lines[2].split() == ["PASS", "etcd", "up", "up"]
    assert lines[3].startswith("FAIL    nats   down xxx") and lines[3].rstrip().endswith("...  up")
    assert lines[4] == " " * len("status  check  ") + "fix: workshop lab up"  # under the third column
    assert len(lines) == 5  # no fix line for the PASS row (empty fix)


def test_text_width_none_keeps_cells_whole_and_titles() -> None:
    out = table.text(ROWS, ["check", "found"], width=None, title="lab: FAIL", headers={"found": "what"})
    assert out.splitlines()[0] == "lab: FAIL" and out.splitlines()[1].split() == ["check", "what"]
    assert "x" * 80 in out


def test_rows_from_frames_dataclasses_and_mappings() -> None:
    @dataclass
    class R:
        check: str
        status: str

    for rows in (pd.DataFrame(ROWS), [R("etcd", "PASS"), R("nats", "FAIL")], ROWS):
        assert [r["check"] for r in table.records(rows)] == ["etcd", "nats"]
    with pytest.raises(TypeError, match="mapping or a dataclass"):
        table.records([("etcd", "PASS")])


def test_json_and_html() -> None:
    got = json.loads(table.render(ROWS, ["check", "status"], "json", below="fix"))
    assert got[1] == {"check": "nats", "status": "FAIL", "fix": "workshop lab up"}
    html = table.render(ROWS, ["status", "check"], "html", title="lab", below="fix")
    assert "#f8d7da" in html and "#d4edda" in html and "lab" in html and "workshop lab up" in html


def test_unknown_format_is_one_clear_error() -> None:
    with pytest.raises(ValueError, match="'markdown' is not one of text, html, json"):
        table.render(ROWS, ["check"], "markdown")


def test_check_table_renders_through_it() -> None:
    t = CheckTable("lab")
    t.require("etcd", "up", "up")
    t.require("nats", "down", "up", fix="workshop lab up")
    assert t.render("text") == t.to_text() == str(t) and t.to_text().splitlines()[0] == "lab: FAIL"
    assert json.loads(t.render("json")) == t.to_records()
    def same(html: str) -> str:  # the Styler's random table id aside
        return re.sub(r"T_[0-9a-f]{5}", "T_", html)

    assert same(t.render("html")) == same(t._repr_html_()) and "lab: FAIL (1 pass, 0 warn, 1 fail)" in t.render("html")


def test_numbers_align_right_and_nan_is_empty() -> None:
    df = pd.DataFrame({"concurrency": [1, 10], "ttft_p50_ms": [47.209, float("nan")], "model": ["a", "bb"]})
    lines = table.text(df, list(df.columns), width=None).splitlines()
    assert lines[2] == "          1       47.209  a"
    assert lines[3] == "         10               bb"


def test_json_of_a_frame_with_a_missing_cell_is_valid_json() -> None:
    """A DataFrame's NaN cell is null in the JSON (bare NaN is not JSON; allow_nan=False would raise on it)."""
    import json

    import pandas as pd

    from workshop_lib.table import to_json

    out = to_json(pd.DataFrame([{"size": "4K", "gbps": float("nan")}, {"size": "1M", "gbps": 1.5}]))
    assert json.loads(out, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c))) == [
        {"size": "4K", "gbps": None}, {"size": "1M", "gbps": 1.5}]
