"""workshop_lib.preflight: each check's verdict per mock-cluster scenario, the CLI, and the local target."""

from __future__ import annotations

import base64
import json

import pytest

from tests.support import k8s_objects
from tests.support.k8s_fixtures import serve_scenario
from tests.support.scenarios import build
from workshop_lib import preflight
from workshop_lib.checks import Check
from workshop_lib.cli import main
from workshop_lib.config import WorkshopConfig

EFA_IMAGE = "registry.example.com/dynamo/vllm-runtime:0.9.0-efa"  # stands for an image built with --make-efa
CFG = WorkshopConfig(target="eks", worker_image=EFA_IMAGE)
MANUAL = {"manual: EFA security group allows itself", "manual: GPU nodes in one cluster placement group"}


def rows(scenario: str, cfg: WorkshopConfig = CFG, extra: list[dict] | None = None) -> dict[str, dict[str, str]]:
    cluster = build(scenario)
    for obj in extra or []:
        cluster.put(obj)
    with serve_scenario(scenario, cluster) as s:
        df = preflight.preflight_eks(s.cluster, cfg)
    assert list(df.columns) == ["check", "status", "found", "expected", "fix"]
    return {r["check"]: r for r in df.to_dict(orient="records")}


def test_healthy_cluster_all_pass() -> None:
    r = rows("healthy")
    assert {v["status"] for k, v in r.items() if k not in MANUAL} == {"PASS"}
    assert {r[k]["status"] for k in MANUAL} == {"INFO"}
    assert len(r) == 21
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
    assert [k for k, v in r.items() if v["status"] not in ("PASS", "INFO")] == ["GDRCopy DaemonSet"]


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
        assert main(["preflight", "--kubeconfig", str(s.kubeconfig), "--json", "--set", f"worker_image={EFA_IMAGE}"]) == 0
        out = capsys.readouterr().out
        token = "hf_not_a_real_token_000000"
        assert token not in out and base64.b64encode(token.encode()).decode() not in out
        assert {r["status"] for r in json.loads(out)} == {"PASS", "INFO"}
        # the default config: LIBFABRIC on the stock 0.9.0 runtime image -> FAIL with the build and check commands
        assert main(["preflight", "--kubeconfig", str(s.kubeconfig)]) == 1
        out = capsys.readouterr().out
        assert "FAIL    worker image for NIXL LIBFABRIC" in out and "--make-efa" in out and "fi_info -p efa" in out
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


def test_local_target_uses_lab_setup_status(monkeypatch: pytest.MonkeyPatch) -> None:
    from workshop_lib.lab import setup as lab_setup
    from workshop_lib.lab.setup.common import item

    monkeypatch.setattr(lab_setup, "status", lambda: [
        item("etcd", True, "3.4.23", "3.4.23", ""),
        item("libcuda.so.1", False, "missing", "driver library or the lab stub", "workshop lab setup"),
        item("libfabric", False, "absent", "2.1.0", "workshop lab setup"),
    ])
    df = preflight.run("local")
    r = df.set_index("check")
    assert r.loc["operating system", "status"] == "PASS" and r.loc["python", "expected"] == ">= 3.11"
    assert r.loc["etcd", "status"] == "PASS"
    assert (r.loc["libcuda.so.1", "status"], r.loc["libcuda.so.1", "fix"]) == ("FAIL", "workshop lab setup")
    # libfabric is optional: the LIBFABRIC lessons say so and UCX still runs
    assert (r.loc["libfabric", "status"], r.loc["libfabric", "fix"]) == ("WARN", "workshop lab setup")
    assert preflight.failed(df)


