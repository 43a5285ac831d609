"""The serving client against a real in-process streaming server with known timing (workshop_lib.bench.testserver)."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading

import pytest

from workshop_lib.bench.client import RecordReader, request_body
from workshop_lib.bench.serve import SweepResult, run_sweep
from workshop_lib.bench.stats import RequestRecord, percentile, summarize
from workshop_lib.bench.testserver import spawned_server
from workshop_lib.errors import ConfigError
from workshop_lib.parsing import parse_concurrency

TTFT_S, ITL_S, TOKENS = 0.03, 0.004, 8


@pytest.fixture(scope="module")
def server():
    with spawned_server(ttft_s=TTFT_S, itl_s=ITL_S, tokens=TOKENS) as srv:
        yield srv


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("transport", ["raw", "httpx"])
def test_values_match_server_timing(server, transport):
    res = run_sweep(server.url, "m", [1], requests=6, isl=16, osl=TOKENS, warmup=1, progress=False,
                    transport=transport)
    lv = res.levels[0]
    assert (lv.requests, lv.errors) == (6, 0)
    # Bounds allow for a busy 2-core CI box; benchmarks/client_fidelity measures the accuracy itself.
    assert 29.0 <= lv.ttft_ms["p50"] <= 80.0
    assert 3.0 <= lv.itl_ms["mean"] <= 8.0  # the mean gap is immune to a late server sending tokens in bursts
    assert 3.0 <= lv.tpot_ms["p50"] <= 8.0
    recs = res.records
    assert all(r.output_tokens == TOKENS and r.tokens_from_usage for r in recs)
    assert all(len(r.chunk_ns) == TOKENS for r in recs)
    # e2e = ttft + 7 gaps of 4 ms
    assert 55.0 <= lv.e2e_ms["p50"] <= 120.0
    assert lv.output_tokens_per_s == pytest.approx(6 * TOKENS / lv.duration_s, rel=1e-3)


def test_no_delayed_ack_stall_against_a_nagle_server():
    """A server with Nagle on (like the Dynamo frontend) must not hold the first token for a delayed ACK (~40 ms)."""
    with spawned_server(ttft_s=0.005, itl_s=0.002, tokens=4, nagle=True) as srv:
        res = run_sweep(srv.url, "m", [1], requests=8, isl=8, osl=4, warmup=1, progress=False, transport="raw")
    assert res.levels[0].errors == 0
    assert res.levels[0].ttft_ms["p50"] < 25.0


def test_exactly_c_in_flight(server):
    server.reset()
    res = run_sweep(server.url, "m", [5], requests=15, isl=8, osl=TOKENS, progress=False)
    assert server.stats()["max_inflight"] == 5
    assert res.levels[0].errors == 0
    # 15 requests of ~58 ms at 5 in flight: three waves, not one (more in flight) nor fifteen (fewer)
    assert 0.15 <= res.levels[0].duration_s <= 0.6


def test_frames_and_json_contract(server, tmp_path):
    res = run_sweep(server.url, "m", [1, 2], requests=2, isl=8, osl=TOKENS, progress=False)
    df = res.to_frame()
    assert list(df["concurrency"]) == [1, 2]
    for col in ("ttft_p50_ms", "ttft_p90_ms", "ttft_p99_ms", "itl_p50_ms", "e2e_p99_ms", "output_tokens_per_s",
                "requests_per_s", "errors"):
        assert col in df.columns
    assert len(res.requests_frame()) == 4
    out = tmp_path / "r.json"
    res.to_json(out)
    data = json.loads(out.read_text())
    run = data["runs"][0]
    assert {"concurrency", "requests", "errors", "ttft_ms", "itl_ms", "e2e_ms", "output_tokens_per_s",
            "requests_per_s"} <= set(run)
    assert set(run["ttft_ms"]) == {"mean", "p50", "p90", "p99"}
    for key in ("url", "model", "isl", "osl", "versions", "host", "start_time"):
        assert key in data["meta"]
    back = SweepResult.from_json(out)
    assert back.to_frame()["ttft_p50_ms"].tolist() == df["ttft_p50_ms"].tolist()


def test_token_count_without_usage(server):
    res = run_sweep(server.url, "m", [1], requests=2, isl=8, osl=5, progress=False,
                    extra_body={"stream_options": {"include_usage": False}})
    assert all(r.output_tokens == 5 and not r.tokens_from_usage for r in res.records)


@pytest.mark.parametrize("transport", ["raw", "httpx"])
@pytest.mark.parametrize(("model", "error"), [
    ("fault-500", "http_500"), ("fault-404", "http_404"), ("fault-cut", "stream_cut"),
    ("fault-nonjson", "non_json"), ("fault-error-event", "error_event"),
])
def test_bad_server_counted_not_raised(server, model, error, transport):
    res = run_sweep(server.url, model, [2], requests=3, isl=8, osl=TOKENS, progress=False, transport=transport)
    lv = res.levels[0]
    assert (lv.requests, lv.errors) == (3, 3)
    assert lv.error_reasons == {error: 3}
    assert all(r.reason for r in res.records)
    assert lv.output_tokens_per_s == 0


@pytest.mark.parametrize("transport", ["raw", "httpx"])
def test_unreachable_url(transport):
    res = run_sweep(f"http://127.0.0.1:{_free_port()}", "m", [2], requests=4, isl=8, osl=4, progress=False,
                    transport=transport)
    assert res.levels[0].errors == 4
    assert res.levels[0].error_reasons == {"connect_error": 4}
    assert "cannot connect" in res.records[0].reason


def test_ctrl_c_keeps_finished_results(server):
    # Ctrl-C as a terminal delivers it: SIGINT raising KeyboardInterrupt in the main thread, whatever disposition the
    # test process inherited (a runner started in the background may have SIGINT ignored) or an earlier test left
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(1.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        res = run_sweep(server.url, "m", [2], requests=10_000, isl=8, osl=TOKENS, progress=False)
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    assert res.meta["interrupted"] is True
    assert len(res.levels) == 1 and 0 < res.levels[0].requests < 10_000
    assert res.levels[0].errors == 0 and all(r.ok for r in res.records)


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"concurrency": [0]}, "concurrency"), ({"requests": 0}, "requests"), ({"osl": 0}, "osl"),
    ({"endpoint": "embeddings"}, "endpoint"), ({"url": "127.0.0.1:8000"}, "url"), ({"transport": "h3"}, "transport"),
])
def test_bad_arguments_raise_config_error(kwargs, field):
    args = {"url": "http://127.0.0.1:1", "model": "m", "concurrency": [1], "requests": 1, "osl": 4} | kwargs
    with pytest.raises(ConfigError) as exc:
        run_sweep(**args, progress=False)
    assert exc.value.where == field


def test_sse_reader_handles_split_events_crlf_and_comments():
    rec = RequestRecord(1, 0, 0)
    sse = RecordReader(rec)
    stream = (b': keep-alive\r\n\r\ndata: {"choices":[{"delta":{"role":"assistant","content":""}}]}\r\n\r\n'
              b'data: {"choices":[{"delta":{"content":"a"}}]}\n\nevent: x\ndata: {"choices":[{"text": "b"}]}\n\n'
              b'data: {"choices":[],"usage":{"completion_tokens":2}}\n\ndata: [DONE]\n\n')
    for i in range(0, len(stream), 7):
        sse.feed(stream[i:i + 7], i)
    assert rec.error is None and sse.done
    assert len(rec.chunk_ns) == 2  # the empty role chunk is not a token
    assert rec.output_tokens == 2 and rec.tokens_from_usage


def test_helpers():
    assert parse_concurrency("1,5, 10") == [1, 5, 10]
    with pytest.raises(ConfigError):
        parse_concurrency("1,x")
    body = request_body("m", "hi", max_tokens=3)
    assert body["stream_options"] == {"include_usage": True} and body["messages"][0]["content"] == "hi"
    assert percentile([1.0, 2.0, 3.0, 4.0], 90) == pytest.approx(3.7)
    assert summarize([]) == {"mean": pytest.approx(float("nan"), nan_ok=True), "p50": pytest.approx(float("nan"), nan_ok=True),
                             "p90": pytest.approx(float("nan"), nan_ok=True), "p99": pytest.approx(float("nan"), nan_ok=True)}


def test_cli_serve_writes_json_and_csv(server, tmp_path, capsys):
    from workshop_lib.cli import main

    out, csv = tmp_path / "r.json", tmp_path / "r.csv"
    rc = main(["bench", "serve", "--url", server.url, "--model", "m", "--concurrency", "1,2", "--requests", "2",
               "--isl", "8", "--osl", "4", "--warmup", "0", "--json", str(out), "--csv", str(csv), "--quiet"])
    assert rc == 0
    assert [r["concurrency"] for r in json.loads(out.read_text())["runs"]] == [1, 2]
    assert csv.read_text().splitlines()[0].startswith("concurrency,requests,errors,ttft_mean_ms")
    assert "ttft_p50_ms" in capsys.readouterr().out
    rc = main(["bench", "serve", "--url", server.url, "--model", "fault-500", "--concurrency", "1", "--requests", "1",
               "--osl", "4", "--warmup", "0", "--quiet"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "1 x http_500" in err and "all 1 requests failed" in err and "Traceback" not in err


@pytest.mark.lab
@pytest.mark.slow
def test_against_the_real_dynamo_frontend(tmp_path):
    """The local lab's Dynamo 0.9.0 frontend with mocker prefill/decode: streams parse, usage counts the tokens."""
    import platform

    from workshop_lib.errors import LabError
    from workshop_lib.lab.serving import Lab, find_binaries

    if platform.system() != "Linux":
        pytest.skip("the local lab needs Linux")
    try:
        find_binaries()
    except LabError as exc:
        pytest.skip(f"local lab not set up: {exc}")
    lab = Lab(root=tmp_path / "lab")
    try:
        st = lab.up(timeout=180, progress=False)
        res = run_sweep(st.frontend_url, st.model, [1, 4], requests=8, isl=64, osl=16, warmup=2, progress=False,
                        tokenizer=st.model)
        cmpl = run_sweep(st.frontend_url, st.model, [2], requests=4, isl=32, osl=8, endpoint="completions",
                         progress=False)
        bad = run_sweep(st.frontend_url, "no-such-model", [1], requests=2, isl=8, osl=4, progress=False)
    finally:
        lab.down()
    assert [lv.errors for lv in res.levels] == [0, 0]
    assert all(r.tokens_from_usage and r.output_tokens == 16 for r in res.records)
    assert all(0 < lv.ttft_ms["p50"] < 2000 and lv.output_tokens_per_s > 0 for lv in res.levels)
    assert cmpl.levels[0].errors == 0 and all(r.output_tokens == 8 for r in cmpl.records)
    assert bad.levels[0].errors == 2 and next(iter(bad.levels[0].error_reasons)).startswith("http_4")
