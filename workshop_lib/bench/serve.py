"""Serving benchmark: a streaming load generator for OpenAI-compatible endpoints (the Dynamo frontend).

Each concurrency level keeps exactly ``C`` requests in flight (``C`` workers, each sending its next request as soon
as the previous one ends) until ``requests`` have finished. Per request it records the arrival time of every SSE
event carrying output text (``time.perf_counter_ns`` taken when the bytes arrive), so TTFT, every inter-token gap,
TPOT and end-to-end latency follow; output tokens come from ``usage`` (asked for with
``stream_options.include_usage``) or, when the server sends none, from the count of text events.

The client is built to stay cheap in CPU, so that at high concurrency it measures the server and not itself: it reads
raw bytes (``aiter_raw``), splits SSE events itself, recognises text events with one regular-expression search and
parses JSON only for the first event, ``usage`` and ``error`` events; it uses uvloop when installed.

Failures never stop a sweep: an unreachable URL, an HTTP 4xx/5xx, a stream cut before ``data: [DONE]``, a ``data:``
line that is not JSON and an SSE error event are each counted as an error with a reason. Ctrl-C keeps every finished
request (``SweepResult.meta["interrupted"]``).

Example:
    >>> res = run_sweep("http://127.0.0.1:8000", "Qwen/Qwen3-0.6B", [1, 5], requests=20, isl=512, osl=128)  # doctest: +SKIP
    >>> res.to_frame()[["concurrency", "ttft_p50_ms", "itl_p50_ms", "output_tokens_per_s"]]  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import json
import math
import platform
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from workshop_lib.bench.prompts import build_prompts
from workshop_lib.bench.rawhttp import RawConnection, StreamCut
from workshop_lib.bench.stats import LevelSummary, RequestRecord, summarize, summarize_level
from workshop_lib.errors import ConfigError

ENDPOINTS = {"chat": "/v1/chat/completions", "completions": "/v1/completions"}
_TEXT = re.compile(rb'"(?:content|text|reasoning_content)"\s*:\s*"(?!")')
_USAGE_NULL = re.compile(rb'"usage"\s*:\s*null')
ITL_DEFINITION = ("itl_ms: per request, the mean gap between its text events, (last - first) / (events - 1), then "
                  "mean/percentiles over requests (comparable with aiperf's ITL); tpot_ms: per request (last - first) "
                  "/ (output tokens - 1); gap_ms: every single gap between consecutive text events (servers that "
                  "send several events in one write show gaps near 0)")


# ---------------------------------------------------------------------------------------------------- request bodies
def request_body(endpoint: str, model: str, prompt: str, osl: int, extra: dict[str, Any] | None = None) -> bytes:
    """The JSON body of one streaming request (``stream_options.include_usage`` on).

    >>> json.loads(request_body("completions", "m", "hi", 4))["max_tokens"]
    4
    """
    body: dict[str, Any] = {"model": model, "max_tokens": osl, "stream": True, "stream_options": {"include_usage": True}}
    if endpoint == "chat":
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    body.update(extra or {})
    return json.dumps(body, separators=(",", ":")).encode()


def endpoint_url(url: str, endpoint: str) -> str:
    """``url`` plus the route of ``endpoint`` (``chat`` or ``completions``) unless ``url`` already names one."""
    if endpoint not in ENDPOINTS:
        raise ConfigError("endpoint", f"{endpoint!r} is not an endpoint", "use chat or completions")
    if not url.startswith(("http://", "https://")):
        raise ConfigError("url", f"{url!r} is not an http(s) URL", "use e.g. http://127.0.0.1:8000")
    u = url.rstrip("/")
    return u if u.endswith(tuple(ENDPOINTS.values())) else u + ENDPOINTS[endpoint]


# ---------------------------------------------------------------------------------------------------- SSE handling
class _SSE:
    """Incremental SSE reader: feed it raw bytes with their arrival time; it fills a :class:`RequestRecord`."""

    __slots__ = ("rec", "buf", "done", "first")

    def __init__(self, rec: RequestRecord) -> None:
        self.rec, self.buf, self.done, self.first = rec, b"", False, True

    def feed(self, data: bytes, now_ns: int) -> None:
        buf = self.buf + data if self.buf else data
        if b"\r" in buf:
            buf = buf.replace(b"\r\n", b"\n")
        start = 0
        while (end := buf.find(b"\n\n", start)) >= 0:
            ev = buf[start:end]
            start = end + 2
            if ev.startswith(b"data:") and b"\n" not in ev:
                self._data(ev[5:].strip(), now_ns)
            else:
                for line in ev.split(b"\n"):
                    if line.startswith(b"data:"):
                        self._data(line[5:].strip(), now_ns)
            if self.rec.error is not None:
                return
        self.buf = buf[start:]

    def _data(self, p: bytes, now_ns: int) -> None:
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


def _finish(rec: RequestRecord, sse: _SSE) -> None:
    """Close a record: cut streams, empty answers and the token count when the server sent no usage."""
    rec.end_ns = rec.end_ns or time.perf_counter_ns()
    if rec.error is None:
        if not sse.done:
            rec.error, rec.reason = "stream_cut", f"stream ended without data: [DONE] after {len(rec.chunk_ns)} text events"
        elif not rec.chunk_ns:
            rec.error, rec.reason = "no_tokens", "the stream finished without any output text"
        elif not rec.tokens_from_usage:
            rec.output_tokens = len(rec.chunk_ns)


class HttpxSession:
    """One worker's connection through httpx (any URL, https included)."""

    def __init__(self, timeout_s: float, verify: Any = True) -> None:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        timeout = httpx.Timeout(timeout_s, connect=min(10.0, timeout_s))
        self.client = httpx.AsyncClient(limits=limits, timeout=timeout, trust_env=False, verify=verify)

    async def send(self, url: str, body: bytes, rec: RequestRecord) -> None:
        """Send one streaming request and fill ``rec``; never raises for server or network failures."""
        sse = _SSE(rec)
        try:
            async with self.client.stream("POST", url, content=body, headers=_HEADERS) as resp:
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
            _finish(rec, sse)

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
        sse = _SSE(rec)
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
            _finish(rec, sse)

    async def aclose(self) -> None:
        self.conn.close()


