"""A small OpenAI chat-completions client for the lab's frontend that times what the workshop teaches (TTFT, ITL).

Example:
    >>> r = chat("http://127.0.0.1:8000", "/path/model", "What is NIXL?", stream=True)   # doctest: +SKIP
    >>> r.tokens, r.ttft_s < r.total_s                                                   # doctest: +SKIP
    (32, True)
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import httpx

from workshop_lib.errors import LabError


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


def request_body(model: str, prompt: str, *, stream: bool, max_tokens: int) -> dict:
    """The JSON body of a chat completion request.

    Example:
        >>> request_body("m", "hi", stream=True, max_tokens=8)["stream_options"]
        {'include_usage': True}
    """
    body: dict = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens}
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def parse_sse_line(line: str) -> dict | str | None:
    """One server-sent-events line: the parsed ``data:`` JSON, the string ``"[DONE]"``, or None for anything else.

    Example:
        >>> parse_sse_line('data: {"a": 1}'), parse_sse_line("data: [DONE]"), parse_sse_line("")
        ({'a': 1}, '[DONE]', None)
    """
    if not line.startswith("data:"):
        return None
    data = line[5:].strip()
    if data == "[DONE]":
        return data
    try:
        return json.loads(data)
    except ValueError:
        return None


def chat(url: str, model: str, prompt: str, *, stream: bool, max_tokens: int = 32, timeout: float = 30) -> ChatResult:
    """Send one chat completion to ``url`` (the frontend base URL) and time it.

    Raises:
        LabError: the frontend is unreachable, answered an HTTP error, or the stream ended without ``[DONE]``.
    """
    endpoint = f"{url.rstrip('/')}/v1/chat/completions"
    body = request_body(model, prompt, stream=stream, max_tokens=max_tokens)
    t0 = time.perf_counter()
    try:
        with httpx.Client(timeout=timeout) as client:
            if not stream:
                r = client.post(endpoint, json=body)
                _check(r, endpoint)
                data = r.json()
                total = time.perf_counter() - t0
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
        raise LabError(
            f"POST {endpoint}",
            f"HTTP {r.status_code}: {r.text[:300]}",
            _http_fix(r.status_code, endpoint),
        )


def _stream(client: httpx.Client, endpoint: str, body: dict, t0: float) -> ChatResult:
    events: list[dict] = []
    parts: list[str] = []
    times: list[float] = []
    usage_tokens: int | None = None
    finish: str | None = None
    done = False
    with client.stream("POST", endpoint, json=body) as r:
        _check(r, endpoint)
        for line in r.iter_lines():
            ev = parse_sse_line(line)
            if ev is None:
                continue
            if ev == "[DONE]":
                done = True
                break
            assert isinstance(ev, dict)
            events.append(ev)
            for ch in ev.get("choices") or []:
                content = (ch.get("delta") or {}).get("content")
                if content:
                    parts.append(content)
                    times.append(time.perf_counter() - t0)
                finish = ch.get("finish_reason") or finish
            if ev.get("usage"):
                usage_tokens = int(ev["usage"].get("completion_tokens") or 0)
    total = time.perf_counter() - t0
    if not done:
        raise LabError(f"POST {endpoint}", "the stream ended without `data: [DONE]`", "read the frontend log")
    itl = (times[-1] - times[0]) / (len(times) - 1) if len(times) > 1 else None
    tokens = usage_tokens if usage_tokens is not None else len(parts)
    return ChatResult("".join(parts), tokens, times[0] if times else None, total, events, itl, finish)
