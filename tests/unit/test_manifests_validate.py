"""Validation: the DGD CRD schema (strict), core-kind structure, findings with file/line/path, and the CLI."""

from __future__ import annotations

import json

import pytest
import yaml

from workshop_lib.cli import main
from workshop_lib.config import WorkshopConfig
from workshop_lib.errors import ManifestError
from workshop_lib.manifests import render
from workshop_lib.manifests.documents import dump_docs, load_text
from workshop_lib.manifests.schema import load_schema, prepare, schema_errors
from workshop_lib.manifests.validate import errors, validate_docs, validate_paths


@pytest.fixture(scope="module")
def good_text() -> str:
    return render(WorkshopConfig(worker_image="registry.example.com/dynamo/vllm-runtime:0.9.0-efa"), "cross-node")[0].text


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_good_render_passes_the_crd(dgd_crd, good_text):
    assert validate_docs(load_text(good_text, "g.yaml"), dgd_crd) == []


def test_upstream_examples_pass_the_strict_schema(dgd_crd):
    """No false positives: the 0.9.0 examples (upstream's own YAML) validate against the tightened schema."""
    schema = load_schema(dgd_crd)
    examples = sorted((dgd_crd.parents[1] / "examples").rglob("*.yaml"))
    dgds = [d for p in examples for d in yaml.safe_load_all(p.read_text()) if d and d.get("kind") == "DynamoGraphDeployment"]
    assert len(dgds) >= 15
    assert [e for d in dgds for e in schema_errors(schema, d)] == []


def test_schema_violation_names_the_field_and_line(dgd_crd, good_text):
    text = good_text.replace("      replicas: 1\n", "      replicas: one\n", 1).replace("componentType: worker", "componentTyp: worker", 1)
    found = errors(validate_docs(load_text(text, "bad.yaml"), dgd_crd))
    by_path = {f.field_path: f for f in found}
    assert set(by_path) == {"spec.services.Frontend.replicas", "spec.services.PrefillWorker.componentTyp"}
    rep = by_path["spec.services.Frontend.replicas"]
    assert rep.code == "S001" and "'one' is not of type integer" in rep.message
    assert text.splitlines()[rep.line - 1].strip() == "replicas: one"
    assert "unknown field 'componentTyp'" in by_path["spec.services.PrefillWorker.componentTyp"].message
    assert rep.format().startswith(f"bad.yaml:{rep.line}: error S001 DynamoGraphDeployment/vllm-xnode-libfabric "
                                   "spec.services.Frontend.replicas: CRD schema (file):")


def test_schema_from_dict_and_bad_crd(dgd_crd):
    crd = yaml.load(dgd_crd.read_text(), Loader=yaml.CSafeLoader)
    assert load_schema(crd)["properties"]["spec"]["additionalProperties"] is False
    with pytest.raises(ManifestError, match="not a CustomResourceDefinition"):
        load_schema({"kind": "ConfigMap"})
    with pytest.raises(ManifestError, match="no such CRD file"):
        load_schema("/nonexistent/crd.yaml")


def test_prepare_keeps_free_maps_and_preserve_unknown():
    schema = prepare({"type": "object", "properties": {
        "custom": {"type": "object", "additionalProperties": {"type": "string"}},
        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": {"a": {"type": "string"}}},
        "opt": {"type": "string", "nullable": True}}})
    assert schema_errors(schema, {"custom": {"vpc.amazonaws.com/efa": "32"}, "free": {"b": 1}, "opt": None}) == []
    assert [e.message for e in schema_errors(schema, {"custom": {"x": 1}})] == ["1 is not of type string"]


def test_structure_of_core_kinds():
    docs = load_text(dump_docs([
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "Bad_Name"},
         "spec": {"containers": [{"name": "c", "resources": {"limits": {"memory": "lots"}}}]}},
        {"kind": "ConfigMap", "metadata": {}},
    ]), "core.yaml")
    found = validate_docs(docs, None)
    assert [(f.code, f.field_path) for f in found] == [
        ("K004", "metadata.name"),
        ("K002", "spec.containers[0]"),
        ("K003", "spec.containers[0].resources.limits.memory"),
        ("K001", "apiVersion"),
        ("K001", "metadata"),
    ]


def test_dgd_quantities_and_missing_crd_note(good_text):
    text = good_text.replace("memory: 128Gi", "memory: 128 GB", 1)
    found = validate_docs(load_text(text, "q.yaml"), None)
    assert [(f.code, f.severity) for f in found] == [("S000", "info"), ("K003", "error")]
    assert found[1].field_path == "spec.services.PrefillWorker.resources.requests.memory"


