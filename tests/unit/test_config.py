from __future__ import annotations

import pytest

from workshop_lib.config import INSTANCE_TYPES, WorkshopConfig, parse_quantity
from workshop_lib.errors import ConfigError


def test_defaults_are_the_p5_libfabric_workshop() -> None:
    cfg = WorkshopConfig()
    assert cfg.target == "local"
    assert cfg.kv_backend == "LIBFABRIC"
    assert cfg.instance.gpus == 8 and cfg.instance.efa == 32
    assert cfg.efa_devices == 32
    assert cfg.worker_memory_bytes == 128 * 2**30
    assert cfg.worker_image == "nvcr.io/nvidia/ai-dynamo/vllm-runtime:0.9.0"


def test_from_params_is_case_insensitive_and_normalises() -> None:
    cfg = WorkshopConfig.from_params({"TARGET": "EKS", "KV_BACKEND": "ucx", "FRAMEWORK": "TRT-LLM"})
    assert (cfg.target, cfg.kv_backend, cfg.framework) == ("eks", "UCX", "trtllm")
    assert cfg.worker_image.endswith("tensorrtllm-runtime:0.9.0")


@pytest.mark.parametrize(
    ("params", "field", "fix"),
    [
        ({"instance_type": "p5.24xlarge"}, "instance_type", "p5.48xlarge"),
        ({"worker_memory": "lots"}, "worker_memory", "128Gi"),
        ({"kv_backend": "TCP"}, "kv_backend", "UCX or LIBFABRIC"),
        ({"framework": "sglang"}, "framework", "vllm or trtllm"),
        ({"target": "gke"}, "target", "local, eks"),
        ({"namespace": "Bad_Name"}, "namespace", "lower-case"),
        ({"efa_per_worker": 64}, "efa_per_worker", "1-32"),
        ({"gpus_per_worker": 9}, "gpus_per_worker", "1-8"),
        ({"frontend_port": "http"}, "frontend_port", "whole number"),
        ({"prefill_system_port": 9090}, "prefill_system_port", "9091"),
        ({"nope": 1}, "nope", "use one of"),
    ],
)
def test_bad_values_name_the_field_and_the_fix(params: dict, field: str, fix: str) -> None:
    with pytest.raises(ConfigError) as exc:
        WorkshopConfig.from_params(params)
    assert exc.value.where == field
    assert fix in str(exc.value)


def test_cross_node_profile_rejects_one_node_for_both_workers() -> None:
    cfg = WorkshopConfig(prefill_node="ip-10-0-1-1", decode_node="ip-10-0-1-1")
    cfg.check_profile("single-node")  # fine on one node
    with pytest.raises(ConfigError, match="two different nodes") as exc:
        cfg.check_profile("cross-node")
    assert exc.value.where == "decode_node"
    WorkshopConfig(prefill_node="a", decode_node="b").check_profile("cross-node")


def test_unknown_profile() -> None:
    with pytest.raises(ConfigError, match="unknown profile"):
        WorkshopConfig().check_profile("multi-cloud")


def test_from_yaml_good_bad_and_missing(tmp_path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("kv_backend: UCX\ninstance_type: p4d.24xlarge\nprefill_node: null\n")
    cfg = WorkshopConfig.from_yaml(good)
    assert cfg.kv_backend == "UCX" and cfg.efa_devices == 4

    bad = tmp_path / "bad.yaml"
    bad.write_text("kv_backend: UCX\nmodel: [unclosed\n")
    with pytest.raises(ConfigError) as exc:
        WorkshopConfig.from_yaml(bad)
    assert exc.value.where.startswith(f"{bad}:")

    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("worker_memory: 12 apples\n")
    with pytest.raises(ConfigError, match="wrong.yaml: worker_memory"):
        WorkshopConfig.from_yaml(wrong)

    with pytest.raises(ConfigError, match="cannot read"):
        WorkshopConfig.from_yaml(tmp_path / "missing.yaml")

    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        WorkshopConfig.from_yaml(listy)


def test_from_env() -> None:
    cfg = WorkshopConfig.from_env({"WORKSHOP_KV_BACKEND": "UCX", "WORKSHOP_EFA_PER_WORKER": "none", "HOME": "/x"})
    assert cfg.kv_backend == "UCX" and cfg.efa_per_worker is None
    cfg = WorkshopConfig.from_env({"WORKSHOP_EFA_PER_WORKER": "4", "WORKSHOP_PRICE_PER_NODE_HOUR": "98.32"})
    assert cfg.efa_devices == 4 and cfg.price_per_node_hour == pytest.approx(98.32)


@pytest.mark.parametrize(("text", "value"), [("128Gi", 128 * 2**30), ("500m", 0.5), ("16", 16.0), ("1.5G", 1.5e9)])
def test_parse_quantity(text: str, value: float) -> None:
    assert parse_quantity(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["", "Gi", "12 Gi", "1.2.3Gi", "12GB"])
def test_parse_quantity_rejects(text: str) -> None:
    with pytest.raises(ConfigError, match="not a Kubernetes quantity"):
        parse_quantity(text, "shm_size")


def test_instance_table_matches_facts() -> None:
    assert {k: (v.gpus, v.efa) for k, v in INSTANCE_TYPES.items()} == {
        "p5.48xlarge": (8, 32),
        "p5en.48xlarge": (8, 16),
        "p4d.24xlarge": (8, 4),
        "p6-b200.48xlarge": (8, 8),
    }


def test_replace_revalidates() -> None:
    with pytest.raises(ConfigError):
        WorkshopConfig().replace(kv_backend="NVLINK")
