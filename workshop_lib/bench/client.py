"""The kit's one OpenAI-compatible streaming client (``/v1/chat/completions``, ``/v1/completions``).

Two ways in, one request format and one SSE reader:

- :func:`chat`: one request, blocking, for the lab, the notebooks and the targets' warm-up; returns a
  :class:`ChatResult` (text, tokens, TTFT, ITL) and raises :class:`~workshop_lib.errors.LabError` on any failure.
- :func:`make_sessions`: single-connection async sessions for the load generator
  (:func:`workshop_lib.bench.serve.run_sweep`); they never raise for server or network failures, they fill a
  :class:`~workshop_lib.bench.stats.RequestRecord` with the error and its reason instead.

Both build the body with :func:`request_body` and read the stream with an :class:`SSEReader`: raw bytes in, one
``data:`` payload at a time out, timed when the bytes arrive (``time.perf_counter_ns``). The load generator's
:class:`RecordReader` stays cheap in CPU, so that at high concurrency it measures the server and not itself: it
recognises text events with one regular-expression search and parses JSON only for the first event, ``usage`` and
``error`` events.

Example:
    >>> r = chat("http://127.0.0.1:8000", "/path/model", "What is NIXL?", stream=True)   # doctest: +SKIP
    >>> r.tokens, r.ttft_s < r.total_s                                                   # doctest: +SKIP
    (32, True)
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from workshop_lib.bench.rawhttp import RawConnection, StreamCut
from workshop_lib.bench.stats import RequestRecord
from workshop_lib.choices import ENDPOINTS, TRANSPORTS
from workshop_lib.errors import ConfigError, LabError

HEADERS = {"content-type": "application/json", "accept": "text/event-stream"}
_TEXT = re.compile(rb'"(?:content|text|reasoning_content)"\s*:\s*"(?!")')
_USAGE_NULL = re.compile(rb'"usage"\s*:\s*null')


# ---------------------------------------------------------------------------------------------------- requests
def request_body(model: str, prompt: str, *, max_tokens: int, stream: bool = True, endpoint: str = "chat",
                 extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON body of one request: chat ``messages`` or a completions ``prompt``; streaming asks for ``usage``.

    Example:
        >>> request_body("m", "hi", max_tokens=8)["stream_options"]
        {'include_usage': True}
        >>> request_body("m", "hi", max_tokens=8, stream=False, endpoint="completions")
        {'model': 'm', 'prompt': 'hi', 'max_tokens': 8}
    """
    body: dict[str, Any] = {"model": model}
    if endpoint == "chat":
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    body["max_tokens"] = max_tokens
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    body.update(extra or {})
    return body


def encode_body(body: dict[str, Any]) -> bytes:
    """Compact JSON bytes of a body (what goes on the wire)."""
    return json.dumps(body, separators=(",", ":")).encode()


def endpoint_url(url: str, endpoint: str) -> str:
    """``url`` plus the route of ``endpoint`` (``chat`` or ``completions``) unless ``url`` already names one."""
    if endpoint not in ENDPOINTS:
        raise ConfigError("endpoint", f"{endpoint!r} is not an endpoint", "use chat or completions")
    if not url.startswith(("http://", "https://")):
        raise ConfigError("url", f"{url!r} is not an http(s) URL", "use e.g. http://127.0.0.1:8000")
    u = url.rstrip("/")
    return u if u.endswith(tuple(ENDPOINTS.values())) else u + ENDPOINTS[endpoint]


# ---------------------------------------------------------------------------------------------------- SSE
class SSEReader:
    """Incremental server-sent-events reader: :meth:`feed` raw bytes with their arrival time; each complete ``data:``
    payload goes to :meth:`on_data`. Comments, ``event:`` lines and CRLF line ends are handled."""

    __slots__ = ("buf", "done")

    def __init__(self) -> None:
        self.buf, self.done = b"", False

    @property
    def stopped(self) -> bool:
        """True once the reader wants no more bytes (a subclass's failure)."""
        return False

    def on_data(self, payload: bytes, now_ns: int) -> None:
        """One ``data:`` payload (stripped), e.g. ``b'{"choices": ...}'`` or ``b"[DONE]"``."""
        raise NotImplementedError

    def feed(self, data: bytes, now_ns: int) -> None:
        """Take the next bytes of the body; bytes after :attr:`stopped` turned true are dropped."""
        if self.stopped:
            return
        buf = self.buf + data if self.buf else data
        if b"\r" in buf:
            buf = buf.replace(b"\r\n", b"\n")
        start = 0
        while (end := buf.find(b"\n\n", start)) >= 0:
            ev = buf[start:end]
            start = end + 2
            if ev.startswith(b"data:") and b"\n" not in ev:
                self.on_data(ev[5:].strip(), now_ns)
            else:
                for line in ev.split(b"\n"):
                    if line.startswith(b"data:"):
                        self.on_data(line[5:].strip(), now_ns)
            if self.stopped:
                self.buf = b""
                return
        self.buf = buf[start:]


