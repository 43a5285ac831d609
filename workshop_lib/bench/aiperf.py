"""aiperf interop: the equivalent ``aiperf profile`` command, and aiperf's result files in this kit's columns.

aiperf (0.13.0, NVIDIA's successor of genai-perf) writes ``profile_export_aiperf.json`` / ``.csv`` (summary) and
``profile_export.jsonl`` (one record per request) into its artifact directory. :func:`read_summary` turns the summary
into one row with the same columns as :meth:`workshop_lib.bench.serve.SweepResult.to_frame`;
:func:`read_requests` does the same per request; :func:`read_sweep` reads one artifact directory per level.

Note (LOCAL-LAB.md): with ``HF_HUB_OFFLINE=1`` aiperf rejects a local ``--tokenizer`` directory; :func:`aiperf_env`
drops the offline variables for it (a local directory needs no network anyway).

Example:
    >>> aiperf_command("http://127.0.0.1:8000", "m", 4, 100, 512, 128, "chat", "out/c4")[:6]
    ['aiperf', 'profile', '--model', 'm', '--url', 'http://127.0.0.1:8000']
"""

from __future__ import annotations

import csv
import json
import math
import os
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from workshop_lib.bench.stats import METRICS, STAT_KEYS, summarize
from workshop_lib.errors import ConfigError

SUMMARY_JSON = "profile_export_aiperf.json"
SUMMARY_CSV = "profile_export_aiperf.csv"
REQUESTS_JSONL = "profile_export.jsonl"

# our metric -> aiperf's JSON key and CSV row label
_JSON_KEYS = {"ttft": "time_to_first_token", "itl": "inter_token_latency", "e2e": "request_latency"}
_CSV_ROWS = {"ttft": "Time to First Token (ms)", "itl": "Inter Token Latency (ms)", "e2e": "Request Latency (ms)"}
_CSV_TOTALS = {"output_tokens_per_s": "Output Token Throughput (tokens/sec)",
               "requests_per_s": "Request Throughput (requests/sec)"}


def aiperf_command(url: str, model: str, concurrency: int, requests: int, isl: int, osl: int, endpoint: str = "chat",
                   artifact_dir: str | Path = "aiperf-out", tokenizer: str | Path | None = None,
                   warmup: int = 0, ui: str = "simple", server_token_count: bool = True) -> list[str]:
    """The ``aiperf profile`` argv measuring what ``workshop bench serve`` measures at one concurrency level.

    ``server_token_count`` adds ``--use-server-token-count``: without it aiperf re-tokenizes the streamed text
    (against the lab's Dynamo mocker it counted 16-18 tokens for 16 generated, which skews its ITL).

    Raises:
        ConfigError: an unknown endpoint or a non-positive count.
    """
    if endpoint not in ("chat", "completions"):
        raise ConfigError("endpoint", f"{endpoint!r} is not an endpoint", "use chat or completions")
    for name, v in (("concurrency", concurrency), ("requests", requests), ("isl", isl), ("osl", osl)):
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ConfigError(name, f"{v!r} must be a positive integer", f"set {name}, e.g. 10")
    cmd = ["aiperf", "profile", "--model", model, "--url", url, "--endpoint-type", endpoint, "--streaming",
           "--concurrency", str(concurrency), "--request-count", str(requests), "--isl", str(isl), "--osl", str(osl),
           "--artifact-dir", str(artifact_dir), "--ui", ui]
    if warmup:
        cmd += ["--warmup-request-count", str(warmup)]
    if tokenizer:
        cmd += ["--tokenizer", str(tokenizer)]
    if server_token_count:
        cmd += ["--use-server-token-count"]
    return cmd


