"""Issue 16 item 6/7: bad inputs and cluster faults give one-line errors naming the file/field/resource and a real fix."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest
import yaml

from tests.support.k8s_fixtures import serve_scenario
from tests.support.scenarios import CONFLICT_MANAGER, WORKSHOP_NS
from workshop_lib.cli import main
from workshop_lib.cluster import Cluster
from workshop_lib.errors import ClusterError, LabError

REPO = Path(__file__).resolve().parents[2]


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    return err.strip()


def test_config_file_that_is_a_binary(tmp_path: Path, capsys) -> None:
    binary = Path("/usr/bin/ls") if Path("/usr/bin/ls").is_file() else tmp_path / "ls"
    if not binary.exists():
        binary.write_bytes(b"\x7fELF\x02\x01\x01\x00\xff\xfe\x00")
    assert main(["config", "--config", str(binary)]) == 1
    assert f"error: {binary}: not a text file" in _one_line_error(capsys)


BAD_KUBECONFIGS = [
    ("apiVersion: v1\nclusters:\n  - name: x\n    cluster: [unclosed\n", ":5: invalid YAML"),
    ("apiVersion: v1\nclusters: {a: 1\n", ":3: invalid YAML"),
    ("- a\n- b\n", "cannot be read"),
    ("clusters: 5\n", "cannot be read"),
    ("", "no usable kubeconfig context"),
]


@pytest.mark.parametrize(("text", "message"), BAD_KUBECONFIGS)
@pytest.mark.parametrize("argv", [["preflight", "--target", "eks"], ["platform", "status"], ["platform", "install"]])
def test_malformed_kubeconfig_names_the_file(text: str, message: str, argv: list[str], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    kc = tmp_path / "kubeconfig"
    kc.write_text(text)
    monkeypatch.setenv("KUBECONFIG", str(kc))
    assert main(argv) == 1
    err = _one_line_error(capsys)
    assert f"kubeconfig {kc}" in err and message in err


def test_render_out_is_a_file_or_unwritable(tmp_path: Path, capsys) -> None:
    target = tmp_path / "passwd"
    target.write_text("root:x:0:0\n")
    assert main(["render", "--profile", "platform", "--out", str(target)]) == 1
    assert f"--out: {target} is a file, not a folder" in _one_line_error(capsys)
    assert target.read_text() == "root:x:0:0\n"
    blocked = tmp_path / "ro"
    blocked.mkdir()
    (blocked / "sub").write_text("")  # a file where the render wants a folder
    assert main(["render", "--profile", "platform", "--out", str(blocked / "sub" / "deeper")]) == 1
    assert "--out: cannot write under" in _one_line_error(capsys)


def test_409_conflict_suggests_real_kubectl_commands() -> None:
    from tests.support.scenarios import owned_elsewhere
    from workshop_lib.config import WorkshopConfig
    from workshop_lib.manifests.profiles import render

    docs = [d for f in render(WorkshopConfig(), "single-node") for d in yaml.safe_load_all(f.text) if d]
    manifest = next(d for d in docs if d["kind"] == "DynamoGraphDeployment")
    name = manifest["metadata"]["name"]
    with serve_scenario(cluster=owned_elsewhere(name)) as s:
        with pytest.raises(ClusterError) as ei:
            s.cluster.apply(manifest)
        msg = str(ei.value)
        assert "\n" not in msg and "(409 Conflict)" in msg
        assert f'conflict with "{CONFLICT_MANAGER}": .spec.services.Frontend.replicas' in msg
        target = f"--context mock -n {WORKSHOP_NS} get DynamoGraphDeployment {name}"
        assert f"kubectl {target} -o yaml --show-managed-fields" in msg
        assert "kubectl apply --server-side --force-conflicts --field-manager workshop" in msg
        assert "CLI: --force-conflicts" not in msg  # no kit command has that flag
        # the suggested way out works: take the fields over
        out = s.cluster.apply(manifest, force_conflicts=True)
        assert out["spec"]["services"]["Frontend"]["replicas"] == 1


@pytest.mark.parametrize(
    ("scenario", "call", "message"),
    [
        ("forbid-list-nodes", lambda cl: cl.list("v1", "Node"), "list nodes is forbidden"),
        ("forbid-apply", lambda cl: cl.apply({"apiVersion": "v1", "kind": "ConfigMap",
                                              "metadata": {"name": "x", "namespace": WORKSHOP_NS}}),
         "patch configmaps is forbidden"),
        ("forbid-delete", lambda cl: cl.delete("v1", "Secret", "hf-token-secret", WORKSHOP_NS),
         "delete secrets is forbidden"),
    ],
)
def test_per_verb_403(scenario: str, call, message: str) -> None:
    with serve_scenario(scenario) as s:
        with pytest.raises(ClusterError) as ei:
            call(s.cluster)
        assert message in str(ei.value) and "RBAC permission" in str(ei.value)
        assert s.cluster.list("v1", "Namespace")  # other verbs still work


def test_preflight_reports_a_forbidden_node_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    with serve_scenario("forbid-list-nodes") as s:
        monkeypatch.setenv("KUBECONFIG", str(s.kubeconfig))
        rc = main(["preflight", "--target", "eks"])
    out, err = capsys.readouterr()
    assert rc == 1 and "Traceback" not in out + err
    assert "list nodes is forbidden" in out + err


def test_platform_install_reaches_the_cluster_before_helm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "helm-calls.txt"
    helm = bin_dir / "helm"
    helm.write_text(f'#!/bin/sh\necho "$@" >> {calls}\nexit 0\n')
    helm.chmod(helm.stat().st_mode | stat.S_IEXEC)
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    kc = tmp_path / "kubeconfig"
    kc.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "gone",
        "clusters": [{"name": "gone", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "gone", "user": {"token": "t"}}],
        "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "gone"}}]}))
    monkeypatch.setenv("KUBECONFIG", str(kc))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert main(["platform", "install"]) == 1
    assert "unreachable from kubeconfig context 'gone'" in _one_line_error(capsys)
    assert not calls.exists()  # no Helm install ran


def test_frontend_404_hint_is_target_neutral() -> None:
    from workshop_lib.bench.client import chat
    from workshop_lib.bench.testserver import running_server

    with running_server(ttft_s=0.0, itl_s=0.0, tokens=2) as srv:
        url = f"http://127.0.0.1:{srv.port}"
        for stream in (False, True):
            with pytest.raises(LabError) as ei:
                chat(url, "fault-404", "hi", stream=stream, max_tokens=4)
            msg = str(ei.value)
            assert "HTTP 404" in msg and f"curl {url}/v1/models" in msg
            assert "workshop lab status" not in msg  # on eks there is no lab


def test_cluster_connect_reads_kubeconfig_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kc = tmp_path / "kc"
    kc.write_text("a: [\n")
    monkeypatch.setenv("KUBECONFIG", str(kc))
    with pytest.raises(ClusterError, match=rf"kubeconfig {kc}:2: invalid YAML"):
        Cluster.connect()


def test_validate_a_binary_file_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    binary = tmp_path / "ls"
    binary.write_bytes(b"\x7fELF\x02\x01\x01\x00\xd0\xff\xfe\x00" * 8)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    assert main(["validate", str(binary)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: {binary}: not a text (UTF-8) file. Fix: give YAML manifest files or folders of them"]


def test_run_rejects_a_non_positive_timeout(tmp_path: Path, capsys) -> None:
    assert main(["run", "--timeout", "-5", "--notebooks", "01", "--out", str(tmp_path)]) == 1
    assert "--timeout: -5 is not a number of seconds" in _one_line_error(capsys)
    assert list(tmp_path.iterdir()) == []


def test_nixlbench_on_a_file_that_is_not_nixlbench(tmp_path: Path, capsys) -> None:
    other = tmp_path / "frontend.log"
    other.write_text("INFO dynamo_runtime: serving on 0.0.0.0:8000\n")
    assert main(["nixlbench", str(other)]) == 1
    assert f"error: {other}: no nixlbench configuration banner and no result table" in _one_line_error(capsys)
    target = tmp_path / "target.log"
    target.write_text("Backend (--backend=[UCX,LIBFABRIC]): LIBFABRIC\n")
    assert main(["nixlbench", str(target)]) == 0  # a target-side log: the banner, no table


def test_aiperf_cmd_checks_the_url(capsys) -> None:
    assert main(["bench", "aiperf-cmd", "--url", "fe:8000", "--model", "m"]) == 1
    assert "url: 'fe:8000' is not an http(s) URL" in _one_line_error(capsys)


def test_no_error_is_raised_with_an_empty_fix(repo_root: Path) -> None:
    """Every WorkshopError the package raises names the fix: a literal "" as the fix (third argument) fails this."""
    import ast

    bad = []
    for path in sorted((repo_root / "workshop_lib").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")).endswith(
                    ("Error", "Unsupported", "Timeout"))):
                continue
            fix = node.args[2] if len(node.args) >= 3 else next((k.value for k in node.keywords if k.arg == "fix"), None)
            if isinstance(fix, ast.Constant) and fix.value == "":
                bad.append(f"{path.relative_to(repo_root)}:{node.lineno}")
    assert not bad, f"errors raised without a fix: {bad}"