def parse_data(payload: bytes | str) -> dict | str | None:
    """A ``data:`` payload: the parsed JSON object, the string ``"[DONE]"``, or None (not a JSON object)."""
    text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
    if text == "[DONE]":
        return text
    try:
        obj = json.loads(text)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def parse_sse_line(line: str) -> dict | str | None:
    """One server-sent-events line: the parsed ``data:`` JSON, the string ``"[DONE]"``, or None for anything else.

    Example:
        >>> parse_sse_line('data: {"a": 1}'), parse_sse_line("data: [DONE]"), parse_sse_line("")
        ({'a': 1}, '[DONE]', None)
    """
    if not line.startswith("data:"):
        return None
    return parse_data(line[5:].strip())


class RecordReader(SSEReader):
    """The load generator's reader: fills a :class:`RequestRecord` (text-event times, usage tokens, the error)."""

    __slots__ = ("rec", "first")

    def __init__(self, rec: RequestRecord) -> None:
        super().__init__()
        self.rec, self.first = rec, True

    @property
    def stopped(self) -> bool:
        return self.rec.error is not None

    def on_data(self, p: bytes, now_ns: int) -> None:
        rec = self.rec
        if self.done or rec.error is not None:
            return
        if p == b"[DONE]":
            self.done = True
            return
        if not (p.startswith(b"{") and p.endswith(b"}")):
            rec.error, rec.reason = "non_json", f"data line is not JSON: {p[:80]!r}"
            return
        obj = None
        if self.first or b'"error"' in p or (b'"usage"' in p and not _USAGE_NULL.search(p)):
            self.first = False
            try:
                obj = json.loads(p)
            except ValueError:
                rec.error, rec.reason = "non_json", f"data line is not valid JSON: {p[:80]!r}"
                return
            if not isinstance(obj, dict):
                rec.error, rec.reason = "non_json", f"data line is not a JSON object: {p[:80]!r}"
                return
            if obj.get("error"):
                err = obj["error"]
                rec.error = "error_event"
                rec.reason = str(err.get("message", err) if isinstance(err, dict) else err)[:200]
                return
            usage = obj.get("usage")
            if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
                rec.output_tokens, rec.tokens_from_usage = usage["completion_tokens"], True
        if _TEXT.search(p):
            rec.chunk_ns.append(now_ns)


def finish_record(rec: RequestRecord, sse: RecordReader) -> None:
    """Close a record: cut streams, empty answers and the token count when the server sent no usage."""
    rec.end_ns = rec.end_ns or time.perf_counter_ns()
    if rec.error is None:
        if not sse.done:
            rec.error, rec.reason = "stream_cut", f"stream ended without data: [DONE] after {len(rec.chunk_ns)} text events"
        elif not rec.chunk_ns:
            rec.error, rec.reason = "no_tokens", "the stream finished without any output text"
        elif not rec.tokens_from_usage:
            rec.output_tokens = len(rec.chunk_ns)


class ChatReader(SSEReader):
    """The single request's reader: every event parsed, the text, the time of each text chunk, usage, finish.

    A ``data:`` line that is not a JSON object, or an ``{"error": ...}`` event, stops it with :attr:`error` set (the
    request failed: nothing is skipped silently).
    """

    __slots__ = ("events", "parts", "times_ns", "usage_tokens", "finish", "error")

    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict] = []
        self.parts: list[str] = []
        self.times_ns: list[int] = []
        self.usage_tokens: int | None = None
        self.finish: str | None = None
        self.error: str | None = None

    @property
    def stopped(self) -> bool:
        return self.done or self.error is not None

    def on_data(self, payload: bytes, now_ns: int) -> None:
        if self.stopped:
            return
        ev = parse_data(payload)
        if ev is None:
            self.error = f"a data line is not a JSON object: {payload[:80]!r}"
            return
        if ev == "[DONE]":
            self.done = True
            return
        assert isinstance(ev, dict)
        self.events.append(ev)
        if ev.get("error"):
            self.error = f"the stream carried an error event: {str(ev['error'])[:300]}"
            return
        for ch in ev.get("choices") or []:
            content = (ch.get("delta") or {}).get("content")
            if content:
                self.parts.append(content)
                self.times_ns.append(now_ns)
            self.finish = ch.get("finish_reason") or self.finish
        if ev.get("usage"):
            self.usage_tokens = int(ev["usage"].get("completion_tokens") or 0)


