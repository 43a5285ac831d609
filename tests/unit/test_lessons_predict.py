"""lessons.predict: grading predictions (close, off, none), and each notebook's measured answer."""

from __future__ import annotations

import pandas as pd
import pytest

from workshop_lib.config import WorkshopConfig
from workshop_lib.lessons import oddities, predict, timing


def test_numeric_grades() -> None:
    assert predict.grade(50, 99.0).verdict == "close"
    assert predict.grade(50, 101.0).verdict == "off"
    assert predict.grade(None, 12.0).verdict == "no prediction"
    assert predict.grade(5, None).verdict == "not measured"
    with pytest.raises(ValueError, match="not a number"):
        predict.grade("fast", 12.0)
    with pytest.raises(ValueError, match="factor"):
        predict.grade(1, 1, factor=0.5)


def test_text_grades_and_display() -> None:
    g = predict.grade("TCP", "tcp", question="Q?")
    assert g.verdict == "close" and "CLOSE" in str(g) and g._repr_markdown_().startswith("**Q?**")


def test_ask_each_section() -> None:
    cfg = WorkshopConfig()
    assert predict.ask("01", 32, cfg).verdict == "close"
    assert predict.ask("01", 4, cfg).verdict == "off"
    assert predict.ask("02", 100, records={"completion_ttft_ms": 180.0}).verdict == "close"
    assert predict.ask("02", 10, records={"completion_ttft_ms": 180.0}).verdict == "off"
    assert predict.ask("03", "tcp", records={"initiator_provider": "sockets"}).verdict == "close"
    assert predict.ask("03", "efa", records={"initiator_provider": "sockets"}).verdict == "off"
    t = pd.DataFrame({"backend": ["UCX", "UCX"], "block_size": [4096, 2**20], "gbps": [0.01, 0.5]})
    assert predict.ask("04", "1M", transfer=t).verdict == "close"
    assert predict.ask("04", "4K", transfer=t).verdict == "off"
    assert predict.ask("04", "1M", transfer=None).verdict == "not measured"
    with pytest.raises(ValueError, match="no prediction question"):
        predict.ask("05", 1)


def test_timing_and_class_mode(tmp_path, monkeypatch) -> None:
    import json

    monkeypatch.setattr(timing, "QUICKSTART_RECORD", tmp_path / "none.json")  # no record: the typed basis
    t = timing.timing_table({"02": 1.5})
    assert t.set_index("notebook").loc["02", "local (min, measured)"] == 1.5
    assert t.set_index("notebook").loc["04", "class slot (min)"] == 10
    assert t.set_index("notebook").loc["02", "local, real engine (min)"] == 3.6 and "vllm" in t.attrs["real engine basis"]
    # a recorded `make run` (benchmarks/quickstart) fills the real-engine column, failed notebooks left out
    rec = {"cpus": 2, "commands": {"run": {"when": "2026-12-07T13:50:00Z", "notebooks": [
        {"notebook": "01-cluster-setup", "status": "ok", "seconds": 70.5},
        {"notebook": "03-cross-node-efa", "status": "failed", "seconds": 9.0}]}}}
    (tmp_path / "q.json").write_text(json.dumps(rec))
    monkeypatch.setattr(timing, "QUICKSTART_RECORD", tmp_path / "q.json")
    t = timing.timing_table().set_index("notebook")
    assert t.loc["01", "local, real engine (min)"] == 1.2 and t.loc["03", "local, real engine (min)"] == "not timed yet"
    assert "make run" in timing.timing_table().attrs["real engine basis"]
    assert timing.class_mode("http://a", "http://b").startswith("class mode")
    assert timing.class_mode(None, None).startswith("self-paced")
    assert timing.class_mode(None, None, "local").startswith("local: nothing is deployed")


def test_oddities() -> None:
    assert "MOCKER" in oddities.engine_note("mocker")
    assert "random" in oddities.engine_note("vllm")
    with pytest.raises(KeyError, match="use one of"):
        oddities.explain("nope")


def test_reply_note() -> None:
    assert "random" in oddities.reply_note("local", "vllm") and "real model" in oddities.reply_note("eks")
    assert "without running any model" in oddities.reply_note("local", "mocker")
