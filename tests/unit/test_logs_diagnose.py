"""Diagnosis: an expert verdict for every public fixture, the exact JSON contract, and the local lab's own wording."""

from __future__ import annotations

import pytest

from workshop_lib.logs import CONTRACT_KEYS, diagnose, diagnose_files, parse_file, parse_lines

N = None
# file stem -> (nixl_backend, libfabric_provider, efa_devices, data_rails, handshakes, router, error codes, verdict)
EXPECTED = {
    "01-nixl-libfabric-activation-plugin-load": ("LIBFABRIC", N, N, N, 0, False, [], "unknown"),
    "02-nixl-libfabric-self-connection-rails-serialized": ("LIBFABRIC", N, N, 1, 0, False, [], "unknown"),
    "04-vllm-nixlconnector-ucx-backend-instantiated": ("UCX", N, N, N, 0, False, [], "ucx"),
    "05-ucx-warn-transports-nixl-err-backend-enginecore": (
        "UCX", N, N, N, 0, False, ["UCX_CUDA_TRANSPORTS_MISSING", "ENGINE_DEAD", "GENERIC_ERROR"], "error"),
    "06-sglang-nixl-metadata-remote-agent-not-found": (
        N, N, N, N, 0, False, ["NIXL_REMOTE_METADATA_MISSING", "GENERIC_ERROR"], "error"),
    "08-libfabric-fi_getinfo-efa-unsupported-caps-fallback": (
        N, "sockets", N, N, 0, False, ["EFA_CAPS_UNSUPPORTED", "EFA_PROVIDER_ABORT"], "error"),
    "10-trtllm-nixl-transfer-agent-assertion": (N, N, N, N, 0, False, ["TRTLLM_TRANSFER_AGENT_ASSERT"], "error"),
    "12-vllm-nixlconnector-efa-decode-waiting-remote-kvs": (N, N, N, N, 0, False, [], "unknown"),
    "14-nixl-example-libfabric-pass-vs-default-ucx": ("UCX", "efa", N, N, 0, False, [], "ucx"),
    "17-k8s-oomkilled-worker-64gi": (N, N, N, N, 0, False, ["OOM_KILLED"], "error"),
    "19-efa-fi_read-eagain-same-node": ("LIBFABRIC", N, N, N, 0, False, ["EFA_EAGAIN_SAME_NODE"], "error"),
    "20-doc-expected-efa-handshake-and-backend-lines": ("LIBFABRIC", "efa", N, N, 1, False, [], "efa-rdma"),
    "21-dynamo-disagg-completions-cross-node": (N, N, N, N, 0, False, [], "unknown"),
}


def test_every_fixture_has_an_expected_diagnosis(fixtures_dir) -> None:
    assert {p.stem for p in (fixtures_dir / "logs").glob("*.log")} == set(EXPECTED)


@pytest.mark.parametrize("stem", sorted(EXPECTED))
def test_fixture_diagnosis(fixtures_dir, stem: str) -> None:
    path = fixtures_dir / "logs" / f"{stem}.log"
    d = diagnose(path)
    got = (d.nixl_backend, d.libfabric_provider, d.efa_devices, d.data_rails, d.handshakes,
           d.prefill_router_active, [e["code"] for e in d.errors], d.verdict)
    assert got == EXPECTED[stem]
    assert tuple(d.to_dict()) == CONTRACT_KEYS
    assert d.to_dict() == diagnose(parse_file(path)).to_dict()  # fast scan and full parse agree
    if d.verdict != "unknown":
        assert d.evidence and str(path) in d.evidence


def test_contract_keys_exact_and_error_entries(fixtures_dir) -> None:
    d = diagnose(fixtures_dir / "logs/17-k8s-oomkilled-worker-64gi.log").to_dict()
    assert set(d) == {"nixl_backend", "libfabric_provider", "efa_devices", "data_rails", "handshakes",
                      "prefill_router_active", "errors", "verdict"}
    (err,) = d["errors"]
    assert set(err) == {"code", "line", "message", "fix", "layer", "cause"}
    assert err["line"] == 3 and "128Gi" in err["fix"] and "[2 lines]" in err["message"]


def test_nixlbench_log_backend(fixtures_dir) -> None:
    d = diagnose(fixtures_dir / "nixlbench/nixlbench-libfabric-efa-pod-a.log")
    assert (d.nixl_backend, d.verdict) == ("LIBFABRIC", "unknown")


