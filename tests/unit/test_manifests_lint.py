"""Each lint rule, broken on purpose in a manifest built from a good render."""

from __future__ import annotations

import copy

import pytest

from workshop_lib.config import WorkshopConfig
from workshop_lib.manifests import render
from workshop_lib.manifests.documents import dump_docs, load_text
from workshop_lib.manifests.lint import RULES, image_problem, lint

EFA_IMAGE = "registry.example.com/dynamo/vllm-runtime:0.9.0-efa"  # stands for an image built with --make-efa


def _docs(profile: str, sets: dict[str, str] | None = None, image: str | None = EFA_IMAGE) -> list[dict]:
    return copy.deepcopy([d for f in render(WorkshopConfig(worker_image=image), profile, sets) for d in f.docs])


def _lint(docs: list[dict]) -> list:
    return lint(load_text(dump_docs(docs), "broken.yaml"))


def _dgd(docs):
    return next(d for d in docs if d["kind"] == "DynamoGraphDeployment")


def _codes(findings) -> list[str]:
    return sorted(f.code for f in findings)


@pytest.mark.parametrize("profile", ["single-node-vllm", "single-node-trtllm", "cross-node", "cross-node-ucx", "bench"])
def test_good_renders_are_clean(profile):
    for fw in ("vllm", "trtllm"):
        found = _lint(_docs(profile, {"framework": fw} if profile == "cross-node" else None))
        # TRT-LLM over LIBFABRIC is rendered on request but always carries the UCX-only warning (WL012)
        trt_lf = fw == "trtllm" and profile == "cross-node"
        assert _codes(found) == (["WL012", "WL012"] if trt_lf else []), [f.format() for f in found]


def test_single_node_libfabric_carries_efa_and_is_refused():
    # Asked for explicitly, one-node LIBFABRIC gets the EFA overlay; validation still refuses it (WL004, same-node EFA)
    docs = _docs("single-node", {"kv_backend": "LIBFABRIC"})
    assert _dgd(docs)["spec"]["services"]["DecodeWorker"]["resources"]["limits"]["custom"]["vpc.amazonaws.com/efa"] == "32"
    found = _lint(docs)
    assert _codes(found) == ["WL004"] and "EAGAIN" in found[0].message and found[0].severity == "error"


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
    assert _codes(found) == ["WL002"] and "NIXL_BACKEND is not read by the pinned stack (NIXL 0.9.0" in found[0].message
    assert "--kv-transfer-config" in found[0].fix
    trt = _docs("cross-node-ucx", {"framework": "trtllm"})
    _dgd(trt)["spec"]["services"]["DecodeWorker"]["envs"].append({"name": "VLLM_NIXL_KVCACHE_BACKEND", "value": "LIBFABRIC"})
    assert _codes(_lint(trt)) == ["WL002"]
    vllm = _docs("cross-node-ucx")
    _dgd(vllm)["spec"]["services"]["DecodeWorker"]["envs"].append({"name": "TRTLLM_NIXL_KVCACHE_BACKEND", "value": "UCX"})
    assert _codes(_lint(vllm)) == ["WL002"]


@pytest.mark.parametrize(("name", "source"), [
    ("FI_EFA_ENABLE_SHM", "libfabric 2.1.0-2.3.1 prov/efa/src/efa_env.c"),
    ("FI_EFA_DEV_LIST", "libfabric 2.1.0-2.3.1 prov/efa/src/efa_env.c"),
    ("NIXL_SKIP_TOPOLOGY_CHECK", "NIXL 0.9.0"),
    ("NIXL_LIBFABRIC_MAX_RAILS", "NIXL 0.9.0"),
    ("NIXL_BACKEND", "NIXL 0.9.0"),
    ("VLLM_NIXL_KVCACHE_BACKEND", "vLLM 0.14.1"),
])
def test_wl002_every_seed_no_op_knob_in_a_dgd_and_a_pod(name, source):
    docs = _docs("cross-node")
    _dgd(docs)["spec"]["services"]["DecodeWorker"]["envs"].append({"name": name, "value": "0"})
    found = _lint(docs)
    assert _codes(found) == ["WL002"] and source in found[0].message and "no-op" in found[0].message
    assert found[0].field_path.startswith("spec.services.DecodeWorker.envs[") and found[0].fix.startswith(f"remove {name}")
    pods = _docs("bench")[1:]
    pods[1]["spec"]["containers"][0]["env"].append({"name": name, "value": "0"})
    found = _lint(pods)
    assert _codes(found) == ["WL002"] and found[0].field_path.startswith("spec.containers[0].env[")


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
    assert "WARNING 'Unsupported NIXL backend: EFA, fallback to UCX'" in found[0].message
    for e in _dgd(trt)["spec"]["services"]["DecodeWorker"]["envs"]:
        if e["name"] == "TRTLLM_NIXL_KVCACHE_BACKEND":
            e["value"] = "libfabric"  # lower case: TRT-LLM falls back to UCX too
    assert _codes(_lint(trt)) == ["WL003"]


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