def test_worker_image_for_libfabric() -> None:
    stock = preflight.check_worker_image(WorkshopConfig(target="eks"))
    assert stock.status == "FAIL" and "no libfabric" in stock.found
    assert "container/build.sh --framework vllm|trtllm --target runtime --make-efa" in stock.fix
    assert "ldd $NIXL_PLUGIN_DIR/libplugin_LIBFABRIC.so" in stock.fix
    placeholder = preflight.check_worker_image(WorkshopConfig(target="eks", worker_image="REPLACE_WITH_YOUR_EFA_IMAGE/x:0.9.0-efa"))
    assert placeholder.status == "FAIL" and "placeholder" in placeholder.found
    assert preflight.check_worker_image(CFG).status == "PASS"
    assert preflight.check_worker_image(WorkshopConfig(target="eks", kv_backend="UCX")).status == "PASS"
    trt = preflight.check_worker_image(WorkshopConfig(target="eks", framework="trtllm", worker_image=EFA_IMAGE))
    assert trt.status == "WARN" and "only UCX" in trt.fix and "patched NIXL 0.8.0" in trt.fix


def _netpol(name: str, spec: dict) -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": "dynamo-workshop"}, "spec": spec}


WORKERS = {"matchLabels": {"nvidia.com/dynamo-component-type": "worker"}}
NETPOL = "NetworkPolicy vs NIXL side channel (TCP 5600)"


@pytest.mark.parametrize(("policies", "status", "found"), [
    ([], "PASS", "no NetworkPolicy in dynamo-workshop"),
    ([_netpol("deny-all", {"podSelector": {}, "policyTypes": ["Ingress"]})], "FAIL", "1 policy; blocks ingress (deny-all)"),
    ([_netpol("deny-all", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})], "FAIL",
     "1 policy; blocks ingress (deny-all) and egress (deny-all)"),
    ([_netpol("deny-all", {"podSelector": {}, "policyTypes": ["Ingress"]}),
      _netpol("workers", {"podSelector": WORKERS, "policyTypes": ["Ingress"],
                          "ingress": [{"from": [{"podSelector": WORKERS}], "ports": [{"port": 5600}]}]})],
     "PASS", "2 policies; TCP 5600 between workers allowed"),
    ([_netpol("http-only", {"podSelector": WORKERS, "policyTypes": ["Ingress"],
                            "ingress": [{"ports": [{"port": 8000}, {"port": 5000, "endPort": 5599}]}]})],
     "FAIL", "1 policy; blocks ingress (http-only)"),
    ([_netpol("range", {"podSelector": WORKERS, "policyTypes": ["Ingress"], "ingress": [{"ports": [{"port": 5000, "endPort": 6000}]}]})],
     "PASS", "1 policy; TCP 5600 between workers allowed"),
    ([_netpol("frontend-only", {"podSelector": {"matchLabels": {"nvidia.com/dynamo-component-type": "frontend"}},
                                "policyTypes": ["Ingress"]})], "PASS", "1 policy; TCP 5600 between workers allowed"),
])
def test_network_policy_vs_side_channel(policies: list[dict], status: str, found: str) -> None:
    r = rows("healthy", extra=policies)[NETPOL]
    assert (r["status"], r["found"]) == (status, found)
    if status == "FAIL":
        assert "VLLM_NIXL_SIDE_CHANNEL_PORT" in r["fix"]


def test_host_infiniband_mount_warns() -> None:
    pod = k8s_objects.pod("vllm-xnode-libfabric-decodeworker-abc12", "dynamo-workshop")
    pod["spec"]["volumes"] = [{"name": "ib", "hostPath": {"path": "/dev/infiniband", "type": ""}}]
    r = rows("healthy", extra=[pod])["worker pods mounting host /dev/infiniband"]
    assert r["status"] == "WARN" and r["found"] == "Pod vllm-xnode-libfabric-decodeworker-abc12"
    assert "hide the EFA devices" in r["fix"]
    assert rows("healthy")["worker pods mounting host /dev/infiniband"]["status"] == "PASS"


def test_manual_checks_name_the_nodes_and_the_aws_commands() -> None:
    r = rows("healthy")
    sg, pg = r["manual: EFA security group allows itself"], r["manual: GPU nodes in one cluster placement group"]
    assert sg["status"] == pg["status"] == "INFO"
    assert "Values=gpu-node-1,gpu-node-2" in sg["fix"] and "InterfaceType=='efa'" in sg["fix"]
    assert "aws ec2 describe-security-groups" in sg["fix"] and "Placement.GroupName" in pg["fix"]
    assert not preflight.failed(preflight.to_frame([Check(**{k: v for k, v in sg.items()})]))