def test_traceback_is_one_error(fixtures_dir) -> None:
    d = diagnose(fixtures_dir / "logs/05-ucx-warn-transports-nixl-err-backend-enginecore.log")
    generic = [e for e in d.errors if e["code"] == "GENERIC_ERROR"]
    assert len(generic) == 1 and "Traceback" in generic[0]["message"] and "[9 lines]" in generic[0]["message"]
    assert generic[0]["cause"] == "unrecognised error in engine (vLLM)"
    assert [e["code"] for e in d.errors if "EngineCore failed to start" in e["message"]] == ["ENGINE_DEAD"]


# --- the local lab's own wording (LOCAL-LAB.md) -----------------------------------------------------------------
UCX_LAB = [
    "2026-11-27 10:00:00 NIXL INFO    _api.py:361 Backend UCX was instantiated",
    "2026-11-27 10:00:00 NIXL INFO    _api.py:251 Initialized NIXL agent: target",
]
UCX_PROTO_TCP = "[1764237600.123456] [lab:4242:0]     ucp_worker.c:1888 UCX  INFO  ucp_context_0 intra-node cfg#2 " \
                "tag(tcp/lo cma/memory) rma(tcp/lo) am(tcp/lo cma/memory)"
LF_LAB = [
    "2026-11-27 10:00:00 NIXL INFO    _api.py:361 Backend LIBFABRIC was instantiated",
    "I1127 10:00:00.000100 4242 libfabric_topology.cpp:90] Discovered 1 socket devices (TCP fallback)",
    "I1127 10:00:00.000200 4242 libfabric_topology.cpp:95] Using simplified topology for sockets devices",
]
FRONTEND_LAB = [
    "2026-11-27T10:00:00.000001Z  INFO dynamo_llm::discovery::watcher: Prefill model detected, registering and "
    "activating prefill router",
    "2026-11-27T10:00:00.000002Z  INFO dynamo_llm::kv_router::prefill_router: Prefill router activated successfully "
    "router_mode=RoundRobin",
]


def test_lab_ucx_without_transport_is_ucx() -> None:
    d = diagnose(parse_lines(UCX_LAB))
    assert (d.nixl_backend, d.verdict, d.errors) == ("UCX", "ucx", [])
    assert "Backend UCX was instantiated" in d.evidence


def test_lab_ucx_over_tcp_is_tcp_fallback() -> None:
    d = diagnose(parse_lines([*UCX_LAB, UCX_PROTO_TCP]))
    assert d.verdict == "tcp-fallback" and "tcp/lo" in d.evidence


def test_ucx_cuda_ipc_is_not_a_fallback() -> None:
    line = "[1764237600.1] [h:1:0]     ucp_worker.c:1888 UCX  INFO  ucp_context_0 intra-node cfg#2 rma(cuda_ipc/cuda)"
    assert diagnose(parse_lines([*UCX_LAB, line])).verdict == "ucx"


def test_lab_libfabric_sockets_is_tcp_fallback() -> None:
    d = diagnose(parse_lines(LF_LAB))
    assert (d.nixl_backend, d.libfabric_provider, d.efa_devices, d.verdict) == ("LIBFABRIC", "sockets", 0,
                                                                                "tcp-fallback")
    assert "socket devices (TCP fallback)" in d.evidence


def test_lab_frontend_router_active() -> None:
    d = diagnose(parse_lines(FRONTEND_LAB))
    assert d.prefill_router_active is True and d.verdict == "unknown"
    assert not diagnose(parse_lines(FRONTEND_LAB[:1])).prefill_router_active


def test_efa_rdma_needs_confirmation() -> None:
    lines = ["I1127 10:00:00.1 1 libfabric_topology.cpp:80] Discovered 32 EFA devices",
             "I1127 10:00:00.2 1 libfabric_backend.cpp:601] Successfully created connection for agent: decode on 32 "
             "data rails and 1 control rails",
             *[f"HANDSHAKE received from peer with explicit fi_addr {i}" for i in range(8)]]
    d = diagnose(parse_lines(lines))
    assert (d.nixl_backend, d.libfabric_provider, d.efa_devices, d.data_rails, d.handshakes, d.verdict) == (
        "LIBFABRIC", "efa", 32, 32, 8, "efa-rdma")
    assert "32 EFA devices" in d.evidence


