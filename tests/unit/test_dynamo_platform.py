"""workshop_lib.dynamo_platform: helm commands (through a fake ``helm`` on PATH that records its argv) and verification
against the mock API server."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.k8s_fixtures import serve_scenario
from workshop_lib import dynamo_platform
from workshop_lib.cli import main
from workshop_lib.config import WorkshopConfig
from workshop_lib.errors import ClusterTimeout, PlatformError

CFG = WorkshopConfig(target="eks")
FAKE_HELM = f"""#!{sys.executable}
# Test double of the helm CLI: records argv (and the -f values file's content), answers `helm list`.
import json, os, sys
argv = sys.argv[1:]
values = None
if "-f" in argv:
    values = open(argv[argv.index("-f") + 1]).read()
with open(os.environ["HELM_RECORD"], "a") as f:
    f.write(json.dumps({{"argv": argv, "values": values}}) + "\\n")
if os.environ.get("HELM_FAIL"):
    sys.stderr.write(os.environ["HELM_FAIL"] + "\\n")
    sys.exit(1)
if argv[:1] == ["list"]:
    ns = argv[argv.index("-n") + 1]
    print(json.dumps(json.loads(os.environ.get("HELM_LIST", "{{}}")).get(ns, [])))
"""


@pytest.fixture
def fake_helm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    helm = bindir / "helm"
    helm.write_text(FAKE_HELM)
    helm.chmod(helm.stat().st_mode | stat.S_IEXEC)
    record = tmp_path / "helm-calls.jsonl"
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("HELM_RECORD", str(record))
    return record


def calls(record: Path) -> list[dict]:
    return [json.loads(x) for x in record.read_text().splitlines()] if record.exists() else []


def test_dry_run_needs_no_helm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    crds, plat = dynamo_platform.install(CFG, dry_run=True, context="eks-1")
    assert crds[:8] == ["helm", "upgrade", "--install", "dynamo-crds",
                        "oci://helm.ngc.nvidia.com/nvidia/ai-dynamo/charts/dynamo-crds", "--version", "0.9.0", "--namespace"]
    assert crds[-2:] == ["--kube-context", "eks-1"]
    assert plat[3] == "dynamo-platform" and plat[plat.index("--version") + 1] == "0.9.0"
    assert plat[plat.index("--namespace") + 1] == "dynamo-system" and "--create-namespace" in plat
    assert "dynamo-operator.controllerManager.manager.image.tag=0.9.0" in plat


def test_missing_helm_is_clear(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(PlatformError, match=r"^helm: the helm CLI is not on PATH\. Fix: install Helm 3 \(https://helm.sh"):
        dynamo_platform.install(CFG, verify=False)


def test_install_runs_helm_in_order_then_verifies(fake_helm: Path) -> None:
    with serve_scenario("healthy") as s:
        cmds = dynamo_platform.install(CFG, kubeconfig=str(s.kubeconfig), timeout_s=10, progress=False)
        again = dynamo_platform.install(CFG, kubeconfig=str(s.kubeconfig), timeout_s=10, progress=False)
        assert s.mock.watches("pods")  # verification watched the platform pods
    got = calls(fake_helm)
    assert [c["argv"][:3] for c in got] == [["upgrade", "--install", "dynamo-crds"], ["upgrade", "--install", "dynamo-platform"]] * 2
    assert [c["argv"] for c in got[:2]] == [c[1:] for c in cmds]
    assert [len(c) for c in cmds] == [len(c) for c in again]
    plat = got[1]["argv"]
    assert plat[plat.index("--kubeconfig") + 1] == str(s.kubeconfig)
    values = yaml.safe_load(got[1]["values"])
    assert values["dynamo-operator"]["controllerManager"]["manager"]["image"] == {
        "repository": "nvcr.io/nvidia/ai-dynamo/kubernetes-operator", "tag": "0.9.0"}
    assert got[0]["values"] is None  # the CRD chart takes no values


def test_helm_failure_has_reason_and_fix(fake_helm: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HELM_FAIL", "Error: INSTALLATION FAILED: Kubernetes cluster unreachable: Get \"https://x/version\": dial tcp: i/o timeout")
    with pytest.raises(PlatformError) as ei:
        dynamo_platform.install(CFG, verify=False)
    msg = str(ei.value)
    assert msg.startswith("helm release dynamo-crds: Error: INSTALLATION FAILED: Kubernetes cluster unreachable")
    assert "check your kubeconfig/context (workshop preflight)" in msg
    assert len(calls(fake_helm)) == 1  # stopped before the platform chart


def test_verify_times_out_without_platform_pods() -> None:
    with serve_scenario("empty") as s, pytest.raises(ClusterTimeout, match="pods in dynamo-system: not ready after 1 s"):
        dynamo_platform.verify_platform(s.cluster, CFG, timeout_s=1, progress=False)


def test_status_with_helm_releases(fake_helm: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HELM_LIST", json.dumps({
        "default": [{"name": "dynamo-crds", "chart": "dynamo-crds-0.9.0", "status": "deployed", "namespace": "default"}],
        "dynamo-system": [{"name": "dynamo-platform", "chart": "dynamo-platform-0.7.1", "status": "deployed"}],
    }))
    with serve_scenario("healthy") as s:
        df = dynamo_platform.status(s.cluster, CFG, with_helm=True)
    r = df.set_index("check")
    assert r.loc["helm release dynamo-crds", "status"] == "PASS"
    assert (r.loc["helm release dynamo-platform", "status"], r.loc["helm release dynamo-platform", "found"]) == (
        "FAIL", "dynamo-platform-0.7.1 deployed")
    assert r.loc["platform pod dynamo-platform-etcd-0", "status"] == "PASS"


def test_cli_platform(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["platform", "install", "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("helm upgrade --install dynamo-crds ") and out[1].startswith("helm upgrade --install dynamo-platform ")
    with serve_scenario("healthy") as s:
        assert main(["platform", "status", "--kubeconfig", str(s.kubeconfig)]) == 0
    with serve_scenario("empty") as s:
        assert main(["platform", "status", "--kubeconfig", str(s.kubeconfig)]) == 1
    assert "FAIL    Dynamo CRDs" in capsys.readouterr().out