_HEADERS = {"content-type": "application/json", "accept": "text/event-stream"}
TRANSPORTS = ("auto", "raw", "httpx")


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


# ---------------------------------------------------------------------------------------------------- sweep
@dataclass
class SweepResult:
    """Results of a sweep: one :class:`LevelSummary` per level, every finished request, and run metadata."""

    levels: list[LevelSummary] = field(default_factory=list)
    records: list[RequestRecord] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The public JSON contract: ``{"runs": [...], "meta": {...}}``."""
        return {"runs": [lv.to_dict() for lv in self.levels], "meta": self.meta}

    def to_json(self, path: str | Path | None = None) -> str:
        """JSON text of :meth:`to_dict` (NaN written as null); also written to ``path`` when given."""
        text = json.dumps(_nan_to_none(self.to_dict()), indent=2)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    def to_frame(self):  # -> pandas.DataFrame
        """One row per level: concurrency, requests, errors, ttft_{mean,p50,p90,p99}_ms, itl_*, tpot_*, e2e_*,
        output_tokens_per_s, requests_per_s, duration_s."""
        import pandas as pd

        return pd.DataFrame([lv.to_row() for lv in self.levels])

    def requests_frame(self):  # -> pandas.DataFrame
        """One row per finished request (measured levels only), with ttft_ms, tpot_ms, e2e_ms, error, reason."""
        import pandas as pd

        return pd.DataFrame([r.to_row() for r in self.records])

    @classmethod
    def from_json(cls, path: str | Path) -> SweepResult:
        """Load a file written by :meth:`to_json` (levels and meta; per-request records are not stored)."""
        p = Path(path)
        try:
            data = json.loads(p.read_text())
            levels = [LevelSummary(**{k: _none_to_nan(v) for k, v in run.items()}) for run in data["runs"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(str(p), f"not a bench serve result file ({exc})",
                              "give a JSON file written by `workshop bench serve --json`") from None
        return cls(levels=levels, meta=data.get("meta", {}))


def _none_to_nan(x: Any) -> Any:
    if x is None:
        return math.nan
    if isinstance(x, dict):
        return {k: _none_to_nan(v) for k, v in x.items()}
    return x


def _nan_to_none(x: Any) -> Any:
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, dict):
        return {k: _nan_to_none(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_nan_to_none(v) for v in x]
    return x


def _check_args(concurrency: Sequence[int], requests: int, osl: int) -> None:
    if not concurrency or any(isinstance(c, bool) or not isinstance(c, int) or c <= 0 for c in concurrency):
        raise ConfigError("concurrency", f"{list(concurrency)!r} must be positive integers", "use e.g. 1,5,10,20")
    if requests <= 0:
        raise ConfigError("requests", f"{requests} is not a positive request count", "use e.g. --requests 100")
    if osl <= 0:
        raise ConfigError("osl", f"{osl} is not a positive token count", "use e.g. --osl 128")


def _meta(url: str, model: str, endpoint: str, concurrency: Sequence[int], requests: int, isl: int, osl: int,
          warmup: int) -> dict[str, Any]:
    from workshop_lib import __version__, versions

    return {
        "url": url, "model": model, "endpoint": endpoint, "concurrency": list(concurrency), "requests": requests,
        "isl": isl, "osl": osl, "warmup": warmup, "tool": "workshop bench serve",
        "versions": {"workshop_lib": __version__, "dynamo": versions.DYNAMO, "nixl": versions.NIXL,
                     "httpx": httpx.__version__, "python": platform.python_version()},
        "host": {"hostname": socket.gethostname(), "platform": platform.platform(), "machine": platform.machine(),
                 "cpus": _cpu_count()},
        "start_time": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "itl_definition": ITL_DEFINITION,
        "interrupted": False,
    }


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


async def _run_level(sessions: Sequence[HttpxSession | RawSession], url: str, conc: int, bodies: Sequence[bytes],
                     out: list[RequestRecord], on_done: Callable[[], None]) -> None:
    """Run ``len(bodies)`` requests with exactly ``conc`` in flight (one worker per session); records go to ``out``."""
    it = iter(enumerate(bodies))

    async def worker(session: HttpxSession | RawSession) -> None:
        for i, body in it:
            rec = RequestRecord(conc, i, time.perf_counter_ns())
            await session.send(url, body, rec)
            out.append(rec)
            on_done()

    await asyncio.gather(*(worker(s) for s in sessions[: min(conc, len(bodies))]))


async def _sweep(res: SweepResult, url: str, model: str, concurrency: Sequence[int], requests: int, isl: int, osl: int,
                 endpoint: str, warmup: int, timeout_s: float, tokenizer: str | Path | None, extra: dict[str, Any] | None,
                 progress: bool, transport: str = "auto") -> None:
    from tqdm.auto import tqdm

    target = endpoint_url(url, endpoint)
    lags: list[float] = []
    monitor = asyncio.get_running_loop().create_task(_lag_monitor(lags))
    bar = tqdm(total=requests * len(concurrency), disable=not progress, unit="req", desc="bench serve")
    try:
        for level, conc in enumerate(concurrency):
            bar.set_postfix(concurrency=conc)
            clients = make_sessions(conc, target, timeout_s, transport)
            try:
                if warmup:
                    prompts = build_prompts(warmup, isl, tokenizer, seed=10_000 + level)
                    await _run_level(clients, target, conc,
                                     [request_body(endpoint, model, p, osl, extra) for p in prompts], [], lambda: None)
                prompts = build_prompts(requests, isl, tokenizer, seed=level)
                bodies = [request_body(endpoint, model, p, osl, extra) for p in prompts]
                recs: list[RequestRecord] = []
                t0 = time.perf_counter()
                res.meta["_current"] = (conc, recs, t0)
                await _run_level(clients, target, conc, bodies, recs, lambda: bar.update(1))
                res.meta.pop("_current", None)
                res.records.extend(recs)
                res.levels.append(summarize_level(conc, recs, time.perf_counter() - t0))
            finally:
                await asyncio.gather(*(c.aclose() for c in clients), return_exceptions=True)
    finally:
        bar.close()
        monitor.cancel()
        res.meta["client_loop_lag_ms"] = summarize(lags)


async def _lag_monitor(out: list[float], interval_s: float = 0.01) -> None:
    """Record how late the client's event loop wakes for a timer: the self-check that the client kept up.

    A lag near 0 (uvloop timers have 1 ms resolution) means the client read every event when it arrived; a p99 of
    several ms means it was short of CPU and its latencies are inflated by about that much.
    """
    loop = asyncio.get_running_loop()
    while True:
        t0 = loop.time()
        await asyncio.sleep(interval_s)
        out.append((loop.time() - t0 - interval_s) * 1e3)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    try:
        import uvloop

        return uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop comes with the lab extra
        return asyncio.new_event_loop


def run_sweep(url: str, model: str, concurrency: Sequence[int], requests: int, isl: int = 512, osl: int = 128,
              endpoint: str = "chat", warmup: int = 0, progress: bool = True, timeout_s: float = 600.0,
              tokenizer: str | Path | None = None, extra_body: dict[str, Any] | None = None,
              transport: str = "auto") -> SweepResult:
    """Run the sweep and return a :class:`SweepResult` (works in scripts and inside Jupyter's running loop).

    Args:
        url: server base URL (``http://127.0.0.1:8000``) or a full endpoint URL.
        model: the served model id (``/v1/models``).
        concurrency: levels, each run with exactly that many requests in flight.
        requests: measured requests per level.
        isl: approximate input tokens per prompt (exact with ``tokenizer``).
        osl: ``max_tokens`` per request.
        endpoint: ``chat`` or ``completions``.
        warmup: unmeasured requests sent at each level's concurrency before it is measured.
        progress: show a tqdm bar.
        timeout_s: read timeout per request.
        tokenizer: a directory holding ``tokenizer.json`` to size prompts exactly.
        extra_body: more fields for every request body (e.g. ``{"ignore_eos": True}``).
        transport: ``auto`` (raw client for http://, httpx for https://), ``raw`` or ``httpx``.

    Raises:
        ConfigError: a bad argument (server failures are counted in the result instead).
    """
    _check_args(concurrency, requests, osl)
    endpoint_url(url, endpoint)
    if transport not in TRANSPORTS:
        raise ConfigError("transport", f"{transport!r} is not a client transport", f"use one of {', '.join(TRANSPORTS)}")
    res = SweepResult(meta=_meta(url, model, endpoint, concurrency, requests, isl, osl, warmup))
    res.meta["transport"] = transport
    cpu0 = time.process_time()
    box: dict[str, BaseException] = {}
    ready = threading.Event()
    holder: dict[str, Any] = {}

    def _thread() -> None:
        try:
            with asyncio.Runner(loop_factory=_loop_factory()) as runner:
                holder["loop"] = runner.get_loop()
                task = runner.get_loop().create_task(
                    _sweep(res, url, model, list(concurrency), requests, isl, osl, endpoint, warmup, timeout_s,
                           tokenizer, extra_body, progress, transport))
                holder["task"] = task
                ready.set()
                runner.run(_await(task))
        except asyncio.CancelledError:
            pass
        except BaseException as exc:  # surfaced in the caller's thread
            box["exc"] = exc
        finally:
            ready.set()

    t = threading.Thread(target=_thread, name="bench-serve", daemon=True)
    t.start()
    ready.wait()
    try:
        while t.is_alive():
            t.join(0.1)
    except KeyboardInterrupt:
        res.meta["interrupted"] = True
        if "task" in holder:
            holder["loop"].call_soon_threadsafe(holder["task"].cancel)
        t.join(30)
    current = res.meta.pop("_current", None)
    if current is not None:  # interrupted mid-level: keep that level's finished requests
        conc, recs, t0 = current
        res.records.extend(recs)
        res.levels.append(summarize_level(conc, list(recs), time.perf_counter() - t0))
    res.meta["client_cpu_s"] = round(time.process_time() - cpu0, 3)
    res.meta["end_time"] = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    if "exc" in box:
        raise box["exc"]
    return res


async def _await(task: asyncio.Task[None]) -> None:
    await task


def parse_concurrency(text: str) -> list[int]:
    """``"1,5,10"`` -> ``[1, 5, 10]``.

    Raises:
        ConfigError: an item is not a positive integer.

    >>> parse_concurrency("1, 5,10")
    [1, 5, 10]
    """
    try:
        out = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError("--concurrency", f"{text!r} is not a list of integers", "use e.g. 1,5,10,20") from None
    if not out or min(out) <= 0:
        raise ConfigError("--concurrency", f"{text!r} must hold positive integers", "use e.g. 1,5,10,20")
    return out


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use `workshop bench serve`")