# ---------------------------------------------------------------------------------------------------- one request
@dataclass(slots=True)
class ChatResult:
    """One completion: text, completion tokens, time to first token (streaming only), total time, parsed events.

    ``itl_s`` is the mean gap between content chunks after the first (streaming only).
    """

    text: str
    tokens: int
    ttft_s: float | None
    total_s: float
    raw_events: list[dict] = field(default_factory=list)
    itl_s: float | None = None
    finish_reason: str | None = None


def chat(url: str, model: str, prompt: str, *, stream: bool, max_tokens: int = 32, timeout: float = 30) -> ChatResult:
    """Send one chat completion to ``url`` (the frontend base URL) and time it.

    Raises:
        LabError: the frontend is unreachable, answered an HTTP error, or the stream ended without ``[DONE]``.
    """
    endpoint = f"{url.rstrip('/')}{ENDPOINTS['chat']}"
    body = request_body(model, prompt, stream=stream, max_tokens=max_tokens)
    t0 = time.perf_counter_ns()
    try:
        with httpx.Client(timeout=timeout) as client:
            if not stream:
                r = client.post(endpoint, json=body)
                _check(r, endpoint)
                try:
                    data = r.json()
                except ValueError:
                    data = None
                if not isinstance(data, dict):
                    raise LabError(f"POST {endpoint}", f"the answer is not a JSON object: {r.text[:120]!r}",
                                   _http_fix(r.status_code, endpoint))
                total = (time.perf_counter_ns() - t0) / 1e9
                choice = (data.get("choices") or [{}])[0]
                text = (choice.get("message") or {}).get("content") or ""
                tokens = int((data.get("usage") or {}).get("completion_tokens") or 0)
                return ChatResult(text, tokens, None, total, [data], None, choice.get("finish_reason"))
            return _stream(client, endpoint, body, t0)
    except httpx.HTTPError as exc:
        raise LabError(
            f"frontend {url}", f"chat completion failed ({type(exc).__name__}: {exc})",
            f"check that the frontend answers: curl {url.rstrip('/')}/v1/models (local lab: `workshop lab status`; "
            "eks: the frontend pod and its port-forward)",
        ) from exc


def _http_fix(status: int, endpoint: str) -> str:
    """What to check for an HTTP error of the frontend (target-neutral: the same text on local and eks)."""
    models = endpoint.replace("/v1/chat/completions", "/v1/models")
    if status == 404:
        return f"the frontend serves no such model or route: compare the model id with curl {models}"
    if status in (400, 422):
        return "the frontend rejected the request's parameters (model, max_tokens, messages): see the message above"
    return "see the frontend's log (local: `workshop lab logs frontend`; eks: kubectl logs of the frontend pod)"


def _check(r: httpx.Response, endpoint: str) -> None:
    if r.status_code >= 400:
        r.read()
        raise LabError(f"POST {endpoint}", f"HTTP {r.status_code}: {r.text[:300]}", _http_fix(r.status_code, endpoint))


def _stream(client: httpx.Client, endpoint: str, body: dict, t0: int) -> ChatResult:
    reader = ChatReader()
    with client.stream("POST", endpoint, json=body) as r:
        _check(r, endpoint)
        for data in r.iter_bytes():
            reader.feed(data, time.perf_counter_ns())
            if reader.stopped:
                break
    total = (time.perf_counter_ns() - t0) / 1e9
    if reader.error:
        raise LabError(f"POST {endpoint}", reader.error, _http_fix(r.status_code, endpoint))
    if not reader.done:
        raise LabError(f"POST {endpoint}", "the stream ended without `data: [DONE]`", "read the frontend log")
    times = [(t - t0) / 1e9 for t in reader.times_ns]
    itl = (times[-1] - times[0]) / (len(times) - 1) if len(times) > 1 else None
    tokens = reader.usage_tokens if reader.usage_tokens is not None else len(reader.parts)
    return ChatResult("".join(reader.parts), tokens, times[0] if times else None, total, reader.events, itl,
                      reader.finish)


