"""Issue 16: an instructor's headless run fails loudly on a FAIL verdict, and every parameter is checked first."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.support.mock_k8s import MockApiServer
from tests.support.scenarios import GPU_NODES, build
from workshop_lib.cli import main
from workshop_lib.runner import NotebookRun, fail_on_verdicts, secret_values


@pytest.mark.parametrize(
    ("records", "failing"),
    [
        ({"verdict_setup": "FAIL"}, ["verdict_setup=FAIL"]),
        ({"verdict_kv": "error", "verdict_setup": "PASS"}, ["verdict_kv=error"]),
        ({"verdict_setup": "PASS", "verdict_x": "WARN", "verdict_y": "EXPECTED", "verdict_z": "NO EVIDENCE"}, []),
        ({"verdict": "tcp-fallback", "status_fail": "FAIL"}, []),  # a diagnosis, and a non-verdict record
    ],
)
def test_failing_verdicts(records: dict, failing: list[str]) -> None:
    run = fail_on_verdicts(NotebookRun("01-cluster-setup", "ok", 1.0, records=records))
    assert run.failed_verdicts() == failing
    assert run.status == ("failed" if failing else "ok")
    if failing:
        assert run.error == f"recorded a failing verdict: {', '.join(failing)}"


def test_a_notebook_error_is_not_hidden_by_verdicts() -> None:
    run = fail_on_verdicts(NotebookRun("02-x", "failed", 1.0, records={"verdict_a": "FAIL"}, error="KeyError: 'a'"))
    assert run.error == "KeyError: 'a'"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-p", "KV_BACKND", "UCX"], "KV_BACKND: unknown parameter. Fix: did you mean KV_BACKEND?"),
        (["-p", "NIXL_ITERS", "abc", "--notebooks", "02"], "nixl_iters: 'abc' is not an integer"),
        (["-p", "MAX_TOKENS", "-1"], "max_tokens: -1 must be a positive integer"),
        (["-p", "TEARDOWN", "perhaps"], "teardown: 'perhaps' is not true or false"),
        (["-p", "WORKER_MEMORY", "128"], "worker_memory: '128' has no memory unit"),
        (["--notebooks", ""], "--notebooks: '' names no notebook"),
        (["--notebooks", "01,"], "--notebooks: '01,' names no notebook"),
        (["--notebooks", "07"], "no notebook matches '07'"),
        (["-p", "NETNS", "True", "--notebooks", "02"], "-p NETNS: not a parameter of 02-"),
        (["-p", "VRAM_SIZES", "1M", "--notebooks", "01,03"], "Fix: run it with --notebooks 04"),
    ],
)
def test_run_rejects_bad_input_before_any_notebook(argv: list[str], message: str, tmp_path: Path, capsys) -> None:
    assert main(["run", "--out", str(tmp_path), *argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # nothing ran


def test_secret_values_cover_both_token_names() -> None:
    assert secret_values({"HF_TOKEN": "hf_a", "HUGGING_FACE_HUB_TOKEN": "hf_b", "X": "y"}) == ["hf_a", "hf_b"]
    assert secret_values({}) == []


def _fake_helm(bin_dir: Path) -> None:
    helm = bin_dir / "helm"
    helm.write_text("#!/bin/sh\nexit 0\n")
    helm.chmod(helm.stat().st_mode | stat.S_IEXEC)


@pytest.mark.slow
@pytest.mark.notebook
@pytest.mark.parametrize(("scenario", "code"), [("no-efa", 1), ("healthy", 0)])
def test_run_exits_nonzero_on_a_fail_verdict(scenario: str, code: int, tmp_path: Path, capsys) -> None:
    """`workshop run --target eks --notebooks 01` against the mock API: no EFA on one node is exit 1, named."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _fake_helm(bin_dir)
    with MockApiServer(build(scenario)) as srv, pytest.MonkeyPatch.context() as mp:
        mp.setenv("KUBECONFIG", str(srv.write_kubeconfig(tmp_path / "kubeconfig")))
        mp.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
        mp.setenv("WORKSHOP_WORK_DIR", str(tmp_path / "work"))
        mp.setenv("HF_TOKEN", "hf_fake_runner_token_123456")
        rc = main(["run", "--target", "eks", "--notebooks", "01", "--no-html", "--out", str(tmp_path / "runs"),
                   "--timeout", "300", "-p", "PREFILL_NODE", GPU_NODES[0], "-p", "DECODE_NODE", GPU_NODES[1],
                   "-p", "TEARDOWN", "false", "-p", "KV_BACKEND", "UCX"])  # UCX: the stock image is fine
    out, err = capsys.readouterr()
    assert rc == code, out + err
    if code:
        assert "FAILED: 01-cluster-setup: recorded a failing verdict: " in err and "verdict_setup=FAIL" in err
    else:
        assert "verdict_setup=PASS" in out and "FAILED" not in err
    assert "hf_fake_runner_token_123456" not in out + err


@pytest.mark.slow
def test_the_token_is_nowhere_a_run_wrote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A record holding the token, and a lab log holding it, each fail the run by file name (never the value)."""
    import nbformat

    from workshop_lib.runner import run_notebooks, secret_files

    token = "hf_fake_scan_token_abcdef123"
    monkeypatch.setenv("HF_TOKEN", token)
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    for name, body in (("01-leaks", "import os\nfrom workshop_lib.record import record\n"
                                    "record('header', 'Bearer ' + os.environ['HF_TOKEN'][:0] + 'x')\n"
                                    "record('oops', os.environ['HF_TOKEN'].upper().lower())"),
                       ("02-clean", "from workshop_lib.record import record\nrecord('verdict_x', 'PASS')")):
        nb = nbformat.v4.new_notebook()
        params = nbformat.v4.new_code_cell('TARGET = "local"')
        params.metadata["tags"] = ["parameters"]
        nb.cells = [params, nbformat.v4.new_code_cell(body)]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, nbs / f"{name}.ipynb")
    lab = tmp_path / "lab-run"
    lab.mkdir()
    (lab / "frontend.log").write_text("INFO serving on 0.0.0.0:8000\n")
    (lab / "decode.log").write_bytes(b"x" * (1 << 20) + f"DEBUG env HF_TOKEN={token}\n".encode())  # across a chunk
    results = run_notebooks(parameters={}, out_root=tmp_path / "runs", html=False, quiet=True, scan_dirs=[lab],
                            notebook_dir=nbs)
    by = {r.notebook: r for r in results}
    assert by["01-leaks"].status == "failed" and "records" in (by["01-leaks"].error or "")
    assert by["01-leaks"].records == {}
    assert by["02-clean"].status == "ok"
    assert by["secret-scan"].status == "failed" and str(lab / "decode.log") in (by["secret-scan"].error or "")
    assert "frontend.log" not in (by["secret-scan"].error or "")
    run_dir = next((tmp_path / "runs").iterdir())
    assert secret_files([run_dir], [token]) == []  # nothing of the run keeps it
    assert all(token not in (r.error or "") for r in results)
