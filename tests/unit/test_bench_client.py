"""The kit's one streaming client (workshop_lib.bench.client): chat() against a real in-process server with known
timing, and the SSE reader both chat() and the load generator use."""

from __future__ import annotations

import pytest

from workshop_lib.bench.client import ChatReader, chat, encode_body, endpoint_url, request_body
from workshop_lib.bench.testserver import running_server
from workshop_lib.errors import ConfigError, LabError

TTFT_S, ITL_S, TOKENS = 0.05, 0.01, 6


@pytest.fixture(scope="module")
def url():
    with running_server(ttft_s=TTFT_S, itl_s=ITL_S, tokens=TOKENS) as srv:
        yield f"http://127.0.0.1:{srv.port}"


def test_streamed_chat_times_the_first_token_and_counts_usage(url: str) -> None:
    r = chat(url, "m", "hi", stream=True, max_tokens=TOKENS, timeout=60)
    assert r.tokens == TOKENS and r.text.split() == [f"tok{i}" for i in range(TOKENS)]
    assert r.ttft_s is not None and TTFT_S * 0.9 <= r.ttft_s <= r.total_s  # the server waits TTFT_S before token 0
    assert r.itl_s is not None  # gaps may coalesce on a loaded machine: no lower bound
    assert r.raw_events and all(isinstance(e, dict) for e in r.raw_events)


@pytest.mark.parametrize("model", ["fault-cut", "fault-404"])
def test_a_broken_stream_is_a_one_line_lab_error(url: str, model: str) -> None:
    with pytest.raises(LabError) as err:
        chat(url, model, "hi", stream=True, max_tokens=TOKENS, timeout=60)
    msg = str(err.value)
    assert ("[DONE]" in msg or "chat completion failed" in msg) if model == "fault-cut" else "HTTP 404" in msg


def test_chat_reader_frames_split_events_and_stops_at_done() -> None:
    reader = ChatReader()
    stream = (b': ping\r\n\r\ndata: {"choices":[{"delta":{"content":"a"}}]}\r\n\r\n'
              b'data: {"choices":[{"delta":{"content":"b"},"finish_reason":"length"}]}\n\n'
              b'data: {"choices":[],"usage":{"completion_tokens":2}}\n\ndata: [DONE]\n\ndata: {"late": 1}\n\n')
    for i in range(0, len(stream), 5):
        reader.feed(stream[i:i + 5], i)
    assert reader.done and reader.parts == ["a", "b"] and reader.usage_tokens == 2 and reader.finish == "length"
    assert len(reader.events) == 3  # nothing after [DONE]
    crlf = ChatReader()  # a server that ends every line with CRLF
    crlf.feed(b'data: {"choices":[{"delta":{"content":"x"}}]}\r\n\r\ndata: [DONE]\r\n\r\n', 0)
    assert crlf.done and crlf.parts == ["x"]


def test_one_request_body_for_both_endpoints() -> None:
    assert request_body("m", "hi", max_tokens=3, stream=False) == {
        "model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
    body = request_body("m", "hi", max_tokens=3, endpoint="completions", extra={"ignore_eos": True})
    assert body["prompt"] == "hi" and body["stream_options"] == {"include_usage": True} and body["ignore_eos"]
    assert encode_body({"a": 1}) == b'{"a":1}'
    assert endpoint_url("http://h:1/", "completions") == "http://h:1/v1/completions"
    with pytest.raises(ConfigError, match="url"):
        endpoint_url("h:1", "chat")


def test_no_second_streaming_client_in_the_package(repo_root) -> None:
    """One OpenAI streaming client: only bench/client.py (and the test server, the other end) read SSE streams."""
    import re

    sse = re.compile(r"\[DONE\]|text/event-stream|aiter_raw|iter_lines\(")
    allowed = {f"workshop_lib/bench/{m}.py" for m in ("client", "rawhttp", "serve", "testserver")}  # serve: docstring
    found = {str(p.relative_to(repo_root)) for p in (repo_root / "workshop_lib").rglob("*.py") if sse.search(p.read_text())}
    assert found <= allowed, f"streaming-client code outside bench/client.py: {sorted(found - allowed)}"


@pytest.mark.parametrize(("model", "stream", "says"), [
    ("fault-nonjson", True, "not a JSON object"),                  # was skipped: the answer looked complete
    ("fault-error-event", True, "error event: {'message': 'injected engine error'}"),  # was "ended without [DONE]"
    ("m", False, "the answer is not a JSON object"),               # the server streams anyway: was a JSONDecodeError
])
def test_a_bad_answer_is_a_one_line_lab_error_naming_it(url: str, model: str, stream: bool, says: str) -> None:
    with pytest.raises(LabError) as err:
        chat(url, model, "hi", stream=stream, max_tokens=TOKENS, timeout=60)
    assert says in str(err.value) and "Fix:" in str(err.value)