def test_validate_paths_reads_directories_and_skips_helm_values(tmp_path, dgd_crd):
    for f in render(WorkshopConfig(), "platform") + render(WorkshopConfig(), "single-node-trtllm"):
        (tmp_path / f.path).parent.mkdir(exist_ok=True)
        _write(tmp_path, f.path, f.text)
    assert validate_paths([tmp_path], dgd_crd) == []
    with pytest.raises(ManifestError, match="no such file"):
        validate_paths([tmp_path / "missing.yaml"], dgd_crd)


def test_cli_validate(tmp_path, dgd_crd, good_text, capsys):
    good = _write(tmp_path, "good.yaml", good_text)
    assert main(["validate", str(good), "--crd", str(dgd_crd)]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == "0 error(s), 0 warning(s)" and err.strip() == f"schema: CRD file {dgd_crd}"

    bad = _write(tmp_path, "bad.yaml", good_text.replace("memory: 128Gi", "memory: 64Gi"))
    assert main(["validate", str(bad), "--crd", str(dgd_crd)]) == 1
    out, err = capsys.readouterr()
    err = err.split("\n", 1)[1]  # after the schema line
    assert "error WL001" in out and err.startswith(f"error: {bad}: 2 error finding(s), first: WL001")
    assert len(err.strip().splitlines()) == 1

    assert main(["validate", str(bad), "--crd", str(dgd_crd), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert {d["code"] for d in data} == {"WL001"} and set(data[0]) == {
        "code", "severity", "file", "line", "doc", "field_path", "message", "fix"}

    broken = _write(tmp_path, "broken.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: [x\n")
    assert main(["validate", str(broken), "--crd", str(dgd_crd)]) == 1
    err = capsys.readouterr().err.strip().split("\n", 1)[1]
    assert err.startswith(f"error: {broken}:5: invalid YAML") and "\n" not in err

    schema_bad = _write(tmp_path, "schema.yaml", good_text.replace("      replicas: 1\n", "      replicas: one\n", 1))
    assert main(["validate", str(schema_bad), "--crd", str(dgd_crd)]) == 1
    assert "spec.services.Frontend.replicas: CRD schema (file): 'one' is not of type integer" in capsys.readouterr().out


def test_cli_validate_without_crd_uses_the_kit_schema(tmp_path, good_text, capsys, monkeypatch):
    # a plain clone: no --crd, no kubeconfig, no helm -> the kit's own schema, said on stderr
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    good = _write(tmp_path, "good.yaml", good_text)
    assert main(["validate", str(good)]) == 0
    err = capsys.readouterr().err
    assert err.startswith("schema: kit schema workshop_lib/manifests/data/dgd-schema-0.9.0.yaml") and "helm not on PATH" in err
    typo = _write(tmp_path, "typo.yaml", good_text.replace("extraPodSpec:", "extraPodSpecs:", 1))
    assert main(["validate", str(typo)]) == 1
    assert "CRD schema (kit): unknown field 'extraPodSpecs'" in capsys.readouterr().out


def test_done_when_committed_pass_stock_image_and_no_op_knob_fail(tmp_path, repo_root, capsys, monkeypatch):
    """Issue 19: `workshop validate manifests/` exits 0; a stock-image LIBFABRIC graph and a no-op knob exit 1 with a fix."""
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    monkeypatch.setenv("PATH", str(tmp_path))  # no helm: the kit's schema, as in a plain clone
    assert main(["validate", str(repo_root / "manifests")]) == 0
    capsys.readouterr()
    lf = (repo_root / "manifests" / "03-cross-node" / "vllm-xnode-libfabric.yaml").read_text()
    stock = _write(tmp_path, "stock.yaml", lf.replace("REPLACE_WITH_YOUR_EFA_IMAGE/vllm-runtime:0.9.0-efa",
                                                      "nvcr.io/nvidia/ai-dynamo/vllm-runtime:0.9.0"))
    assert main(["validate", str(stock)]) == 1
    out = capsys.readouterr().out
    assert "error WL010" in out and "Fix: build the 0.9.0 EFA image" in out and "--make-efa" in out
    ucx = (repo_root / "manifests" / "03-cross-node" / "vllm-xnode-ucx.yaml").read_text()
    for name in ("FI_EFA_ENABLE_SHM", "FI_EFA_DEV_LIST", "NIXL_SKIP_TOPOLOGY_CHECK", "NIXL_LIBFABRIC_MAX_RAILS",
                 "NIXL_BACKEND", "VLLM_NIXL_KVCACHE_BACKEND"):
        knob = _write(tmp_path, "knob.yaml", ucx.replace("        - name: FI_PROVIDER\n",
                                                         f"        - name: {name}\n          value: '0'\n"
                                                         "        - name: FI_PROVIDER\n", 1))
        assert main(["validate", str(knob)]) == 1, name
        out = capsys.readouterr().out
        assert "error WL002" in out and f"Fix: remove {name};" in out, out
