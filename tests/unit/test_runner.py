from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from workshop_lib import record as record_mod
from workshop_lib.clicmds.run import _value
from workshop_lib.errors import NotebookError
from workshop_lib.runner import NotebookRun, discover, find_secrets, format_summary, run_one


def _notebook(path: Path, body: str) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('TARGET = "local"\nVALUE = 1')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def test_record_roundtrip(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(record_mod.ENV_DIR, str(tmp_path))
    monkeypatch.setenv(record_mod.ENV_NOTEBOOK, "99-x")
    record_mod.record("rows", 3)
    record_mod.record("nan", float("nan"))
    record_mod.record("path", tmp_path)
    data = record_mod.load(tmp_path / "99-x.json")
    assert data["rows"] == 3 and data["nan"] is None and data["path"] == str(tmp_path)


@pytest.mark.slow
def test_run_one_records_parameters_and_exports_html(tmp_path) -> None:
    nb = _notebook(
        tmp_path / "07-demo.ipynb",
        "from workshop_lib.record import record\nrecord('verdict', f'{TARGET}-{VALUE * 2}')",
    )
    res = run_one(nb, tmp_path / "out", {"TARGET": "eks", "VALUE": 21})
    assert res.status == "ok", res.error
    assert res.records == {"verdict": "eks-42"}
    assert res.html is not None and res.html.read_text().startswith("<!DOCTYPE html>")
    assert "verdict=eks-42" in format_summary([res])


@pytest.mark.slow
def test_run_one_reports_the_failing_cell(tmp_path) -> None:
    nb = _notebook(tmp_path / "08-bad.ipynb", "raise ValueError('boom')")
    res = run_one(nb, tmp_path / "out", {}, html=False)
    assert res.status == "failed"
    assert "ValueError: boom" in (res.error or "")


def test_find_secrets_names_cells_never_values(tmp_path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell("print('hf_abcdefSECRET')")]
    p = tmp_path / "n.ipynb"
    nbformat.write(nb, p)
    assert find_secrets(p, ["hf_abcdefSECRET"]) == ["cell 1"]
    assert find_secrets(p, [""]) == []


def test_discover_selects_and_rejects(tmp_path) -> None:
    for n in ("01-a", "02-b"):
        _notebook(tmp_path / f"{n}.ipynb", "pass")
    assert [p.stem for p in discover(["02"], tmp_path)] == ["02-b"]
    assert [p.stem for p in discover(None, tmp_path)] == ["01-a", "02-b"]
    with pytest.raises(NotebookError, match="no notebook matches '05'"):
        discover(["05"], tmp_path)


def test_summary_table_lists_failures() -> None:
    text = format_summary([NotebookRun("01-x", "failed", 3.0, error="KeyError: 'a'")])
    assert "FAILED" in text and "KeyError" in text


def test_parameter_values_are_literals_or_strings() -> None:
    assert _value("3") == 3 and _value("None") is None and _value("UCX") == "UCX" and _value("[1, 5]") == [1, 5]


def test_cli_rejects_lowercase_parameter(capsys) -> None:
    from workshop_lib.cli import main

    assert main(["run", "-p", "kv_backend", "UCX"]) == 1
    assert "upper-case" in capsys.readouterr().err
