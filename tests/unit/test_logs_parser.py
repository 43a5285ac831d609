"""Parser: formats, prefixes, columns, and robustness (hypothesis) on real fixtures and synthetic lab lines."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workshop_lib.errors import LogParseError
from workshop_lib.logs import COLUMNS, classify, parse_file, parse_lines
from workshop_lib.logs.diagnose import diagnose


def test_columns_are_stable() -> None:
    assert list(parse_lines([]).events.columns) == list(COLUMNS)
    assert list(parse_lines(["Backend UCX was instantiated"]).events.columns) == list(COLUMNS)


def test_abseil_nixl_line_fields(fixtures_dir) -> None:
    res = parse_file(fixtures_dir / "logs/02-nixl-libfabric-self-connection-rails-serialized.log")
    row = res.events[res.events.event == "nixl.connection_created"].iloc[0]
    assert (row.component, row.level, row.backend, row.rails, row.peer, row.line) == (
        "nixl", "INFO", "LIBFABRIC", 1, "target", 2)
    assert row.timestamp == "1207 19:34:40.291955"
    assert res.lines == 13


def test_plugin_lines_0_9_and_1_x_wording() -> None:
    a = classify("I1207 19:34:40.134165    1302 nixl_plugin_manager.cpp:316] Discovered and loaded plugin: LIBFABRIC")
    b = classify("I0101 00:00:00.000001 7 nixl_plugin_manager.cpp:300] Discovered and loaded backend plugin: UCX")
    c = classify("I0101 00:00:00.000001 7 nixl_plugin_manager.cpp:300] Discovered backend plugin: UCX")
    assert [x.event for x in (a, b, c)] == ["nixl.plugin_loaded"] * 3
    assert [x.backend for x in (a, b, c)] == ["LIBFABRIC", "UCX", "UCX"]


def test_kubectl_prefix_and_ansi() -> None:
    ev = classify("[pod/decode-0/main] \x1b[32mI1207 19:34:40.1 1 x.cpp:1] Discovered 32 EFA devices\x1b[0m")
    assert (ev.pod, ev.container, ev.event, ev.devices, ev.provider) == ("decode-0", "main", "nixl.efa_devices", 32,
                                                                         "efa")


def test_stern_prefix_vllm_debug(fixtures_dir) -> None:
    res = parse_file(fixtures_dir / "logs/12-vllm-nixlconnector-efa-decode-waiting-remote-kvs.log")
    assert set(res.events.pod) == {"ms-pd-llm-d-modelservice-decode-6c7676b65c-xfqp6"}
    assert set(res.events.container) == {"vllm"}
    assert res.events.event.value_counts().to_dict() == {"vllm.remote_blocks": 3, "vllm.waiting_remote_kvs": 2}
    assert res.unrecognised == 1  # the '# source:' header is skipped and counted


def test_libfabric_fi_log_lines(fixtures_dir) -> None:
    res = parse_file(fixtures_dir / "logs/08-libfabric-fi_getinfo-efa-unsupported-caps-fallback.log")
    lf = res.events[res.events.component == "libfabric"]
    assert len(lf) == 20  # 20 libfabric lines; the dmlc abort line and the '# ...' marker are not libfabric
    rej = res.events[res.events.event == "libfabric.provider_rejected"]
    assert rej.provider.tolist() == ["efa", "ofi_mrail"]
    assert res.events[res.events.event == "benign"].shape[0] == 2


def test_ucx_line_and_transport_line() -> None:
    warn = classify("[1746690477.974497] [llm206:611  :0]     ucp_context.c:1268 UCX  WARN  transports 'cuda_ipc',"
                    "'cuda_copy' are not available, please use one or more of: mm, posix, self, shm, sm, sysv, tcp")
    assert (warn.component, warn.code) == ("ucx", "UCX_CUDA_TRANSPORTS_MISSING")
    tl = classify("[1700000000.000001] [host:42:0]     ucp_worker.c:1888 UCX  INFO  ucp_context_0 intra-node cfg#2 "
                  "tag(tcp/lo cma/memory) rma(tcp/lo) am(tcp/lo cma/memory)")
    assert (tl.event, tl.transport) == ("ucx.transport", "cma,tcp")


def test_dynamo_tracing_lines() -> None:
    ev = classify("\x1b[2m2026-11-27T02:28:17.776046Z\x1b[0m \x1b[32m INFO\x1b[0m \x1b[2mdynamo_llm::discovery\x1b[0m"
                  "\x1b[2m:\x1b[0m Prefill router activated successfully router_mode=RoundRobin")
    assert (ev.component, ev.level, ev.event) == ("dynamo", "INFO", "dynamo.prefill_router_active")
    err = classify("2026-11-27T02:28:17.776046Z ERROR dynamo_runtime::distributed: Could not connect to etcd. Pass x")
    assert err.code == "DYNAMO_ETCD_UNREACHABLE"


def test_trtllm_lines(fixtures_dir) -> None:
    res = parse_file(fixtures_dir / "logs/20-doc-expected-efa-handshake-and-backend-lines.log")
    ev = res.events.set_index("event")
    assert ev.loc["trtllm.backend", "backend"] == "LIBFABRIC"
    assert ev.loc["efa.handshake", "fi_addr"] == 33
    assert ev.loc["efa.peer_host", "peer"] == "<node-2-instance-id>"
    assert res.unrecognised == 1  # the '# source:' header


def test_benign_noise_is_not_an_error() -> None:
    ev = classify("libfabric:1:1700000000::core:core:fi_getinfo_():889<warn> fi_getinfo: provider ofi_rxm returned -61 "
                  "(No data available)")
    assert ev.code is None
    assert classify("libfabric:9:1::efa:mr:efa_hmem_info():1<info> HMEM interface ZE not supported").code is None


def test_source_comment_lines_are_skipped(fixtures_dir) -> None:
    res = parse_file(fixtures_dir / "logs/05-ucx-warn-transports-nixl-err-backend-enginecore.log")
    assert res.events.line.min() == 2
    assert not res.events.text.str.startswith("# source").any()


@pytest.mark.parametrize("bad", ["missing.log", "."])
def test_parse_file_errors_name_the_file(tmp_path, bad) -> None:
    with pytest.raises(LogParseError, match=str(tmp_path)):
        parse_file(tmp_path / bad if bad != "." else tmp_path)


# --- robustness ------------------------------------------------------------------------------------------------
FIXED = [b"Backend UCX was instantiated", b"HANDSHAKE received from peer with explicit fi_addr 3",
         b"E0721 08:06:26.781179 4330 nixl_agent.cpp:866] oops"]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=200), max_size=30))
def test_random_bytes_never_raise(chunks: list[bytes]) -> None:
    res = parse_lines(chunks)
    assert res.lines == len(chunks)
    blank = sum(1 for c in chunks if not c.decode("utf-8", "replace").strip() or c.startswith((b"# source:", b"# ...")))
    assert len(res.events) + res.unrecognised + blank >= len(chunks) - blank


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from(FIXED + [b"\xff\xfe\xfd", b"plain text"]), max_size=40),
       st.sampled_from([b"\n", b"\r\n"]), st.booleans())
def test_crlf_ansi_interleaved_pods(lines: list[bytes], eol: bytes, colour: bool) -> None:
    pods = [b"[pod/prefill-0/main] ", b"[pod/decode-0/main] "]
    raw = [pods[i % 2] + (b"\x1b[31m" + x + b"\x1b[0m" if colour else x) + eol for i, x in enumerate(lines)]
    res = parse_lines(raw)
    want = sum(1 for x in lines if x.startswith(b"HANDSHAKE"))
    assert diagnose(res).handshakes == want
    assert res.unrecognised == sum(1 for x in lines if x in (b"\xff\xfe\xfd", b"plain text"))
    assert (res.events.text.str.endswith("\r")).sum() == 0


def test_one_megabyte_line_and_truncated_file(tmp_path) -> None:
    p = tmp_path / "big.log"
    p.write_bytes(b"x" * (1 << 20) + b" Backend LIBFABRIC was instantiated\nDiscovered 32 EFA devi")
    res = parse_file(p)
    assert res.lines == 2 and res.events.backend.tolist() == ["LIBFABRIC"] and res.unrecognised == 1
    d = diagnose(p)
    assert (d.nixl_backend, d.efa_devices) == ("LIBFABRIC", None)


def test_over_long_line_is_cut_the_same_way_on_both_paths(tmp_path) -> None:
    from workshop_lib.logs.scan import FileScan
    p = tmp_path / "long.log"
    p.write_bytes(b"Backend UCX was instantiated " + b"y" * 5000 + b"\nHANDSHAKE received from peer with explicit "
                  b"fi_addr 1\n")
    scan = FileScan(p, chunk=1024, max_line=2048)
    got = list(scan)
    assert [n for n, _ in got] == [1, 2] and scan.lines == 2 and len(got[0][1]) == 2048
