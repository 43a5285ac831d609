"""plan_graph: the kit's own DGD -> local processes, with every difference listed (pure, no processes started)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from workshop_lib.errors import LabError
from workshop_lib.lab.graph import DEFAULT_PORTS, plan_graph, render_lab_dgd
from workshop_lib.lab.kvcheck import compare
from workshop_lib.lab.kvmetrics import parse_nixl

KW = dict(lab_dir=Path("/lab"), ports=DEFAULT_PORTS, python="/venv/bin/python", model_dir=Path("/lab/model/m"),
          run_dir=Path("/lab/runs/r"), lib_env={"LD_LIBRARY_PATH": "/stub"}, base_env={"PATH": "/bin"},
          cores=[0, 1])  # fmt: skip


@pytest.mark.parametrize("backend", ["UCX", "LIBFABRIC"])
def test_workers_run_the_dgds_own_command_with_the_cpu_substitutions(backend: str) -> None:
    dgd = render_lab_dgd(backend)
    plan = plan_graph(dgd, engine="vllm", **KW)
    assert [p.name for p in plan.processes] == ["etcd", "nats", "frontend", "prefill", "decode"]
    assert plan.kv_backend == backend
    svc = dgd["spec"]["services"]
    for role, name, core in (("prefill", "PrefillWorker", "0"), ("decode", "DecodeWorker", "1")):
        p = plan.process(role)
        args = svc[name]["extraPodSpec"]["mainContainer"]["args"]
        assert p.argv[:3] == ["/venv/bin/python", "-m", "dynamo.vllm"]
        assert f"--is-{role}-worker" in p.argv and p.arg("--connector") == "none"
        assert p.arg("--model") == "/lab/model/m"
        kvc = json.loads(p.arg("--kv-transfer-config"))
        dgd_kvc = json.loads(args[args.index("--kv-transfer-config") + 1])
        assert kvc == {**dgd_kvc, "kv_buffer_device": "cpu"}  # everything else exactly as rendered
        assert kvc["kv_connector_extra_config"]["backends"] == [backend]
        assert p.env["VLLM_CPU_OMP_THREADS_BIND"] == core and p.env["VLLM_CPU_KVCACHE_SPACE"] == "1"
        assert p.env["DYN_SYSTEM_PORT"] == str(DEFAULT_PORTS[f"{role}_system"])
        assert p.env["VLLM_NIXL_SIDE_CHANNEL_PORT"] == str(DEFAULT_PORTS[f"{role}_nixl"])
        assert p.env["VLLM_NIXL_SIDE_CHANNEL_HOST"] == "127.0.0.1" and p.env["LD_LIBRARY_PATH"] == "/stub"
        assert p.env["TMPDIR"] == "/lab/runs/r/tmp" and p.env["TORCHINDUCTOR_CACHE_DIR"].startswith("/lab/cache")
        assert "FI_PROVIDER" not in p.env  # EFA-only: libfabric must be free to pick tcp/sockets here
        # The first request must not compile vLLM's sampler helpers with g++ (measured 48-56 s; 2.6 s without).
        assert p.env["TORCH_COMPILE_DISABLE"] == "1"
        assert p.metrics_url == f"http://127.0.0.1:{DEFAULT_PORTS[f'{role}_system']}/metrics"
    # Two labs on one machine: the prefill worker's KV-event publisher port is the lab's, not Dynamo's fixed 20080.
    assert plan.process("prefill").env["DYN_VLLM_KV_EVENT_PORT"] == str(DEFAULT_PORTS["kv_events"])
    front = plan.process("frontend")
    fargs = svc["Frontend"]["extraPodSpec"]["mainContainer"]["args"]
    assert all(a in front.argv for a in fargs if a != "8000")  # e.g. --enforce-disagg carried over
    fields = {(s.service, s.field) for s in plan.substitutions}
    assert {("PrefillWorker", "image"), ("DecodeWorker", "--model"), ("DecodeWorker", "resources gpu")} <= fields
    assert "kv_buffer_device" in plan.table() and "dynamo.vllm" in plan.command_lines(base_env={})


def test_mocker_engine_is_labelled_and_moves_no_kv() -> None:
    plan = plan_graph(render_lab_dgd("UCX"), engine="mocker", **KW)
    assert plan.kv_backend is None
    assert plan.process("prefill").argv[2] == "dynamo.mocker" and "--is-prefill-worker" in plan.process("prefill").argv
    assert any("moves no KV bytes" in s.why for s in plan.substitutions)


def test_inherited_transport_knobs_are_dropped_and_said() -> None:
    plan = plan_graph(
        render_lab_dgd("UCX"), engine="vllm", **{**KW, "base_env": {"FI_PROVIDER": "efa", "UCX_TLS": "rc"}}
    )
    assert "UCX_TLS" not in plan.process("decode").env
    assert any(s.field == "environment" and "UCX_TLS" in s.dgd for s in plan.substitutions)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.update(kind="Deployment"), "graph"),
        (lambda d: d["spec"]["services"].pop("DecodeWorker"), "graph spec.services"),
        (lambda d: d["spec"]["services"]["PrefillWorker"]["extraPodSpec"]["mainContainer"].update(command=["sh"]),
         "spec.services.PrefillWorker.extraPodSpec.mainContainer.command"),
        (lambda d: d["spec"]["services"]["DecodeWorker"]["extraPodSpec"]["mainContainer"]["args"].remove(
            "--kv-transfer-config"), "spec.services.DecodeWorker args --kv-transfer-config"),
    ],
)  # fmt: skip
def test_a_graph_the_lab_cannot_map_names_the_field(mutate, field: str) -> None:
    dgd = copy.deepcopy(render_lab_dgd("UCX"))
    mutate(dgd)
    with pytest.raises(LabError) as exc:
        plan_graph(dgd, engine="vllm", **KW)
    assert str(exc.value).startswith(field)


def test_unknown_engine_is_a_clear_error() -> None:
    with pytest.raises(LabError, match="'trt' is not a lab engine"):
        plan_graph(render_lab_dgd("UCX"), engine="trt", **KW)


def test_nixl_metrics_parse_and_compare_verdicts() -> None:
    text = (
        "# HELP vllm:nixl_bytes_transferred x\n"
        'vllm:nixl_bytes_transferred_sum{engine="0",model_name="m"} 163840.0\n'
        'vllm:nixl_bytes_transferred_count{engine="0",model_name="m"} 4.0\n'
        'vllm:nixl_num_failed_transfers_total{engine="0"} 0.0\n'
    )
    got = parse_nixl(text)
    assert got == {"bytes_transferred": 163840.0, "transfers": 4.0, "failed_transfers": 0.0}
    ref = [{"tokens": [20, 20], "logprobs": [-6.04, -6.03]}]
    assert compare(ref, ref)[0] == "identical"
    # A wrong first token, or a logprob moved by more than the tolerance, is a mismatch at that position.
    verdict, f = compare([{"tokens": [7, 20], "logprobs": [-6.04, -6.03]}], ref)
    assert verdict == "mismatch" and f[0]["first_difference"]["position"] == 0
    verdict, f = compare([{"tokens": [20, 20], "logprobs": [-6.04, -6.06]}], ref)
    assert verdict == "mismatch" and f[0]["first_difference"]["position"] == 1
    assert compare([{"tokens": [20, 20], "logprobs": [-6.04, -6.0301]}], ref)[0] == "identical"
