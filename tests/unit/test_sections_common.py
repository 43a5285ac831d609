"""Tests for the notebooks' shared glue: parameters, context, troubleshooting rows, the optional widgets form."""

from __future__ import annotations

import pytest

from workshop_lib import record as record_mod
from workshop_lib.errors import ConfigError
from workshop_lib.sections import common, troubleshoot
from workshop_lib.widgets import ParamForm, headless, parameter_form


def test_parameters_keeps_upper_case_plain_values() -> None:
    ns = {"TARGET": "eks", "NIXL_SIZES": "4K,1M", "PARAMS": {"x": 1}, "pd": object(), "_HIDDEN": 1, "FN": len}
    assert common.parameters(ns) == {"TARGET": "eks", "NIXL_SIZES": "4K,1M"}


def test_start_splits_config_and_extra(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("WORKSHOP_WORK_DIR", str(tmp_path))
    ctx = common.start({"TARGET": "local", "KV_BACKEND": "ucx", "REQUESTS": 4, "TEARDOWN": False}, "04")
    assert ctx.cfg.kv_backend == "UCX" and ctx.target.name == "local" and ctx.target is ctx.target
    assert ctx.get("requests") == 4 and ctx.get("TEARDOWN") is False
    assert ctx.work_dir == tmp_path / "04-local" and ctx.work_dir.is_dir()
    assert "Section 04" in common.banner(ctx) and "no GPU" in common.banner(ctx)
    assert record_mod.recorded()["target"] == "local"


def test_start_names_bad_field() -> None:
    with pytest.raises(ConfigError, match="kv_backend"):
        common.start({"TARGET": "local", "KV_BACKEND": "TCP"}, "02")


def test_local_cost_note() -> None:
    ctx = common.start({"TARGET": "local"}, "01")
    assert common.cost_note(ctx) == "" and "nothing is billed" in common.cost_note(ctx, final=True)


def test_troubleshooting_rows_per_section_and_target() -> None:
    for section in ("01", "02", "03", "04"):
        assert len(troubleshoot.rows(section, "eks")) >= 2
        assert len(troubleshoot.rows(section, "local")) >= 1
    eks03 = troubleshoot.table("03", "eks")
    assert list(eks03.columns) == ["symptom", "cause", "fix", "source"]
    assert any("128Gi" in f for f in eks03["fix"])
    assert any("TCP fallback" in s for s in troubleshoot.table("03", "local")["symptom"])  # "both" rows included
    assert all(t.source for t in troubleshoot.TROUBLES)


def test_widgets_headless_returns_params_unchanged(monkeypatch) -> None:
    monkeypatch.setenv("WORKSHOP_HEADLESS", "1")
    assert headless()
    form = parameter_form({"TARGET": "local", "HF_TOKEN": "secret-value", "REQUESTS": 8})
    assert not form.shown and form.values() == {"TARGET": "local", "REQUESTS": 8}


def test_widgets_form_types_round_trip() -> None:
    form = ParamForm({"TARGET": "eks", "REQUESTS": 8, "PRICE": 55.04, "TEARDOWN": False, "NODE": None,
                      "SIZES": [1, 2]}, interactive=True)
    assert form.shown
    assert form.values() == {"TARGET": "eks", "REQUESTS": 8, "PRICE": 55.04, "TEARDOWN": False, "NODE": None,
                             "SIZES": [1, 2]}
    form._controls["REQUESTS"].value = 3
    form._controls["SIZES"].value = "4, 5"
    assert form.values()["REQUESTS"] == 3 and form.values()["SIZES"] == [4, 5]
    form._controls["PRICE"] = type("W", (), {"value": "cheap"})()
    with pytest.raises(ConfigError, match="PRICE"):
        form.values()


def test_start_rejects_a_parameter_that_is_no_field(tmp_path) -> None:
    """A typo in the parameters cell or in papermill's -p (papermill itself only warns) stops the notebook at start."""
    import pytest

    from workshop_lib.errors import ConfigError
    from workshop_lib.sections.common import start

    with pytest.raises(ConfigError) as err:
        start({"TARGET": "local", "WORK_DIR": str(tmp_path), "KV_BACKND": "UCX"}, "02")
    assert "KV_BACKND" in str(err.value) and "KV_BACKEND" in str(err.value)
    ctx = start({"TARGET": "local", "WORK_DIR": str(tmp_path), "KV_BACKEND": "UCX", "ISL": None}, "02")
    assert ctx.cfg.kv_backend == "UCX"
