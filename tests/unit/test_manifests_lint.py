"""Each lint rule, broken on purpose in a manifest built from a good render."""

from __future__ import annotations

import copy

import pytest

from workshop_lib.config import WorkshopConfig
from workshop_lib.manifests import render
from workshop_lib.manifests.documents import dump_docs, load_text
from workshop_lib.manifests.lint import RULES, image_problem, lint


def _docs(profile: str, sets: dict[str, str] | None = None) -> list[dict]:
    return copy.deepcopy([d for f in render(WorkshopConfig(), profile, sets) for d in f.docs])


def _lint(docs: list[dict]) -> list:
    return lint(load_text(dump_docs(docs), "broken.yaml"))


def _dgd(docs):
    return next(d for d in docs if d["kind"] == "DynamoGraphDeployment")


def _codes(findings) -> list[str]:
    return sorted(f.code for f in findings)


@pytest.mark.parametrize("profile", ["single-node-vllm", "single-node-trtllm", "cross-node", "cross-node-ucx", "bench"])
def test_good_renders_are_clean(profile):
    for fw in ("vllm", "trtllm"):
        assert _lint(_docs(profile, {"framework": fw} if profile == "cross-node" else None)) == []


def test_wl001_libfabric_memory_under_128gi():
    docs = _docs("cross-node")
    _dgd(docs)["spec"]["services"]["DecodeWorker"]["resources"]["limits"]["memory"] = "64Gi"
    found = _lint(docs)
    assert _codes(found) == ["WL001"]
    assert found[0].field_path == "spec.services.DecodeWorker.resources.limits.memory"
    assert "64Gi < 128Gi" in found[0].message and found[0].severity == "error"
    lines = dump_docs(docs).splitlines()
    assert lines[found[0].line - 1].strip() == "memory: 64Gi"
    # the same memory with UCX is not this rule's business
    ucx = _docs("cross-node-ucx")
    _dgd(ucx)["spec"]["services"]["DecodeWorker"]["resources"]["limits"]["memory"] = "64Gi"
    assert _lint(ucx) == []


def test_wl002_backend_env_the_framework_ignores():
    docs = _docs("cross-node-ucx")
    _dgd(docs)["spec"]["services"]["PrefillWorker"]["envs"].append({"name": "NIXL_BACKEND", "value": "LIBFABRIC"})
    found = _lint(docs)
    assert _codes(found) == ["WL002"] and "vllm does not read NIXL_BACKEND" in found[0].message
    assert "--kv-transfer-config" in found[0].fix
    trt = _docs("cross-node", {"framework": "trtllm"})
    _dgd(trt)["spec"]["services"]["DecodeWorker"]["envs"].append({"name": "VLLM_NIXL_KVCACHE_BACKEND", "value": "LIBFABRIC"})
    assert _codes(_lint(trt)) == ["WL002"]


def test_wl003_backend_mechanism():
    docs = _docs("single-node-vllm")
    args = _dgd(docs)["spec"]["services"]["PrefillWorker"]["extraPodSpec"]["mainContainer"]["args"]
    i = args.index("--connector")
    del args[i:i + 2]
    assert _codes(_lint(docs)) == ["WL003"]
    trt = _docs("single-node-trtllm")
    for e in _dgd(trt)["spec"]["services"]["DecodeWorker"]["envs"]:
        if e["name"] == "TRTLLM_NIXL_KVCACHE_BACKEND":
            e["value"] = "EFA"
    found = _lint(trt)
    assert _codes(found) == ["WL003"] and "uses UCX" in found[0].message


def test_wl004_prefill_and_decode_can_share_a_node():
    docs = _docs("cross-node")
    for svc in ("PrefillWorker", "DecodeWorker"):
        del _dgd(docs)["spec"]["services"][svc]["extraPodSpec"]["affinity"]
    found = _lint(docs)
    assert _codes(found) == ["WL004"] and "EAGAIN" in found[0].message
    pinned = _docs("cross-node", {"prefill_node": "a", "decode_node": "b"})
    assert _lint(pinned) == []
    _dgd(pinned)["spec"]["services"]["DecodeWorker"]["extraPodSpec"]["nodeSelector"]["kubernetes.io/hostname"] = "a"
    found = _lint(pinned)
    assert _codes(found) == ["WL004"] and "both pinned to 'a'" in found[0].message


def test_wl005_efa_without_privileged():
    docs = _docs("cross-node")
    del _dgd(docs)["spec"]["services"]["PrefillWorker"]["extraPodSpec"]["mainContainer"]["securityContext"]["privileged"]
    assert _codes(_lint(docs)) == ["WL005"]
    pods = _docs("bench")[1:]
    pods[0]["spec"]["containers"][0]["securityContext"] = {"capabilities": {"add": ["IPC_LOCK"]}}
    assert _codes(_lint(pods)) == ["WL005"]


def test_wl006_unpinned_images():
    docs = _docs("platform")
    ds = next(d for d in docs if d.get("kind") == "DaemonSet")
    ds["spec"]["template"]["spec"]["containers"][0]["image"] = "docker.io/library/ubuntu:latest"
    dgd = _dgd(_docs("single-node"))
    dgd["spec"]["services"]["Frontend"]["extraPodSpec"]["mainContainer"]["image"] = "nvcr.io/nvidia/ai-dynamo/dynamo-frontend"
    found = _lint([*docs, dgd])
    assert _codes(found) == ["WL006", "WL006"]
    assert image_problem("localhost:5000/x") == "no tag (means latest)"
    assert image_problem("nvcr.io/x/y@sha256:" + "0" * 64) is None


def test_wl007_names_over_45_characters():
    docs = _docs("single-node")
    _dgd(docs)["metadata"]["name"] = "a-long-graph-name-for-the-workshop-1"
    found = _lint(docs)
    assert _codes(found) == ["WL007", "WL007"]  # the two worker services; "-frontend" still fits
    assert "'a-long-graph-name-for-the-workshop-1-prefillworker' is 50 characters" in found[0].message


def test_wl008_and_wl009_system_ports_in_multi_dgd():
    docs = _docs("cross-node", {"layout": "multi"})
    found = _lint(docs)
    assert _codes(found) == ["WL009", "WL009"]  # 9091 and 9190 are not probed
    decode = next(d for d in docs if d["metadata"]["name"].endswith("-decode"))
    for e in decode["spec"]["services"]["DecodeWorker"]["envs"]:
        if e["name"] == "DYN_SYSTEM_PORT":
            e["value"] = "9091"
    found = _lint(docs)
    assert _codes(found) == ["WL008", "WL009", "WL009"]
    dup = next(f for f in found if f.code == "WL008")
    assert dup.doc == "DynamoGraphDeployment/vllm-xnode-libfabric-decode" and "vllm-xnode-libfabric-prefill" in dup.message


def test_every_rule_has_a_test():
    tested = {"WL001", "WL002", "WL003", "WL004", "WL005", "WL006", "WL007", "WL008", "WL009"}
    assert set(RULES) == tested
