"""workshop_lib.preflight: each check's verdict per mock-cluster scenario, the CLI, and the local target."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

import pytest

from tests.support.k8s_fixtures import serve_scenario
from workshop_lib import preflight
from workshop_lib.cli import main
from workshop_lib.config import WorkshopConfig

CFG = WorkshopConfig(target="eks")


def rows(scenario: str, cfg: WorkshopConfig = CFG) -> dict[str, dict[str, str]]:
    with serve_scenario(scenario) as s:
        df = preflight.preflight_eks(s.cluster, cfg)
    assert list(df.columns) == ["check", "status", "found", "expected", "fix"]
    return {r["check"]: r for r in df.to_dict(orient="records")}


def test_healthy_cluster_all_pass() -> None:
    r = rows("healthy")
    assert {v["status"] for v in r.values()} == {"PASS"}
    assert len(r) == 16
    assert r["GPU nodes"]["found"] == "2 x p5.48xlarge"
    assert r["vpc.amazonaws.com/efa on gpu-node-1"]["found"] == "32"
    assert r["nvidia.com/gpu on gpu-node-2"]["found"] == "8"
    assert r["two GPU nodes in one AZ"]["found"] == "us-east-2a: 2"
    assert r["Dynamo CRDs"]["found"] == "dynamo-crds 0.9.0"
    assert r["platform pod dynamo-platform-nats-0"]["found"] == "dynamo-platform-nats-0 2/2"
    assert r["platform pod dynamo-platform-dynamo-operator-controller-manager-*"]["found"].endswith(" 2/2")
    assert r["cluster reachable"]["found"].startswith("v1.31.4-eks-2d5f260 at http://127.0.0.1:")


@pytest.mark.parametrize(
    ("scenario", "check", "status", "found", "fix"),
    [
        ("no-efa", "vpc.amazonaws.com/efa on gpu-node-2", "FAIL", "not allocatable", "EFA device plugin"),
        ("efa-short", "vpc.amazonaws.com/efa on gpu-node-2", "WARN", "16", "has 32 EFA devices"),
        ("split-az", "two GPU nodes in one AZ", "FAIL", "us-east-2a: 1, us-east-2b: 1", "EFA does not cross availability zones"),
        ("no-gdrcopy", "GDRCopy DaemonSet", "FAIL", "not installed", "GDRCopy installer"),
        ("gdrcopy-partial", "GDRCopy DaemonSet", "FAIL", "kube-system/gdrcopy-installer 1/2 ready", "not running on every GPU node"),
        ("no-efa-plugin", "EFA device plugin DaemonSet", "FAIL", "not installed", "aws-efa-k8s-device-plugin --version v0.5.6"),
        ("no-hugepages", "hugepages-2Mi on gpu-node-1", "FAIL", "0Mi", "vm.nr_hugepages"),
        ("token-key", "secret dynamo-workshop/hf-token-secret", "FAIL", "keys: token", "HTTP 401"),
        ("no-secret", "secret dynamo-workshop/hf-token-secret", "FAIL", "missing", "--from-literal=HF_TOKEN="),
        ("crds-old", "Dynamo CRDs", "FAIL", "dynamo-crds 0.7.1", "workshop platform install"),
        ("empty", "Dynamo CRDs", "FAIL", "dynamographdeployments.nvidia.com missing", "workshop platform install"),
        ("empty", "platform pod dynamo-platform-etcd-0", "FAIL", "missing", "workshop platform install"),
    ],
)
def test_check_verdicts(scenario: str, check: str, status: str, found: str, fix: str) -> None:
    r = rows(scenario)[check]
    assert (r["status"], r["found"]) == (status, found)
    assert fix in r["fix"]


def test_other_checks_stay_pass_when_one_fails() -> None:
    r = rows("no-gdrcopy")
    assert [k for k, v in r.items() if v["status"] != "PASS"] == ["GDRCopy DaemonSet"]


def test_p5en_counts_come_from_instance_types() -> None:
    r = rows("p5en", WorkshopConfig(target="eks", instance_type="p5en.48xlarge"))
    assert r["vpc.amazonaws.com/efa on gpu-node-1"]["status"] == "PASS"
    assert r["vpc.amazonaws.com/efa on gpu-node-1"]["expected"] == "16"
    assert r["GPU nodes"]["expected"] == ">= 2 x p5en.48xlarge (8 GPU, 16 EFA each)"


def test_forbidden_secret_read_is_a_row_not_a_crash() -> None:
    with serve_scenario("healthy") as s:
        s.mock.forbidden.add(("get", "secrets"))
        df = preflight.preflight_eks(s.cluster, CFG)
    r = df.set_index("check").loc["secret dynamo-workshop/hf-token-secret"]
    assert r["status"] == "FAIL" and "403" in r["fix"] and "ask your admin" in r["fix"]


def test_cli_json_exit_codes_and_no_secret_value(capsys: pytest.CaptureFixture[str]) -> None:
    with serve_scenario("healthy") as s:
        assert main(["preflight", "--kubeconfig", str(s.kubeconfig), "--json"]) == 0
        out = capsys.readouterr().out
        token = "hf_not_a_real_token_000000"
        assert token not in out and base64.b64encode(token.encode()).decode() not in out
        assert {r["status"] for r in json.loads(out)} == {"PASS"}
    with serve_scenario("split-az") as s:
        assert main(["preflight", "--kubeconfig", str(s.kubeconfig)]) == 1
        out = capsys.readouterr().out
        assert "FAIL    two GPU nodes in one AZ" in out and "fix: EFA does not cross" in out


def test_cli_unreachable_cluster_one_line(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    with serve_scenario("healthy") as s:
        kc = s.kubeconfig.read_text()
    (tmp_path / "kc").write_text(kc)  # the server is gone now
    assert main(["preflight", "--target", "eks", "--kubeconfig", str(tmp_path / "kc")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: API server /version: unreachable") and "Traceback" not in err


@dataclass
class _Item:
    name: str
    ok: bool
    found: str
    expected: str
    fix: str


def test_local_target_uses_lab_setup_status(monkeypatch: pytest.MonkeyPatch) -> None:
    from workshop_lib.lab import setup as lab_setup

    monkeypatch.setattr(lab_setup, "status", lambda: [
        _Item("etcd", True, "3.4.23", "3.4.23", ""),
        _Item("libcuda.so.1", False, "missing", "driver library or the lab stub", "workshop lab setup"),
        _Item("libfabric", False, "absent", "2.1.0", "workshop lab setup"),
    ])
    df = preflight.run("local")
    r = df.set_index("check")
    assert r.loc["operating system", "status"] == "PASS" and r.loc["python", "expected"] == ">= 3.11"
    assert r.loc["etcd", "status"] == "PASS"
    assert (r.loc["libcuda.so.1", "status"], r.loc["libcuda.so.1", "fix"]) == ("FAIL", "workshop lab setup")
    # libfabric is optional: the LIBFABRIC lessons say so and UCX still runs
    assert (r.loc["libfabric", "status"], r.loc["libfabric", "fix"]) == ("WARN", "workshop lab setup")
    assert preflight.failed(df)
