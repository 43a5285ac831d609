"""Issue 16 items 2/5/7 through the command line: values reach the notebook typed; bad ones stop with one line."""

from __future__ import annotations

import functools
from pathlib import Path

import nbformat
import pytest

from workshop_lib import runner
from workshop_lib.cli import main
from workshop_lib.clicmds import run as run_cmd


@pytest.mark.slow
def test_teardown_false_reaches_the_notebook_as_false(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('TARGET = "local"\nTEARDOWN = False\nNIXL_ITERS = 5\nCONCURRENCY = None')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(
        "from workshop_lib.record import record\n"
        "record('teardown', [type(TEARDOWN).__name__, TEARDOWN])\n"
        "record('iters', [type(NIXL_ITERS).__name__, NIXL_ITERS])\n"
        "record('conc', CONCURRENCY)")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, nbs / "01-probe.ipynb")
    monkeypatch.setattr(run_cmd, "run_notebooks", functools.partial(runner.run_notebooks, notebook_dir=nbs,
                                                                     scan_dirs=[]))
    rc = main(["run", "--no-html", "--out", str(tmp_path / "runs"), "-p", "TEARDOWN", "false",
               "-p", "NIXL_ITERS", "7", "-p", "CONCURRENCY", "1,2"])
    out = capsys.readouterr().out
    assert rc == 0, out
    rec = runner.record_mod.load(next((tmp_path / "runs").iterdir()) / "records" / "01-probe.json")
    assert rec == {"teardown": ["bool", False], "iters": ["int", 7], "conc": [1, 2]}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["render", "--profile", "single-node", "--set", "worker_memory=128"], "worker_memory: '128' has no memory unit"),
        (["render", "--profile", "single-node", "--set", "decode_node=ip 10"], "decode_node: 'ip 10' is not a Kubernetes"),
        (["config", "--set", "price_per_node_hour=nan"], "price_per_node_hour: 'nan' is not a finite number"),
        (["config", "--set", "kv_backnd=UCX"], "kv_backnd: unknown parameter. Fix: did you mean kv_backend?"),
        (["config", "--set", "teardown=nope"], "teardown: 'nope' is not true or false"),
        (["config", "--set", "engine=sglang"], "engine: 'sglang' is not an engine"),
    ],
)
def test_set_values_are_checked_by_type(argv: list[str], message: str, capsys) -> None:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1


def test_config_prints_typed_values(capsys) -> None:
    assert main(["config", "--set", "teardown=yes", "--set", "concurrency=1,5", "--set", "engine=mocker"]) == 0
    import json

    cfg = json.loads(capsys.readouterr().out)
    assert cfg["teardown"] is True and cfg["concurrency"] == [1, 5] and cfg["engine"] == "mocker"


def test_config_help_documents_the_engine_variable(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["config", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "WORKSHOP_ENGINE=mocker" in out and "engine=vllm" in out


def test_engine_from_environment_in_config(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    import json

    monkeypatch.setenv("WORKSHOP_ENGINE", "mocker")
    assert main(["config"]) == 0
    assert json.loads(capsys.readouterr().out)["engine"] == "mocker"