def test_wl010_libfabric_on_a_stock_image_and_wl011_the_placeholder():
    stock = _docs("cross-node")
    for svc in ("PrefillWorker", "DecodeWorker"):
        _dgd(stock)["spec"]["services"][svc]["extraPodSpec"]["mainContainer"]["image"] = "nvcr.io/nvidia/ai-dynamo/vllm-runtime:0.9.0"
    found = _lint(stock)
    assert _codes(found) == ["WL010", "WL010"] and all(f.severity == "error" for f in found)
    fix = found[0].fix
    assert "container/build.sh --framework vllm|trtllm --target runtime --make-efa" in fix
    assert "fi_info -p efa" in fix and "ldd $NIXL_PLUGIN_DIR/libplugin_LIBFABRIC.so" in fix
    # the same stock image with UCX is fine; a nixlbench pod with --backend LIBFABRIC is caught too
    assert _lint(_docs("cross-node-ucx", image=None)) == []
    pods = _docs("bench", image=None)[1:]
    assert _codes(_lint(pods)) == ["WL011", "WL011"]  # rendered: the placeholder
    for p in pods:
        p["spec"]["containers"][0]["image"] = "nvcr.io/nvidia/ai-dynamo/vllm-runtime:0.9.0"
    assert _codes(_lint(pods)) == ["WL010", "WL010"]
    placeholder = _docs("cross-node", image=None)
    found = _lint(placeholder)
    assert _codes(found) == ["WL011", "WL011"] and found[0].severity == "warning"
    assert "REPLACE_WITH_YOUR_EFA_IMAGE/vllm-runtime:0.9.0-efa" in found[0].message


def test_wl012_trtllm_libfabric_is_ucx_only_in_0_9_0():
    found = _lint(_docs("cross-node", {"framework": "trtllm"}))
    assert _codes(found) == ["WL012", "WL012"] and found[0].severity == "warning"
    assert "only UCX" in found[0].message and "patched NIXL 0.8.0" in found[0].message
    assert _lint(_docs("cross-node-ucx", {"framework": "trtllm"})) == []


def test_wl013_libfabric_without_efa():
    docs = _docs("single-node", {"kv_backend": "LIBFABRIC"})
    for svc in ("PrefillWorker", "DecodeWorker"):
        for part in ("requests", "limits"):
            del _dgd(docs)["spec"]["services"][svc]["resources"][part]["custom"]
    found = _lint(docs)
    assert _codes(found) == ["WL013", "WL013"] and "'sockets' device" in found[0].message


def test_wl014_worker_mounting_host_infiniband():
    docs = _docs("cross-node")
    pod = _dgd(docs)["spec"]["services"]["DecodeWorker"]["extraPodSpec"]
    pod["volumes"] = [{"name": "ib", "hostPath": {"path": "/dev/infiniband"}}]
    found = _lint(docs)
    assert _codes(found) == ["WL014"] and found[0].field_path == "spec.services.DecodeWorker.extraPodSpec.volumes[0]"
    # the EFA device plugin's own DaemonSet mounts it on purpose
    assert _lint(_docs("platform")) == []


def test_wl015_silent_fallbacks():
    docs = _docs("cross-node")
    svcs = _dgd(docs)["spec"]["services"]
    svcs["Frontend"]["extraPodSpec"]["mainContainer"]["args"].remove("--enforce-disagg")
    args = svcs["DecodeWorker"]["extraPodSpec"]["mainContainer"]["args"]
    i = args.index("--kv-transfer-config") + 1
    args[i] = args[i].replace(',"kv_load_failure_policy":"fail"', "")
    found = _lint(docs)
    assert _codes(found) == ["WL015", "WL015"]
    assert any("--enforce-disagg" in f.fix for f in found) and any("'recompute'" in f.message for f in found)


def test_every_rule_has_a_test():
    tested = {"WL001", "WL002", "WL003", "WL004", "WL005", "WL006", "WL007", "WL008", "WL009", "WL010", "WL012", "WL013",
              "WL014", "WL015"}
    assert set(RULES) == tested