# ---------------------------------------------------------------------------------------------------- load sessions
class HttpxSession:
    """One worker's connection through httpx (any URL, https included)."""

    def __init__(self, timeout_s: float, verify: Any = True) -> None:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        timeout = httpx.Timeout(timeout_s, connect=min(10.0, timeout_s))
        self.client = httpx.AsyncClient(limits=limits, timeout=timeout, trust_env=False, verify=verify)

    async def send(self, url: str, body: bytes, rec: RequestRecord) -> None:
        """Send one streaming request and fill ``rec``; never raises for server or network failures."""
        sse = RecordReader(rec)
        try:
            async with self.client.stream("POST", url, content=body, headers=HEADERS) as resp:
                rec.status = resp.status_code
                if resp.status_code >= 400:
                    text = (await resp.aread())[:300].decode("utf-8", "replace")
                    rec.error, rec.reason = f"http_{resp.status_code}", text.strip() or resp.reason_phrase
                    return
                async for data in resp.aiter_raw():
                    sse.feed(data, time.perf_counter_ns())
                    if rec.error is not None:
                        return
        except httpx.ConnectError as exc:
            rec.error, rec.reason = "connect_error", f"cannot connect to {url}: {exc}"
        except httpx.TimeoutException as exc:
            rec.error, rec.reason = "timeout", f"{type(exc).__name__} after {len(rec.chunk_ns)} text events"
        except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
            rec.error, rec.reason = "stream_cut", f"{type(exc).__name__}: {exc} after {len(rec.chunk_ns)} text events"
        except httpx.HTTPError as exc:
            rec.error, rec.reason = "http_error", f"{type(exc).__name__}: {exc}"
        finally:
            rec.end_ns = time.perf_counter_ns()
            finish_record(rec, sse)

    async def aclose(self) -> None:
        await self.client.aclose()


class RawSession:
    """One worker's keep-alive connection through :mod:`workshop_lib.bench.rawhttp` (``http://`` only)."""

    def __init__(self, url: str, timeout_s: float) -> None:
        u = httpx.URL(url)
        self.path = u.raw_path.decode() or "/"
        self.conn = RawConnection(u.host, u.port or 80)
        self.timeout_s = timeout_s

    async def send(self, url: str, body: bytes, rec: RequestRecord) -> None:
        """Send one streaming request and fill ``rec``; never raises for server or network failures."""
        sse = RecordReader(rec)
        err_body: list[bytes] = []

        def on_status(code: int, reason: bytes) -> None:
            rec.status = code

        def on_data(data: bytes, now: int) -> None:
            if rec.status is not None and rec.status >= 400:
                err_body.append(data)
            elif rec.error is None:
                sse.feed(data, now)

        try:
            await self.conn.request(self.path, body, on_status, on_data, self.timeout_s, min(10.0, self.timeout_s))
            if rec.status is not None and rec.status >= 400:
                text = b"".join(err_body)[:300].decode("utf-8", "replace").strip()
                rec.error, rec.reason = f"http_{rec.status}", text or f"HTTP {rec.status}"
        except StreamCut as exc:
            rec.error, rec.reason = "stream_cut", f"{exc} after {len(rec.chunk_ns)} text events"
        except TimeoutError:
            rec.error, rec.reason = "timeout", f"no complete response within {self.timeout_s:g} s " \
                f"after {len(rec.chunk_ns)} text events"
        except OSError as exc:
            kind = "connect_error" if rec.status is None else "stream_cut"
            rec.error, rec.reason = kind, f"cannot connect to {url}: {exc}" if rec.status is None else str(exc)
        finally:
            rec.end_ns = time.perf_counter_ns()
            finish_record(rec, sse)

    async def aclose(self) -> None:
        self.conn.close()




def make_sessions(n: int, url: str, timeout_s: float, transport: str = "auto") -> list[HttpxSession | RawSession]:
    """``n`` single-connection sessions. ``auto`` picks the raw client for ``http://`` and httpx for ``https://``.

    One connection per session on purpose: httpx's pool scans every connection on every event, so one shared pool of
    ``n`` connections costs O(n) CPU per streamed token (it made the client the bottleneck at 64 streams).
    """
    if transport not in TRANSPORTS:
        raise ConfigError("transport", f"{transport!r} is not a client transport", f"use one of {', '.join(TRANSPORTS)}")
    if transport == "raw" or (transport == "auto" and url.startswith("http://")):
        if not url.startswith("http://"):
            raise ConfigError("transport", "the raw client speaks plain http:// only", "use transport httpx for https")
        return [RawSession(url, timeout_s) for _ in range(n)]
    import ssl

    ctx = ssl.create_default_context()
    return [HttpxSession(timeout_s, ctx) for _ in range(n)]
