"""vLLM's NIXL transfer metrics, read from a worker's Dynamo system port (``/metrics``, Prometheus text).

The decode worker's NixlConnector records, per transfer it initiates (vLLM 0.14.1, ``NixlKVConnectorStats``;
``../shared/reference/LOCAL-LAB.md``): ``vllm:nixl_xfer_time_seconds`` (histogram), ``vllm:nixl_post_time_seconds``,
``vllm:nixl_bytes_transferred`` and ``vllm:nixl_num_descriptors`` (histograms of per-transfer values) and
``vllm:nixl_num_failed_transfers_total``.

Example:
    >>> text = 'vllm:nixl_bytes_transferred_sum{engine="0"} 163840.0\\nvllm:nixl_bytes_transferred_count{engine="0"} 4.0\\n'
    >>> parse_nixl(text)["bytes_transferred"], parse_nixl(text)["transfers"]
    (163840.0, 4.0)
"""

from __future__ import annotations

import re

import httpx

_LINE = re.compile(r"^(vllm:nixl_[a-z_]+?)(?:\{[^}]*\})?\s+([-+0-9.eE]+|NaN)$")

FIELDS = {
    "vllm:nixl_bytes_transferred_sum": "bytes_transferred",
    "vllm:nixl_bytes_transferred_count": "transfers",
    "vllm:nixl_num_descriptors_sum": "descriptors",
    "vllm:nixl_xfer_time_seconds_sum": "xfer_time_s",
    "vllm:nixl_post_time_seconds_sum": "post_time_s",
    "vllm:nixl_num_failed_transfers_total": "failed_transfers",
    "vllm:nixl_num_failed_notifications_total": "failed_notifications",
}


def parse_nixl(text: str) -> dict[str, float]:
    """Totals of the ``vllm:nixl_*`` series in a Prometheus text page (summed over label sets)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = _LINE.match(line.strip())
        if m and m.group(1) in FIELDS:
            key = FIELDS[m.group(1)]
            out[key] = out.get(key, 0.0) + float(m.group(2))
    return out


def nixl_totals(metrics_url: str, timeout: float = 3.0) -> dict[str, float] | None:
    """:func:`parse_nixl` of ``metrics_url``; None when it does not answer. Missing series read 0 (no transfer yet)."""
    try:
        text = httpx.get(metrics_url, timeout=timeout).text
    except httpx.HTTPError:
        return None
    got = parse_nixl(text)
    return {v: got.get(v, 0.0) for v in FIELDS.values()}