def aiperf_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for aiperf: ``base`` (default ``os.environ``) without HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE."""
    env = dict(os.environ if base is None else base)
    for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        env.pop(k, None)
    return env


def shell_line(cmd: Sequence[str]) -> str:
    """``cmd`` as one copy-pasteable shell line."""
    return " ".join(shlex.quote(c) for c in cmd)


def _num(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _dir(path: str | Path) -> Path:
    p = Path(path)
    if not p.exists():
        raise ConfigError(str(p), "no such aiperf artifact directory or file", "give aiperf's --artifact-dir")
    return p


def read_summary(path: str | Path) -> dict[str, Any]:
    """One row (our column names) from ``profile_export_aiperf.json``, or the ``.csv`` when there is no JSON.

    ``path`` is the artifact directory or either file. Raises :class:`ConfigError` when neither file is readable.
    """
    p = _dir(path)
    d = p if p.is_dir() else p.parent
    j, c = (p, None) if p.suffix == ".json" else (d / SUMMARY_JSON, None)
    if p.suffix == ".csv" or not j.exists():
        c = p if p.suffix == ".csv" else d / SUMMARY_CSV
        return _row_from_csv(c)
    try:
        data = json.loads(j.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(str(j), f"not a readable aiperf JSON export ({exc})", "rerun aiperf or pass the .csv") from None
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in _row_from_json(data, str(j)).items()}


def _row_from_json(data: dict[str, Any], where: str) -> dict[str, Any]:
    if not isinstance(data, dict) or "time_to_first_token" not in data:
        raise ConfigError(where, "no time_to_first_token in this file", "give aiperf's profile_export_aiperf.json "
                          "from a --streaming run")
    cfg = data.get("input_config") or {}
    row: dict[str, Any] = {"concurrency": _concurrency(cfg)}
    req = data.get("completed_request_count") or data.get("request_count") or {}
    row["requests"] = int(_num(req.get("avg"))) if req else math.nan
    row["errors"] = _error_count(data.get("error_summary"))
    for metric in METRICS:
        m = data.get(_JSON_KEYS.get(metric, ""), {}) if metric != "tpot" else data.get("inter_token_latency", {})
        row.update({f"{metric}_{k}_ms": _num(m.get("avg" if k == "mean" else k)) for k in STAT_KEYS})
    row["output_tokens_per_s"] = _num((data.get("output_token_throughput") or {}).get("avg"))
    row["requests_per_s"] = _num((data.get("request_throughput") or {}).get("avg"))
    row["duration_s"] = _num((data.get("benchmark_duration") or {}).get("avg"))
    return row


def _error_count(summary: Any) -> int:
    """aiperf's ``error_summary``: a list of error kinds, each with a ``count``."""
    if not isinstance(summary, list):
        return 0
    return sum(int(_num(e.get("count", 1))) if isinstance(e, dict) else 1 for e in summary)


def _concurrency(cfg: dict[str, Any]) -> float:
    for phase in cfg.get("phases") or []:  # aiperf 0.13: input_config.phases[{kind: profiling, concurrency: C}]
        if isinstance(phase, dict) and phase.get("kind") == "profiling" and isinstance(phase.get("concurrency"), int):
            return phase["concurrency"]
    for path in (("loadgen", "concurrency"), ("concurrency",)):
        node: Any = cfg
        for k in path:
            node = node.get(k) if isinstance(node, dict) else None
        if isinstance(node, int | float):
            return node
    return math.nan


