"""Serving benchmark: a streaming load generator for OpenAI-compatible endpoints (the Dynamo frontend).

Each concurrency level keeps exactly ``C`` requests in flight (``C`` workers, each sending its next request as soon
as the previous one ends) until ``requests`` have finished. Per request it records the arrival time of every SSE
event carrying output text (``time.perf_counter_ns`` taken when the bytes arrive), so TTFT, every inter-token gap,
TPOT and end-to-end latency follow; output tokens come from ``usage`` (asked for with
``stream_options.include_usage``) or, when the server sends none, from the count of text events.

The requests go through the kit's one streaming client, :mod:`workshop_lib.bench.client` (its sessions and its
cheap SSE reader); this module runs the levels, on uvloop when installed, and summarises them.

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
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from workshop_lib.bench.client import (
    TRANSPORTS,
    HttpxSession,
    RawSession,
    encode_body,
    endpoint_url,
    make_sessions,
    request_body,
)
from workshop_lib.bench.prompts import build_prompts
from workshop_lib.bench.stats import LevelSummary, RequestRecord, summarize, summarize_level
from workshop_lib.errors import ConfigError

ITL_DEFINITION = ("itl_ms: per request, the mean gap between its text events, (last - first) / (events - 1), then "
                  "mean/percentiles over requests (comparable with aiperf's ITL); tpot_ms: per request (last - first) "
                  "/ (output tokens - 1); gap_ms: every single gap between consecutive text events (servers that "
                  "send several events in one write show gaps near 0)")


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


def _body(endpoint: str, model: str, prompt: str, osl: int, extra: dict[str, Any] | None) -> bytes:
    return encode_body(request_body(model, prompt, max_tokens=osl, endpoint=endpoint, extra=extra))


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
                                     [_body(endpoint, model, p, osl, extra) for p in prompts], [], lambda: None)
                prompts = build_prompts(requests, isl, tokenizer, seed=level)
                bodies = [_body(endpoint, model, p, osl, extra) for p in prompts]
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use `workshop bench serve`")
