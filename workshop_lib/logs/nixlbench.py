"""nixlbench output: the configuration banner and the result table.

Example:
    >>> r = parse_nixlbench(["Backend (--backend=[UCX,LIBFABRIC]): LIBFABRIC",
    ...                      "Op type (--op_type=[READ,WRITE])                            : WRITE",
    ...                      "Block Size (B)      Batch Size     B/W (GB/Sec)   Avg Lat. (us)",
    ...                      "4096                1              0.112873       36.3"])
    >>> r.config["backend"], r.config["op"], r.table.loc[0, "gbps"]
    ('LIBFABRIC', 'WRITE', np.float64(0.112873))
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from workshop_lib.logs.parser import read_lines, to_text

if TYPE_CHECKING:
    import pandas as pd

NIXLBENCH_COLUMNS: tuple[str, ...] = ("block_size", "batch", "gbps", "lat_avg_us", "prep_avg_us", "prep_p99_us",
                                      "post_avg_us", "post_p99_us", "tx_avg_us", "tx_p99_us")
HEADER_MAP = {
    "block size (b)": "block_size", "batch size": "batch", "b/w (gb/sec)": "gbps", "avg lat. (us)": "lat_avg_us",
    "avg prep (us)": "prep_avg_us", "p99 prep (us)": "prep_p99_us", "avg post (us)": "post_avg_us",
    "p99 post (us)": "post_p99_us", "avg tx (us)": "tx_avg_us", "p99 tx (us)": "tx_p99_us",
}
_CONFIG_RE = re.compile(r"^(?P<label>[A-Z][^:(]*?)\s*(?:\(--(?P<flag>\w+)(?:=[^)]*)?\))?\s*:\s*(?P<value>\S.*?)\s*$")
_WORKER_RE = re.compile(r"Init nixl worker, dev (?P<dev>\S+) rank (?P<rank>\d+), type (?P<role>\w+), hostname "
                        r"(?P<hostname>[^,\s]+)")
_NUM_RE = re.compile(r"^[\d.]+$")


@dataclass
class NixlbenchResult:
    """``config`` (banner values keyed by flag, plus backend/op/mem/role), ``table`` (:data:`NIXLBENCH_COLUMNS`)."""

    config: dict
    table: pd.DataFrame
    source: str = "<stream>"

    def to_dict(self) -> dict:
        return {"config": self.config, "rows": self.table.to_dict("records")}


def _value(v: str) -> int | str:
    return int(v) if v.isdigit() else v


def parse_nixlbench(path_or_lines: str | Path | Iterable[str | bytes]) -> NixlbenchResult:
    """Parse a nixlbench log (a path, or lines). A target-side log gives the config and no rows.

    Raises:
        LogParseError: the path is missing, a directory or unreadable.
    """
    source = "<stream>"
    if isinstance(path_or_lines, str | Path):
        source, lines = str(path_or_lines), read_lines(path_or_lines)
    else:
        lines = path_or_lines
    config: dict = {}
    header: list[str | None] | None = None
    rows: list[dict] = []
    for raw in lines:
        text = to_text(raw).strip()
        if not text:
            continue
        if header is None and text.startswith("Block Size"):
            header = [HEADER_MAP.get(h.strip().lower()) for h in re.split(r"\s{2,}", text)]
            continue
        if header is not None:
            cells = text.split()
            if len(cells) == len(header) and all(_NUM_RE.match(c) for c in cells):
                rows.append({col: float(c) for col, c in zip(header, cells, strict=True) if col})
            continue
        m = _WORKER_RE.search(text)
        if m:
            config.update(role=m["role"], hostname=m["hostname"], rank=int(m["rank"]), device=m["dev"])
            continue
        m = _CONFIG_RE.match(text)
        if m and (m["flag"] or m["label"].startswith("ETCD Endpoint")):
            key = m["flag"] or re.sub(r"\W+", "_", m["label"].strip().lower())
            config[key] = _value(m["value"])
    if "op_type" in config:
        config["op"] = config["op_type"]
    if "initiator_seg_type" in config or "target_seg_type" in config:
        config["mem"] = f"{config.get('initiator_seg_type', '?')}->{config.get('target_seg_type', '?')}"
    import pandas as pd

    table = pd.DataFrame(rows, columns=list(NIXLBENCH_COLUMNS)).astype("float64")
    for col in ("block_size", "batch"):
        table[col] = table[col].astype("Int64")
    return NixlbenchResult(config, table, source)