def _row_from_csv(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read the aiperf CSV export ({exc.strerror})",
                          "give aiperf's --artifact-dir") from None
    stats: dict[str, dict[str, float]] = {}
    totals: dict[str, float] = {}
    header: list[str] = []
    for rec in csv.reader(text.splitlines()):
        if not rec:
            continue
        if rec[0] == "Metric":
            header = rec
            continue
        if len(header) > 2:
            stats[rec[0]] = {h: _num(v) for h, v in zip(header[1:], rec[1:], strict=False)}
        elif len(rec) >= 2:
            totals[rec[0]] = _num(rec[1])
    if _CSV_ROWS["ttft"] not in stats:
        raise ConfigError(str(path), "no 'Time to First Token (ms)' row", "give the CSV of a --streaming aiperf run")
    count = next((v for k, v in totals.items() if k.startswith("Request Count")), math.nan)
    row: dict[str, Any] = {"concurrency": math.nan, "requests": count, "errors": 0}
    for metric in METRICS:
        s = stats.get(_CSV_ROWS.get(metric, _CSV_ROWS["itl"]), {})
        row.update({f"{metric}_{k}_ms": s.get("avg" if k == "mean" else k, math.nan) for k in STAT_KEYS})
    row["output_tokens_per_s"] = totals.get(_CSV_TOTALS["output_tokens_per_s"], math.nan)
    row["requests_per_s"] = totals.get(_CSV_TOTALS["requests_per_s"], math.nan)
    row["duration_s"] = totals.get("Benchmark Duration (sec)", math.nan)
    return row


def read_requests(path: str | Path) -> pd.DataFrame:
    """Per-request rows from ``profile_export.jsonl`` (profiling phase only): ttft_ms, itl_ms, e2e_ms, output_tokens
    (aiperf's count), server_output_tokens (``usage``), error (``"<code> <type>: <message>"``, None when the request succeeded).

    Raises:
        ConfigError: the file is missing or not JSON lines.
    """
    p = _dir(path)
    f = p / REQUESTS_JSONL if p.is_dir() else p
    rows = []
    n = 0
    try:
        with f.open() as fh:
            for line in fh:
                n += 1
                if line.strip():
                    rec = json.loads(line)
                    if (rec.get("metadata") or {}).get("benchmark_phase", "profiling") == "profiling":
                        rows.append(_request_row(rec))
    except OSError as exc:
        raise ConfigError(str(f), f"cannot read ({exc.strerror})", "give aiperf's profile_export.jsonl") from None
    except ValueError:
        raise ConfigError(f"{f}:{n}", "not a JSON line", "give aiperf's profile_export.jsonl") from None
    return pd.DataFrame(rows, columns=["ttft_ms", "itl_ms", "e2e_ms", "output_tokens", "server_output_tokens", "error"])


def _request_row(rec: dict[str, Any]) -> dict[str, Any]:
    m = rec.get("metrics") or {}

    def val(key: str) -> float:
        v = m.get(key)
        return _num(v.get("value") if isinstance(v, dict) else v)

    err = rec.get("error")
    if isinstance(err, dict):
        err = f"{err.get('code', '')} {err.get('type', '')}: {err.get('message', '')}".strip()
    return {"ttft_ms": val("time_to_first_token"), "itl_ms": val("inter_token_latency"), "e2e_ms": val("request_latency"),
            "output_tokens": val("output_sequence_length"), "server_output_tokens": val("usage_completion_tokens"),
            "error": None if not err else str(err)[:200]}


def summary_from_requests(df: pd.DataFrame, concurrency: int | None = None) -> dict[str, Any]:
    """Recompute mean/p50/p90/p99 from aiperf's per-request rows with this kit's percentile method."""
    ok = df[df["error"].isna()]
    row: dict[str, Any] = {"concurrency": concurrency, "requests": len(df), "errors": int(df["error"].notna().sum())}
    for metric in ("ttft", "itl", "e2e"):
        s = summarize(ok[f"{metric}_ms"].dropna().tolist())
        row.update({f"{metric}_{k}_ms": s[k] for k in STAT_KEYS})
    return row


def read_sweep(dirs: Mapping[int, str | Path] | Sequence[str | Path]) -> pd.DataFrame:
    """One row per aiperf artifact directory (``{concurrency: dir}`` or a list), sorted by concurrency."""
    items = dirs.items() if isinstance(dirs, Mapping) else [(None, d) for d in dirs]
    rows = []
    for conc, d in items:
        row = read_summary(d)
        if conc is not None:
            row["concurrency"] = conc
        rows.append(row)
    return pd.DataFrame(rows).sort_values("concurrency", ignore_index=True)
