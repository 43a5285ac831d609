"""A small OpenAI-style streaming server with known timing, for testing and calibrating benchmark clients.

It speaks just enough HTTP/1.1 (keep-alive, chunked SSE responses) on raw asyncio streams, with no web framework,
so its own CPU cost stays low. Each request gets its first token ``ttft_s`` after the request arrived and the next
ones every ``itl_s`` on an absolute schedule (a late token does not delay the ones after it). The server records
when it really wrote each token, so a client's numbers can be compared with what the server actually did.

The model name selects a fault, for error-path tests: ``fault-500`` / ``fault-404`` (HTTP error with a JSON body),
``fault-cut`` (connection closed after 3 tokens), ``fault-nonjson`` (a ``data:`` line that is not JSON after 2
tokens), ``fault-error-event`` (an SSE ``{"error": ...}`` event after 2 tokens).

Example:
    >>> with running_server(ttft_s=0.02, itl_s=0.005) as srv:  # doctest: +SKIP
    ...     srv.url
    'http://127.0.0.1:40123'

Run standalone: ``python -m workshop_lib.bench.testserver --port 8123 --ttft-ms 50 --itl-ms 10 --tokens 32``;
``GET /stats`` returns what it measured, ``POST /stats/reset`` clears it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from workshop_lib.bench.stats import summarize

_CHAT_PRE = b'{"id":"chatcmpl-test","object":"chat.completion.chunk","created":0,"model":"m","choices":[{"index":0,"delta":{"content":"'
_CHAT_POST = b'"},"finish_reason":null}]}'
_CMPL_PRE = b'{"id":"cmpl-test","object":"text_completion","created":0,"model":"m","choices":[{"index":0,"text":"'
_CMPL_POST = b'","finish_reason":null}]}'
_END = b"0\r\n\r\n"


def _chunk(payload: bytes) -> bytes:
    """One SSE event ``data: <payload>`` framed as one HTTP chunk."""
    body = b"data: " + payload + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(body), body)


@dataclass
class ServerStats:
    """What the server did: requests, the most streams open at once, and per-request write times (ns)."""

    requests: int = 0
    inflight: int = 0
    max_inflight: int = 0
    recv_ns: list[int] = field(default_factory=list)
    first_ns: list[int] = field(default_factory=list)
    gaps_ns: list[int] = field(default_factory=list)
    late_ns: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Server-side truth: TTFT and inter-token gaps as written, lateness against the schedule (ms)."""
        return {
            "requests": self.requests,
            "max_inflight": self.max_inflight,
            "ttft_ms": summarize((f - r) / 1e6 for r, f in zip(self.recv_ns, self.first_ns, strict=False)),
            "itl_ms": summarize(g / 1e6 for g in self.gaps_ns),
            "late_ms": summarize(g / 1e6 for g in self.late_ns),
            "cpu_s": round(time.process_time(), 3),
        }


class StreamServer:
    """The server; ``await start()`` binds (port 0 picks a free port), ``await stop()`` closes it."""

    def __init__(self, ttft_s: float = 0.05, itl_s: float = 0.01, tokens: int = 32,
                 host: str = "127.0.0.1", port: int = 0, nagle: bool = False) -> None:
        self.ttft_s, self.itl_s, self.tokens, self.nagle = ttft_s, itl_s, tokens, nagle
        self.host, self.port = host, port
        self.stats = ServerStats()
        self._server: asyncio.base_events.Server | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._conn, self.host, self.port, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.nagle:  # like the Dynamo 0.9.0 frontend: small SSE writes wait for the previous segment's ACK
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                method, path, headers = _parse_head(head)
                n = int(headers.get(b"content-length", b"0"))
                body = await reader.readexactly(n) if n else b""
                recv_ns = time.perf_counter_ns()
                keep = await self._route(method, path, body, writer, recv_ns)
                if not keep:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _route(self, method: bytes, path: bytes, body: bytes, w: asyncio.StreamWriter, recv_ns: int) -> bool:
        if path in (b"/v1/chat/completions", b"/v1/completions") and method == b"POST":
            return await self._stream(path, body, w, recv_ns)
        if path == b"/stats":
            _respond(w, 200, json.dumps(self.stats.to_dict()).encode())
        elif path == b"/stats/reset":
            self.stats = ServerStats()
            _respond(w, 200, b"{}")
        elif path == b"/v1/models":
            _respond(w, 200, b'{"object":"list","data":[{"id":"test-model","object":"model"}]}')
        elif path in (b"/health", b"/live"):
            _respond(w, 200, b'{"status":"healthy"}')
        else:
            _respond(w, 404, b'{"error":{"message":"no such route"}}')
        await w.drain()
        return True

    async def _stream(self, path: bytes, body: bytes, w: asyncio.StreamWriter, recv_ns: int) -> bool:
        try:
            req = json.loads(body)
        except ValueError:
            _respond(w, 400, b'{"error":{"message":"body is not JSON"}}')
            return True
        model = str(req.get("model", ""))
        if model in ("fault-500", "fault-404"):
            code = int(model[-3:])
            _respond(w, code, b'{"error":{"message":"injected fault %d"}}' % code)
            await w.drain()
            return True
        n = int(req.get("max_tokens") or req.get("max_completion_tokens") or self.tokens)
        usage = bool((req.get("stream_options") or {}).get("include_usage"))
        pre, post = (_CHAT_PRE, _CHAT_POST) if path.endswith(b"chat/completions") else (_CMPL_PRE, _CMPL_POST)
        st = self.stats
        st.requests += 1
        st.inflight += 1
        st.max_inflight = max(st.max_inflight, st.inflight)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        try:
            w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n")
            prev = 0
            for i in range(n):
                due = t0 + self.ttft_s + i * self.itl_s
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                if model == "fault-cut" and i == 3:
                    w.transport.abort()
                    return False
                if model == "fault-nonjson" and i == 2:
                    w.write(_chunk(b"this is not json"))
                elif model == "fault-error-event" and i == 2:
                    w.write(_chunk(b'{"error":{"message":"injected engine error"}}'))
                    w.write(_END)
                    return True
                w.write(_chunk(pre + b"tok%d " % i + post))
                now_ns = time.perf_counter_ns()
                st.late_ns.append(max(0, int((loop.time() - due) * 1e9)))
                if i == 0:
                    st.recv_ns.append(recv_ns)
                    st.first_ns.append(now_ns)
                else:
                    st.gaps_ns.append(now_ns - prev)
                prev = now_ns
            if usage:
                w.write(_chunk(b'{"id":"x","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":%d,'
                               b'"completion_tokens":%d,"total_tokens":%d}}' % (1, n, n + 1)))
            w.write(_chunk(b"[DONE]") + _END)
            await w.drain()
            return True
        finally:
            st.inflight -= 1


