"""Moved: the kit's one streaming client is :mod:`workshop_lib.bench.client` (import ``chat``, ``ChatResult`` from
there). This name stays only until ``lab/serving.py`` and ``targets/eks.py`` import it from there; it holds no code."""

from workshop_lib.bench.client import ChatResult, chat, parse_sse_line, request_body

__all__ = ["ChatResult", "chat", "parse_sse_line", "request_body"]