def test_multi_file_checks(tmp_path) -> None:
    side = ["Backend LIBFABRIC was instantiated", "Discovered 32 EFA devices",
            *[f"HANDSHAKE received from peer with explicit fi_addr {i}" for i in range(8)]]
    a, b = tmp_path / "prefill.log", tmp_path / "decode.log"
    a.write_text("\n".join(side) + "\n")
    b.write_text("\n".join(side[:3]) + "\n")
    md = diagnose_files([a, b])
    assert md.per_file[str(a)].handshakes == 8 and md.per_file[str(b)].handshakes == 1
    assert md.combined.handshakes == 9 and md.combined.verdict == "efa-rdma"
    checks = md.checks.set_index("check").status.to_dict()
    assert checks["same NIXL backend on every side"] == "PASS"
    assert checks["EFA handshakes on each side"] == "WARN"
    out = md.to_dict()
    assert set(out) == {"files", "combined", "checks", "pods", "summary"} and tuple(out["combined"]) == CONTRACT_KEYS


# Lines from the kit's own lab runs (NIXL 0.9.0 LIBFABRIC over two namespaces; UCX with UCX_PROTO_INFO=y).
LAB_LF_NOISE = [
    "I1127 03:13:45.819176   18605 nixl_plugin_manager.cpp:399] Failed to load plugin 'GPUNETIO' from any directory",
    "I1127 03:13:45.819684   18605 nixl_plugin_manager.cpp:246] Failed to load plugin from /x/plugins/libplugin_GDS.so: "
    "libcufile.so.0: cannot open shared object file: No such file or directory",
    "libfabric:18605:1795749225::shm:core:ofi_check_info():1110<info> Unsupported capabilities",
    "libfabric:18605:1795749225:ofi_rxm:tcp:core:ofi_check_info():1110<info> Unsupported capabilities",
    "I1127 03:13:45.918641   18605 libfabric_topology.cpp:124] Discovered 1 socket devices (TCP fallback)",
    "libfabric:18605:1795749225::core:core:fi_fabric_():1591<info> Opened fabric: 10.200.0.0/24",
    "I1127 03:13:45.920000   18605 nixl_agent.cpp:100] Backend LIBFABRIC was instantiated",
]


def test_lab_libfabric_noise_is_not_an_error_and_subnet_is_not_a_provider() -> None:
    d = diagnose(parse_lines(LAB_LF_NOISE))
    assert (d.nixl_backend, d.libfabric_provider, d.verdict, d.errors) == ("LIBFABRIC", "sockets", "tcp-fallback", [])
    assert any("GDS" in n and "GPUNETIO" in n for n in d.notes)


def test_a_plugin_that_fails_to_load_is_an_error_when_it_is_the_backend() -> None:
    lines = [
        "I1127 03:09:04.597465     658 nixl_plugin_manager.cpp:246] Failed to load plugin from /x/libplugin_LIBFABRIC.so:"
        " /lib/x86_64-linux-gnu/libfabric.so.1: version `FABRIC_1.7' not found",
        "I1127 03:09:05.000000     658 nixl_agent.cpp:100] Backend LIBFABRIC was instantiated",
    ]
    d = diagnose(parse_lines(lines))
    assert [e["code"] for e in d.errors] == ["NIXL_BACKEND_CREATE_FAILED"] and d.verdict == "error"
    assert diagnose(parse_lines(lines[:1] + ["Backend UCX was instantiated"])).errors == []


def test_efa_caps_rejection_needs_the_efa_provider() -> None:
    efa = "libfabric:72089:efa:core:efa_check_hints():176<info> Unsupported capabilities"
    assert [e["code"] for e in diagnose(parse_lines([efa])).errors] == ["EFA_CAPS_UNSUPPORTED"]
    assert diagnose(parse_lines([LAB_LF_NOISE[2]])).errors == []


def test_ucx_verdict_follows_the_data_path_not_the_control_path() -> None:
    head = "[1795.1] [vm:1:0]   | ucp_context_0 intra-node cfg#2 | {} |"
    row = "[1795.1] [vm:1:0]   |                         0..inf | zero-copy | {} |"
    am_tcp = [head.format("active message by ucp_am_send* from host memory"), row.format("tcp/eth0")]
    rma_cma = [head.format("remote memory read by ucp_get*(multi) from host memory"), row.format("cma/memory")]
    base = ["Backend UCX was instantiated"]
    assert diagnose(parse_lines(base + am_tcp + rma_cma)).verdict == "ucx"  # KV bytes by CMA, tcp only for control
    assert diagnose(parse_lines(base + rma_cma[:1] + [row.format("tcp/eth0")])).verdict == "tcp-fallback"
    assert diagnose(parse_lines(base + am_tcp)).verdict == "tcp-fallback"  # no data-path table: judge what is there
