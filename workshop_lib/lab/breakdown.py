"""Where a request's time to first token goes in the disaggregated lab: prefill, KV transfer, first decode step.

Requests are sent one at a time (streamed ``/v1/chat/completions``), and each worker's Prometheus page
(its ``DYN_SYSTEM_PORT`` ``/metrics``) is read before and after each, so the differences of the counters belong to
that request alone:

- ``prefill_s``: the prefill worker's ``vllm:request_prefill_time_seconds`` (its engine computing the prompt's KV);
- ``kv_transfer_s``: the decode worker's ``vllm:nixl_xfer_time_seconds`` (NIXL reading the blocks from the prefill
  worker), with ``kv_bytes`` (``vllm:nixl_bytes_transferred``) and ``descriptors`` (``vllm:nixl_num_descriptors``);
- ``first_decode_s``: the decode worker's own ``vllm:time_to_first_token_seconds`` minus the transfer (its first
  step once the KV cache is there; it also holds the scheduling of the remote-KV request);
- ``other_s``: the rest of the client's TTFT (frontend, routing, tokenization, the two hops).

Example:
    >>> split(1.0, {"prefill_s": 0.2, "kv_transfer_s": 0.1, "decode_ttft_s": 0.5})["other_s"]
    0.3
"""

from __future__ import annotations

import re
import statistics
from typing import Any

import httpx

from workshop_lib.errors import LabError

_SUM = re.compile(r"^([a-zA-Z_:]+)(?:\{[^}]*\})?\s+([-+0-9.eE]+)$")
PREFILL_SERIES = {"vllm:request_prefill_time_seconds_sum": "prefill_s"}
DECODE_SERIES = {
    "vllm:nixl_xfer_time_seconds_sum": "kv_transfer_s",
    "vllm:nixl_bytes_transferred_sum": "kv_bytes",
    "vllm:nixl_num_descriptors_sum": "descriptors",
    "vllm:time_to_first_token_seconds_sum": "decode_ttft_s",
}


def scrape(url: str, series: dict[str, str]) -> dict[str, float]:
    """Sums of ``series`` (summed over label sets) on the Prometheus page ``url``."""
    try:
        text = httpx.get(url, timeout=5.0).text
    except httpx.HTTPError as exc:
        raise LabError(url, f"metrics did not answer ({exc})", "check `workshop lab status`") from exc
    out = dict.fromkeys(series.values(), 0.0)
    for line in text.splitlines():
        m = _SUM.match(line.strip())
        if m and m.group(1) in series:
            out[series[m.group(1)]] += float(m.group(2))
    return out


def split(ttft_s: float, d: dict[str, float]) -> dict[str, float]:
    """The TTFT split of one request from its metric differences ``d`` (pure)."""
    first_decode = max(d.get("decode_ttft_s", 0.0) - d.get("kv_transfer_s", 0.0), 0.0)
    parts = {
        "ttft_s": round(ttft_s, 6),
        "prefill_s": round(d.get("prefill_s", 0.0), 6),
        "kv_transfer_s": round(d.get("kv_transfer_s", 0.0), 6),
        "first_decode_s": round(first_decode, 6),
    }
    parts["other_s"] = round(max(ttft_s - parts["prefill_s"] - parts["kv_transfer_s"] - first_decode, 0.0), 6)
    return parts


def ttft_breakdown(lab: Any = None, n: int = 8, max_tokens: int = 8) -> list[dict[str, Any]]:
    """Send ``n`` streamed chat requests one by one to the running real-engine lab; one record per request."""
    from workshop_lib.bench.client import chat
    from workshop_lib.lab.serving import Lab

    lab = lab or Lab()
    st = lab.status()
    if not st.healthy or st.engine != "vllm":
        raise LabError("lab breakdown", "needs a healthy lab on the real engine (the mocker moves no KV bytes)",
                       "run `workshop lab up --engine vllm`")  # fmt: skip
    pre, dec = st.processes["prefill"].metrics_url, st.processes["decode"].metrics_url
    if not pre or not dec:
        raise LabError("lab breakdown", "the workers' metrics URLs are unknown", "restart with `workshop lab up`")
    out = []
    for i in range(n):
        b_p, b_d = scrape(pre, PREFILL_SERIES), scrape(dec, DECODE_SERIES)
        r = chat(str(st.frontend_url), str(st.model), f"Request {i}: how does the KV cache travel?", stream=True,
                 max_tokens=max_tokens, timeout=120)  # fmt: skip
        a_p, a_d = scrape(pre, PREFILL_SERIES), scrape(dec, DECODE_SERIES)
        d = {k: a_p[k] - b_p[k] for k in a_p} | {k: a_d[k] - b_d[k] for k in a_d}
        rec = {"request": i, **split(float(r.ttft_s or 0.0), d), "kv_bytes": int(d["kv_bytes"]),
               "descriptors": int(d["descriptors"]), "tokens": r.tokens, "engine": st.engine,
               "kv_backend": st.kv_backend}  # fmt: skip
        out.append(rec)
    return out


def summary(records: list[dict[str, Any]]) -> dict[str, float]:
    """Medians (p50) of each part over ``records``."""
    keys = ("ttft_s", "prefill_s", "kv_transfer_s", "first_decode_s", "other_s", "kv_bytes", "descriptors")
    return {k: round(statistics.median(r[k] for r in records), 6) for k in keys} if records else {}
