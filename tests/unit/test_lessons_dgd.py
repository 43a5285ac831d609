"""lessons.dgd: the rendered DGD annotated part by part, what became of it, and the kubectl commands."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest

from workshop_lib.config import WorkshopConfig
from workshop_lib.lab.serving import ProcStatus
from workshop_lib.lessons import dgd


@pytest.mark.parametrize("framework", ["vllm", "trtllm"])
@pytest.mark.parametrize("backend", ["UCX", "LIBFABRIC"])
@pytest.mark.parametrize("profile", ["single-node", "cross-node"])
def test_every_part_of_every_rendered_dgd_is_explained(profile: str, backend: str, framework: str) -> None:
    cfg = WorkshopConfig(framework=framework, kv_backend=backend)
    for _, doc in dgd.dgd_documents(cfg, profile):
        parts = dgd.annotate(doc)
        unexplained = parts[parts["what it does"].str.startswith("not explained")]
        assert unexplained.empty, unexplained.to_string()
        roles = set(parts[parts.part == "componentType"]["value"])
        assert roles <= {"frontend", "worker/prefill", "worker/decode"} and roles


def test_cross_node_vllm_parts() -> None:
    view = dgd.dgd_view(WorkshopConfig(kv_backend="LIBFABRIC"), "cross-node")
    assert "kind: DynamoGraphDeployment" in view.yaml and view.path.endswith(".yaml")
    p = view.parts
    assert set(p[p.part == "componentType"]["value"]) == {"frontend", "worker/prefill", "worker/decode"}
    kv = p[(p.service == "DecodeWorker") & (p.part == "args --kv-transfer-config")]["what it does"].iloc[0]
    assert "['LIBFABRIC']" in kv
    mem = p[(p.service == "PrefillWorker") & (p.part == "resources.limits.memory")]
    assert mem["value"].iloc[0] == "128Gi" and "OOM" in mem["what it does"].iloc[0]
    assert "```yaml" in view._repr_markdown_()


def test_unread_env_is_called_a_no_op() -> None:
    doc = copy.deepcopy(dgd.dgd_documents(WorkshopConfig(), "single-node")[0][1])
    doc["spec"]["services"]["DecodeWorker"]["envs"].append({"name": "NIXL_BACKEND", "value": "LIBFABRIC"})
    doc["spec"]["services"]["DecodeWorker"]["envs"].append({"name": "MY_OWN_VAR", "value": "1"})
    p = dgd.annotate(doc)
    row = p[p.part == "env NIXL_BACKEND"]["what it does"].iloc[0]
    assert row.startswith("NO-OP")
    assert p[p.part == "env MY_OWN_VAR"]["what it does"].iloc[0] == "not explained by the kit"


def test_annotate_refuses_other_kinds() -> None:
    with pytest.raises(ValueError, match="DynamoGraphDeployment"):
        dgd.annotate({"kind": "ConfigMap"})
    with pytest.raises(ValueError, match="renders no DynamoGraphDeployment"):
        dgd.dgd_view(WorkshopConfig(), "platform")


def test_commands() -> None:
    cfg = WorkshopConfig()
    assert dgd.commands("wait", cfg, "g")[0] == ("kubectl -n dynamo-workshop wait dynamographdeployment/g "
                                                 "--for=condition=Ready --timeout=1800s")
    assert "manifests/02-single-node/x.yaml" in dgd.commands("deploy", cfg, "g", "02-single-node/x.yaml")[0]
    assert any("memory.peak" in c for c in dgd.commands("oom", cfg, "g"))
    assert dgd.commands("uninstall", cfg)[-1] == "helm uninstall dynamo-crds --namespace default"
    assert any("helm upgrade --install dynamo-platform" in c and "image.tag=0.9.0" in c
               for c in dgd.commands("platform", cfg))
    assert "port-forward svc/g-frontend 8000" in dgd.commands("port-forward", cfg, "g")[0]
    assert dgd.command_block("teardown", cfg, "g").startswith("On EKS, by hand:\n  kubectl")
    with pytest.raises(ValueError, match="unknown step 'nope'"):
        dgd.commands("nope", cfg)


def test_process_rows_read_the_real_command_line(tmp_path: Path) -> None:
    class Status:
        processes = {"decode": ProcStatus("decode", os.getpid(), 1234, tmp_path / "d.log", True, "ok", 10.0)}

    rows = dgd.process_rows(Status())
    assert rows["process"].tolist() == ["decode"] and "python" in rows["command"].iloc[0]


def test_registration_and_pod_rows() -> None:
    keys = ["v1/instances/dynamo/prefill/generate/694d9a", "v1/mdc/dynamo/backend/abc"]
    r = dgd.registration_rows(keys)
    assert r["kind"].tolist() == ["instances", "mdc"] and r["component"].iloc[0] == "prefill"
    pods = [{"metadata": {"name": "g-decode-0"}, "status": {"phase": "Running", "containerStatuses": [{"restartCount": 2}]},
             "spec": {"nodeName": "n1"}}]
    svcs = [{"metadata": {"name": "g-frontend"}, "spec": {"ports": [{"port": 8000}]}}]
    f = dgd.pod_rows(pods, svcs)
    assert f.iloc[0].to_dict() == {"kind": "Pod", "name": "g-decode-0", "status": "Running", "node": "n1", "restarts": 2}
    assert f.iloc[1]["status"] == "ports 8000"
