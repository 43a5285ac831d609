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


# ---------------------------------------------------------------- issue 16: every parameter typed, validated once
@pytest.mark.parametrize(("text", "value"), [("false", False), ("False", False), ("no", False), ("0", False),
                                             ("true", True), ("True", True), ("yes", True), ("1", True)])
def test_booleans_are_parsed_not_truth_tested(text: str, value: bool) -> None:
    assert WorkshopConfig.from_params({"TEARDOWN": text}).teardown is value
    assert WorkshopConfig.check_params({"TEARDOWN": text}) == {"TEARDOWN": value}


def test_numbers_and_lists_are_parsed() -> None:
    typed = WorkshopConfig.check_params({"NIXL_ITERS": "5", "MAX_TOKENS": 8, "CONCURRENCY": "1,2,4",
                                         "PRICE_PER_NODE_HOUR": "98.32", "NETNS": "false", "REQUESTS": None})
    assert typed == {"NIXL_ITERS": 5, "MAX_TOKENS": 8, "CONCURRENCY": [1, 2, 4], "PRICE_PER_NODE_HOUR": 98.32,
                     "NETNS": False, "REQUESTS": None}
    assert WorkshopConfig.from_params({"CONCURRENCY": [1, 5]}).concurrency == (1, 5)
    assert WorkshopConfig.from_params({"ISL": None}).isl == 512  # None: the default


@pytest.mark.parametrize(
    ("params", "field", "fix"),
    [
        ({"TEARDOWN": "maybe"}, "teardown", "True or False"),
        ({"NIXL_ITERS": "abc"}, "nixl_iters", "whole number"),
        ({"MAX_TOKENS": -1}, "max_tokens", "positive"),
        ({"MAX_TOKENS": True}, "max_tokens", "whole number"),
        ({"REQUESTS": 0}, "requests", "positive"),
        ({"CONCURRENCY": "1,x"}, "concurrency", "whole number"),
        ({"CONCURRENCY": [0]}, "concurrency", "positive"),
        ({"worker_memory": "128"}, "worker_memory", "128Gi"),
        ({"worker_memory": 128}, "worker_memory", "128Gi"),
        ({"shm_size": "16"}, "shm_size", "16Gi"),
        ({"price_per_node_hour": "nan"}, "price_per_node_hour", "55.04"),
        ({"price_per_node_hour": float("inf")}, "price_per_node_hour", "55.04"),
        ({"prefill_node": "ip 10"}, "prefill_node", "kubectl get nodes"),
        ({"decode_node": "a\nb"}, "decode_node", "one line"),
        ({"decode_node": "Node_1"}, "decode_node", "kubectl get nodes"),
        ({"model": {"a": 1}}, "model", "one string"),
        ({"model": ["a"]}, "model", "one string"),
        ({"engine": "sglang"}, "engine", "mocker"),
        ({"NIXL_SIZES": "4X"}, "nixl_sizes", "4K"),
        ({"VRAM_SIZES": "4K,,8K"}, "vram_sizes", "commas"),
        ({"UCX_URL": "localhost:8000"}, "ucx_url", "http://"),
        ({"FRONTEND_URL": "ftp://x"}, "frontend_url", "http://"),
        ({"PROMPT": "  "}, "prompt", "question"),
        ({"FI_LOG_LEVEL": "verbose"}, "fi_log_level", "use info"),
        ({"KV_BACKND": "UCX"}, "KV_BACKND", "did you mean KV_BACKEND?"),
        ({"teardwn": True}, "teardwn", "did you mean teardown?"),
    ],
)
def test_every_bad_parameter_names_its_field(params: dict, field: str, fix: str) -> None:
    with pytest.raises(ConfigError) as exc:
        WorkshopConfig.from_params(params)
    assert exc.value.where == field
    assert fix in str(exc.value)
    assert "\n" not in str(exc.value).replace("'a\\nb'", "")


def test_notebook_parameters_are_all_fields() -> None:
    """Every parameter of every notebook's parameters cell is a typed config field (so it is validated)."""
    import json
    from pathlib import Path

    names = set()
    defaults: list[dict] = []
    for nb in sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("[0-9][0-9]-*.ipynb")):
        for cell in json.loads(nb.read_text())["cells"]:
            if "parameters" in cell.get("metadata", {}).get("tags", []):
                scope: dict = {}
                exec("".join(cell["source"]), scope)  # noqa: S102 - the committed parameters cell: plain assignments
                defaults.append({k: v for k, v in scope.items() if k.isupper()})
                for line in "".join(cell["source"]).splitlines():
                    head, sep, _ = line.split("#")[0].partition("=")
                    if sep and head.strip().isidentifier():
                        names.add(head.strip())
    assert {"TEARDOWN", "NIXL_ITERS", "MAX_TOKENS", "KV_BACKEND"} <= names
    for value in defaults:  # each notebook's own defaults pass the strict check
        WorkshopConfig.from_params(value)
    assert names - {n.upper() for n in WorkshopConfig.field_names()} == set()


def test_engine_default_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORKSHOP_ENGINE", raising=False)
    assert WorkshopConfig().engine == "vllm"
    monkeypatch.setenv("WORKSHOP_ENGINE", "mocker")
    assert WorkshopConfig().engine == "mocker"
    assert WorkshopConfig.from_params({"ENGINE": "vllm"}).engine == "vllm"  # an explicit value wins
    monkeypatch.setenv("WORKSHOP_ENGINE", "tgi")
    with pytest.raises(ConfigError, match="engine: 'tgi'"):
        WorkshopConfig()


def test_from_yaml_binary_file_is_one_line_error(tmp_path) -> None:
    binary = tmp_path / "ls"
    binary.write_bytes(b"\x7fELF\x02\x01\x01\x00\xff\xfe\x00\x00")
    with pytest.raises(ConfigError, match="not a text file"):
        WorkshopConfig.from_yaml(binary)
    mapping = tmp_path / "m.yaml"
    mapping.write_text("model:\n  a: 1\n")
    with pytest.raises(ConfigError, match="m.yaml: model: a mapping"):
        WorkshopConfig.from_yaml(mapping)


def test_prompt_may_span_lines_names_may_not() -> None:
    assert WorkshopConfig.from_params({"PROMPT": "line one\nline two"}).prompt == "line one\nline two"
    with pytest.raises(ConfigError, match="model: .* spans several lines"):
        WorkshopConfig.from_params({"MODEL": "Qwen/Qwen3-0.6B\n--evil"})
