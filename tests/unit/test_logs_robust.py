"""Never raises, version-aware reading, and the failure side of every verdict rule.

Property tests mutate real logs of the corpus (truncated lines, invalid UTF-8, binary junk, interleaved pods, a 50 MB
line) and require a JSON answer and an exit code from the documented set. Bounded: a few dozen examples each.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workshop_lib.cli import main
from workshop_lib.clicmds.diagnose import DOCUMENTED_EXIT_CODES
from workshop_lib.logs import VERDICTS, diagnose, diagnose_files, parse_lines

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
REAL = [p.read_bytes() for p in sorted(CORPUS.glob("*/*.log"))]
LINES = [ln for blob in REAL for ln in blob.splitlines()[1:]]
FAST = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))


def _mutate(line: bytes, how: int, junk: bytes) -> bytes:
    if how == 0:
        return line[: max(1, len(line) // 2)]  # truncated
    if how == 1:
        return line + b"\xff\xfe\xc3" + junk  # invalid UTF-8
    if how == 2:
        return junk  # binary junk
    if how == 3:
        return b"[pod/worker-" + str(len(junk) % 3).encode() + b"/main] " + line  # interleaved pods
    return line


@FAST
@given(st.lists(st.tuples(st.sampled_from(LINES), st.integers(0, 4), st.binary(max_size=40)), min_size=1,
                max_size=60))
def test_mutated_real_logs_always_answer(tmp_path_factory, items) -> None:
    p = tmp_path_factory.mktemp("fz") / "m.log"
    p.write_bytes(b"\n".join(_mutate(line, how, junk) for line, how, junk in items))
    md = diagnose_files([p])
    assert md.combined.verdict in VERDICTS
    json.dumps(md.to_dict(), default=str)


@FAST
@given(st.binary(max_size=4000))
def test_cli_on_random_bytes(tmp_path_factory, blob) -> None:
    p = tmp_path_factory.mktemp("fz") / "b.log"
    p.write_bytes(blob)
    assert main(["diagnose", str(p), "--json"]) in DOCUMENTED_EXIT_CODES


def test_a_50_mb_line_is_cut_not_fatal(tmp_path, capsys) -> None:
    p = tmp_path / "long.log"
    with p.open("wb") as f:
        f.write(b"Backend UCX was instantiated\n")
        f.write(b"x" * (50 << 20))
        f.write(b" NIXL_ERR_BACKEND\nDiscovered 1 socket devices (TCP fallback)\n")
    assert main(["diagnose", str(p), "--json"]) in DOCUMENTED_EXIT_CODES
    out = json.loads(capsys.readouterr().out)
    assert out["verdict"] in VERDICTS and out["nixl_backend"] == "UCX"


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_fifo_and_device_return_at_once(tmp_path, capsys, kind) -> None:
    if kind == "fifo":
        path = tmp_path / "pipe"
        os.mkfifo(path)
    else:
        path = Path("/dev/zero")
        if not path.exists():
            pytest.skip("no /dev/zero here")
    assert main(["diagnose", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err and "not a regular file" in err


def test_directory_of_pods_gives_a_table_and_combined_verdict(tmp_path, capsys) -> None:
    d = tmp_path / "logs"
    d.mkdir()
    (d / "prefill.log").write_text("Backend LIBFABRIC was instantiated\nDiscovered 4 EFA devices\n"
                                   "HANDSHAKE received from peer with explicit fi_addr 1\n")
    (d / "decode.log").write_text("Backend LIBFABRIC was instantiated\nDiscovered 1 socket devices (TCP fallback)\n")
    (d / "frontend.log").write_text("2026-11-27T10:00:00.000001Z  INFO dynamo_llm::http: listening\n")
    assert main(["diagnose", str(d), "--json"]) == 4
    out = json.loads(capsys.readouterr().out)
    assert out["summary"]["on_efa"] == ["prefill.log"] and out["summary"]["fell_back"] == ["decode.log"]
    assert out["combined"]["verdict"] == "tcp-fallback"
    main(["diagnose", str(d)])
    text = capsys.readouterr().out
    assert "== pods" in text and "fell back to TCP: decode.log" in text


def test_pods_inside_one_prefixed_file(tmp_path) -> None:
    p = tmp_path / "all.log"
    p.write_text("[pod/prefill-0/main] Discovered 4 EFA devices\n"
                 "[pod/decode-0/main] Discovered 1 socket devices (TCP fallback)\n"
                 "[pod/prefill-0/main] Backend LIBFABRIC was instantiated\n")
    md = diagnose_files([p])
    assert {r["pod"]: r["verdict"] for r in md.pod_rows()} == {"prefill-0": "efa-rdma", "decode-0": "tcp-fallback"}
    assert md.combined.verdict == "tcp-fallback"


# --- versions ------------------------------------------------------------------------------------------------------
NIXL_1X = [
    "I0101 00:00:00.000001 7 nixl_plugin_manager.cpp:1] Discovered backend plugin: LIBFABRIC",
    "I0101 00:00:00.000002 7 nixl_agent.cpp:2] Selected backend: LIBFABRIC",
    "I0101 00:00:00.000003 7 libfabric_rail.cpp:3] Created rail 0 (device=eth0, provider=tcp)",
    "I0101 00:00:00.000004 7 libfabric_backend.cpp:4] Handshake stored: peer=target",
    "I0101 00:00:00.000005 7 nixl_agent.cpp:5] Connection state for agent target is now CONNECTED",
]


def test_nixl_1x_libfabric_on_tcp_reads_as_fallback_with_its_version_line() -> None:
    d = diagnose(parse_lines(NIXL_1X))
    assert (d.nixl_backend, d.libfabric_provider, d.verdict) == ("LIBFABRIC", "tcp", "tcp-fallback")
    assert d.handshakes == 1 and d.versions["nixl_log_format"] == "1.x"


def test_rail_count_from_info_lines_and_no_hmem_on_efa_is_an_error() -> None:
    base = ["Backend LIBFABRIC was instantiated", "Discovered 2 EFA devices", "Opened fabric: efa"]
    ok = [f"I0101 00:00:00.1 7 libfabric_rail.cpp:1] Using provider with FI_HMEM support for rail {i}" for i in (0, 1)]
    d = diagnose(parse_lines(base + ok + ok))
    assert (d.data_rails, d.verdict, d.errors) == (2, "efa-rdma", [])
    bad = "I0101 00:00:00.1 7 libfabric_rail.cpp:1] Using provider without FI_HMEM support for rail 1"
    d = diagnose(parse_lines([*base, ok[0], bad]))
    assert d.verdict == "error" and [e["code"] for e in d.errors] == ["NO_GPUDIRECT_RAIL"]


def test_no_hmem_on_sockets_is_a_note_not_an_error() -> None:
    lines = ["Backend LIBFABRIC was instantiated", "Discovered 1 socket devices (TCP fallback)",
             "I0101 00:00:00.1 7 libfabric_rail.cpp:1] Using provider without FI_HMEM support for rail 0"]
    d = diagnose(parse_lines(lines))
    assert d.verdict == "tcp-fallback" and d.errors == [] and any("FI_HMEM" in n for n in d.notes)


def test_vllm_nixl_metrics_and_version_truth(tmp_path, capsys) -> None:
    log = tmp_path / "decode.log"
    log.write_text("I1207 11:50:27.6 1 nixl_log.cpp:79] NIXL version: 0.9.0 (git: 949ceb9d)\n"
                   "vllm:nixl_num_failed_transfers_total{engine=\"0\"} 2.0\n"
                   "libfabric:1:1::core:core:fi_fabric_():1598<info> Using efa provider 2.1, path:/opt/lib/libfabric.so.1\n")
    env = tmp_path / "env"
    env.write_text("FI_EFA_ENABLE_SHM=0\nFI_PROVIDER=efa\nexport NIXL_BACKEND=LIBFABRIC\n")
    main(["diagnose", str(log), "--env", str(env), "--json"])
    out = json.loads(capsys.readouterr().out)
    truth = out["version_truth"]
    assert truth["loaded"] == {"nixl": "0.9.0", "libfabric": "2.1"}
    assert truth["loaded_from"]["libfabric"] == "/opt/lib/libfabric.so.1"
    assert [u["name"] for u in truth["unread_env"]] == ["FI_EFA_ENABLE_SHM", "NIXL_BACKEND"]
    assert any("2 failed NIXL transfers" in n for n in out["notes"])


# --- the failure side: each verdict rule has an input that must NOT produce it ----------------------------------------
@pytest.mark.parametrize(("lines", "not_verdict"), [
    (["I0101 00:00:00.1 7 x.cpp:1] efa debug line: fi_info efa", "Discovered 0 EFA devices"], "efa-rdma"),
    (["Backend LIBFABRIC was instantiated", "libfabric:1:1::efa:core:efa_info():1<debug> one efa debug line",
      "Discovered 0 EFA devices"], "efa-rdma"),  # one efa debug line, 0 devices, 0 handshakes
    (["Backend UCX was instantiated", "[1.1] [h:1:0]  ucp_worker.c:1 UCX  INFO  ucp_context_0 intra-node cfg#2 "
      "rma(cuda_ipc/cuda) am(tcp/lo)"], "tcp-fallback"),
    (["Backend LIBFABRIC was instantiated", "Discovered 4 EFA devices"], "tcp-fallback"),
    (["libfabric:1:1::core:core:fi_getinfo_():1<info> fi_getinfo: provider ofi_rxm returned -61 (No data available)",
      "I0101 00:00:00.1 7 r.cpp:1] not harmful: fi_cq_open with FI_WAIT_UNSPEC failed for rail 0"], "error"),
    (["I1207 11:50:27.7 1 nixl_plugin_manager.cpp:399] Failed to load plugin 'GPUNETIO' from any directory",
      "Backend UCX was instantiated"], "error"),
    (["Backend LIBFABRIC was instantiated"], "ucx"),
    (["Discovered 4 EFA devices", "HANDSHAKE received from peer with explicit fi_addr 1"], "unknown"),
])
def test_verdict_rules_have_inputs_that_must_not_fire(lines, not_verdict) -> None:
    assert diagnose(parse_lines(lines)).verdict != not_verdict


@pytest.mark.parametrize(("line", "code"), [
    ("Libfabric EFA provider has encountered an internal error:", "EFA_INTERNAL_ABORT"),
    ("E0101 00:00:00.1 7 libfabric_rail.cpp:1] fi_av_insert failed on rail 3", "FI_CALL_FAILED"),
    ("fi_enable(): util/pingpong.c:1495, ret=-12 (Cannot allocate memory)", "FI_CALL_FAILED"),
    ("E0101 00:00:00.1 7 a.cpp:1] postXferReq failed: NIXL_ERR_REMOTE_DISCONNECT", "NIXL_REMOTE_DISCONNECT"),
    ("ERROR 05-01 15:00:23 [nixl_connector.py:1263] NIXL transfer failure: handshake_failed | Context: {}",
     "KV_TRANSFER_FAILED"),
    ("ERROR 11-22 06:57:51 [nixl_connector.py:548] Handshake with c00824be failed", "NIXL_HANDSHAKE_FAILED"),
    ("  Warning  BackOff  1m  kubelet  Back-off restarting failed container main in pod decode-0", "K8S_CRASHLOOP"),
    ("Aborted (core dumped)", "PROCESS_ABORTED"),
    ("E0101 00:00:00.1 7 weird.cpp:1] something nobody has seen", "GENERIC_ERROR"),
])
def test_taxonomy_names_each_layer(line, code) -> None:
    d = diagnose(parse_lines([line]))
    assert d.verdict == "error" and [e["code"] for e in d.errors] == [code]
    assert d.errors[0]["layer"] and d.errors[0]["cause"]


@pytest.mark.parametrize("line", [
    "libfabric:1:1::core:core:fi_getinfo_():1385<info> fi_getinfo: provider ofi_rxm returned -61 (No data available)",
    "I0101 00:00:00.1 7 r.cpp:1] not harmful: fi_cq_open with FI_WAIT_UNSPEC failed for rail 0",
    "HANDSHAKE received from peer with explicit fi_addr 3",
])
def test_taxonomy_does_not_fire_on_normal_lines(line) -> None:
    assert diagnose(parse_lines([line])).errors == []


def test_json_path_imports_no_pandas(tmp_path) -> None:
    """Start-up: ``workshop diagnose FILE --json`` must not import pandas (it cost 0.5-0.9 s before)."""
    import subprocess
    import sys

    log = tmp_path / "one.log"
    log.write_text("Backend UCX was instantiated\n")
    code = ("import sys; from workshop_lib.cli import main; rc = main(['diagnose', sys.argv[1], '--json']); "
            "print('PANDAS' if 'pandas' in sys.modules else 'NOPANDAS')")
    out = subprocess.run([sys.executable, "-c", code, str(log)], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().endswith("NOPANDAS"), out.stdout[-300:] + out.stderr[-300:]
