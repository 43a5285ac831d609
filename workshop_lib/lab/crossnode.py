"""Evidence that the KV cache crossed the network between the lab's two "nodes" (``lab up --netns``).

Around one completion it reads each worker veth's byte counters (``ip -s link``, inside the namespace) and the decode
worker's ``vllm:nixl_*`` counters: the KV bytes NIXL moved must show up on the prefill veth's transmit side and the
decode veth's receive side (the two workers have no other way to reach each other), with 0 failed transfers.

Example:
    >>> ev = kv_over_veth(Lab())                                                      # doctest: +SKIP
    >>> ev["nixl_bytes"] > 0 and ev["prefill_tx_bytes"] >= ev["nixl_bytes"]          # doctest: +SKIP
    True
"""

from __future__ import annotations

import time
from typing import Any

from workshop_lib.bench.client import chat
from workshop_lib.errors import LabError
from workshop_lib.lab.kvmetrics import nixl_totals

PROMPT = "Explain in one paragraph how a KV cache moves from a prefill worker to a decode worker over the network."


def kv_over_veth(lab: Any, prompt: str = PROMPT, max_tokens: int = 8, timeout: float = 180.0) -> dict[str, Any]:
    """One completion through the running ``--netns`` lab with the veth and NIXL counters read before and after.

    Returns ``{"ok", "tokens", "seconds", "nixl_bytes", "nixl_transfers", "nixl_failed", "prefill_tx_bytes",
    "prefill_rx_bytes", "decode_rx_bytes", "decode_tx_bytes", "crossed"}``, where ``crossed`` is True when NIXL moved
    bytes, none failed, and at least that many bytes left the prefill veth and reached the decode veth.

    Raises:
        LabError: the lab is not running in two network namespaces, or its decode worker has no metrics.
    """
    st = lab.status()
    if not st.net:
        raise LabError("lab status", "the running lab is not in two network namespaces",
                       "workshop lab down && workshop lab up --engine vllm --netns")  # fmt: skip
    metrics = (st.processes.get("decode") and st.processes["decode"].metrics_url) or None
    if not metrics:
        raise LabError("decode worker", "no metrics URL (is it the real engine?)", "workshop lab up --engine vllm")
    kv0, veth0 = nixl_totals(metrics), lab.veth_counters() or {}
    t0 = time.monotonic()
    res = chat(str(st.frontend_url), str(st.model), prompt, stream=True, max_tokens=max_tokens, timeout=timeout)
    seconds = time.monotonic() - t0
    kv1, veth1 = nixl_totals(metrics), lab.veth_counters() or {}

    def delta(role: str, key: str) -> int:
        return int(veth1.get(role, {}).get(key, 0) - veth0.get(role, {}).get(key, 0))

    out = {
        "ok": res.tokens > 0, "tokens": res.tokens, "seconds": round(seconds, 3),
        "nixl_bytes": int(kv1.get("bytes_transferred", 0) - kv0.get("bytes_transferred", 0)),
        "nixl_transfers": int(kv1.get("transfers", 0) - kv0.get("transfers", 0)),
        "nixl_failed": int(kv1.get("failed_transfers", 0) - kv0.get("failed_transfers", 0)),
        "prefill_tx_bytes": delta("prefill", "tx_bytes"), "prefill_rx_bytes": delta("prefill", "rx_bytes"),
        "decode_rx_bytes": delta("decode", "rx_bytes"), "decode_tx_bytes": delta("decode", "tx_bytes"),
        "namespaces": dict(st.net.get("namespaces", {})), "addrs": dict(st.net.get("addrs", {})),
    }  # fmt: skip
    out["crossed"] = bool(out["ok"] and out["nixl_bytes"] > 0 and out["nixl_failed"] == 0
                          and out["prefill_tx_bytes"] >= out["nixl_bytes"]
                          and out["decode_rx_bytes"] >= out["nixl_bytes"])  # fmt: skip
    return out