def _parse_head(head: bytes) -> tuple[bytes, bytes, dict[bytes, bytes]]:
    lines = head.split(b"\r\n")
    method, path, _ = lines[0].split(b" ", 2)
    headers = {}
    for line in lines[1:]:
        k, sep, v = line.partition(b":")
        if sep:
            headers[k.strip().lower()] = v.strip()
    return method, path, headers


def _respond(w: asyncio.StreamWriter, code: int, body: bytes) -> None:
    reason = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 500: b"Internal Server Error"}.get(code, b"Error")
    w.write(b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (code, reason, len(body), body))


@contextlib.contextmanager
def running_server(**kwargs: Any) -> Iterator[StreamServer]:
    """Run a :class:`StreamServer` on its own event loop in a daemon thread for the ``with`` block."""
    srv = StreamServer(**kwargs)
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def _run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(srv.start())
        ready.set()
        loop.run_forever()

    t = threading.Thread(target=_run, name="stream-test-server", daemon=True)
    t.start()
    if not ready.wait(10):
        raise RuntimeError("test server did not start within 10 s")
    try:
        yield srv
    finally:
        asyncio.run_coroutine_threadsafe(srv.stop(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        t.join(5)
        loop.close()


class ServerProcess:
    """A handle on a test server running in its own process (see :func:`spawned_server`)."""

    def __init__(self, proc: subprocess.Popen[str], url: str) -> None:
        self.proc, self.url = proc, url

    def stats(self) -> dict[str, Any]:
        """The server's ``/stats`` (requests, max_inflight, TTFT/ITL as written, its CPU seconds)."""
        import httpx

        return httpx.get(self.url + "/stats", timeout=10, trust_env=False).json()

    def reset(self) -> None:
        import httpx

        httpx.post(self.url + "/stats/reset", timeout=10, trust_env=False)


@contextlib.contextmanager
def spawned_server(ttft_s: float = 0.05, itl_s: float = 0.01, tokens: int = 32, port: int = 0,
                   nagle: bool = False) -> Iterator[ServerProcess]:
    """Run the server in a child process for the ``with`` block (no GIL shared with the client being measured)."""
    cmd = [sys.executable, "-m", "workshop_lib.bench.testserver", "--port", str(port), "--ttft-ms", str(ttft_s * 1e3),
           "--itl-ms", str(itl_s * 1e3), "--tokens", str(tokens)] + (["--nagle"] if nagle else [])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line.startswith("READY "):
            raise RuntimeError(f"test server did not start: {line!r}")
        yield ServerProcess(proc, line.split()[1])
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def main(argv: list[str] | None = None) -> None:
    """``python -m workshop_lib.bench.testserver``: serve until killed; prints ``READY <url>`` once bound."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--ttft-ms", type=float, default=50.0)
    ap.add_argument("--itl-ms", type=float, default=10.0)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--nagle", action="store_true", help="leave Nagle's algorithm on (as the Dynamo frontend does)")
    a = ap.parse_args(argv)

    async def _serve() -> None:
        srv = StreamServer(a.ttft_ms / 1e3, a.itl_ms / 1e3, a.tokens, a.host, a.port, a.nagle)
        await srv.start()
        print(f"READY {srv.url} pid={os.getpid()}", flush=True)
        await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve())


if __name__ == "__main__":  # pragma: no cover
    main()
