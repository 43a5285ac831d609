"""The README's "What the kit measured" table, generated from the recorded runs (never typed by hand).

Each row reads the record its benchmark wrote (``benchmarks/<name>/results.json`` and friends) and quotes every run
or the median, never the best. A row whose record does not exist says "no record yet". The table lives in README.md
between ``<!-- measured:begin -->`` and ``<!-- measured:end -->``; a unit test fails when it drifts from the records.

Usage::

    python -m benchmarks.measured           # rewrite the table in README.md from the records
    python -m benchmarks.measured --check   # exit 1 (and say which rows) when README.md differs
    python -m benchmarks.measured --print   # print the table
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workshop_lib.parsing import GiB, MiB
from workshop_lib.paths import repo_root

HERE = Path(__file__).resolve().parent
REPO = repo_root()
README = REPO / "README.md"
BEGIN, END = "<!-- measured:begin -->", "<!-- measured:end -->"
NO_RECORD = "no record yet"

Row = tuple[str, str, str]  # what, result, where


def _load(path: Path) -> Any | None:
    """A record's JSON, or None when it does not exist (or cannot be parsed: then the row says so)."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        return {"_unreadable": str(path.relative_to(REPO))}


def _g(value: float) -> str:
    """A figure as recorded, to 3 significant digits (no invented precision)."""
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"


def _runs(rec: Any, key: str) -> list[dict[str, Any]]:
    """``rec[key]`` as a list of runs (a record may hold one run as a mapping, or ``{"runs": [...]}``)."""
    part = rec.get(key) if isinstance(rec, dict) else None
    if isinstance(part, dict):
        part = part.get("runs", [part])
    return [r for r in part or [] if isinstance(r, dict)]


def _median_or_all(values: list[float], unit: str) -> str:
    """All runs when there are at most three, else the median with the range (never only the best)."""
    if len(values) <= 3:
        return " / ".join(_g(v) for v in values) + f" {unit}" + (f" ({len(values)} runs)" if len(values) > 1 else "")
    return (f"median {_g(statistics.median(values))} {unit} over {len(values)} runs "
            f"(range {_g(min(values))}-{_g(max(values))})")


def _date(rec: Any) -> str | None:
    """The day a record was measured (``meta.date``/``meta.started``/``date``), for the record column."""
    if not isinstance(rec, dict):
        return None
    meta = rec.get("meta") if isinstance(rec.get("meta"), dict) else rec
    for key in ("date", "started", "finished", "when"):
        if isinstance(meta.get(key), str) and len(meta[key]) >= 10:
            return meta[key][:10]
    return None


RECORD_FILES = {  # the record column's folder -> the files its row reads (for the run date)
    "quickstart": ["quickstart/results.json"],
    "nixl_vram": ["nixl_vram/results.json", "nixl_vram/results-repeat.json"],
    "client_fidelity": ["client_fidelity/results.json"],
    "aiperf_compare": ["aiperf_compare/results.json"],
    "logs_vs_grep": ["logs_vs_grep/results.json"],
}


# ------------------------------------------------------------------------------------------------ rows
QUICKSTART = HERE / "quickstart" / "results.json"


def _quick(name: str) -> list[dict[str, Any]]:
    """Runs of one quick-start command from ``benchmarks/quickstart/results.json``, as
    ``{"wall_s", "exit_code", "rss_mb", "cpus", ...}``. Reads the quickstart benchmark's own shape
    (``{"cpus", "when", "commands": {name: {"seconds", "exit_code", "peak_rss_tree_bytes"}}}``, one run per file) and a
    list of runs (``{name: {"runs": [...]}}``)."""
    rec = _load(QUICKSTART)
    if not isinstance(rec, dict):
        return []
    out = []
    cmd = (rec.get("commands") or {}).get(name) if isinstance(rec.get("commands"), dict) else None
    if isinstance(cmd, dict) and isinstance(cmd.get("seconds"), (int, float)):
        rss = cmd.get("peak_rss_tree_bytes")
        disk = cmd.get("disk_bytes") if isinstance(cmd.get("disk_bytes"), dict) else {}
        out.append({"wall_s": float(cmd["seconds"]), "exit_code": cmd.get("exit_code"), "cpus": rec.get("cpus"),
                    "rss_mb": rss / MiB if isinstance(rss, (int, float)) and rss else None,
                    "download_bytes": cmd.get("downloaded_bytes"), "disk_total_bytes": disk.get("total"),
                    "disk_venv_bytes": disk.get("venv"), "when": rec.get("when")})
    for r in _runs(rec, {"test": "make_test", "run": "make_run"}.get(name, name)):
        wall = r.get("wall_s", r.get("ready_s", r.get("seconds")))
        if isinstance(wall, (int, float)):
            out.append({**r, "wall_s": float(wall)})
    return out


def _quick_row(what: str, name: str) -> Row:
    where = "`benchmarks/quickstart/`"
    runs = _quick(name)
    if not runs:
        return (what, NO_RECORD, where)
    parts = []
    for engine in dict.fromkeys(str(r.get("engine") or "") for r in runs):
        mine = [r for r in runs if str(r.get("engine") or "") == engine]
        text = (f"{engine}: " if engine else "") + _median_or_all([r["wall_s"] for r in mine], "s")
        rss = [float(r["rss_mb"]) for r in mine if isinstance(r.get("rss_mb"), (int, float))]
        if rss:
            text += f", peak {_median_or_all(rss, 'MB')} RSS"
        install = name in ("run", "test")  # download and disk describe an install, not a lab start
        down = [r["download_bytes"] / GiB for r in mine if install and isinstance(r.get("download_bytes"), (int, float))]
        if down:
            text += f", {_median_or_all([round(d, 2) for d in down], 'GiB')} downloaded (whole machine)"
        disk = [(r["disk_total_bytes"] / GiB, (r.get("disk_venv_bytes") or 0) / GiB) for r in mine
                if install and isinstance(r.get("disk_total_bytes"), (int, float))]
        if disk:
            text += (f", disk {' / '.join(f'{d:.1f}' for d, _ in disk)} GiB (of which .venv "
                     f"{' / '.join(f'{v:.1f}' for _, v in disk)} GiB)")
        parts.append(text)
    text = "; ".join(parts)
    codes = [r.get("exit_code") for r in runs if r.get("exit_code") is not None]
    if codes:
        text += f"; exit code {' / '.join(str(c) for c in codes)}" + ("" if not any(codes) else " (FAILED)")
    counts = [f"{r['passed']} passed, {r.get('skipped', 0)} skipped, {r.get('failed', 0)} failed" for r in runs
              if r.get("passed") is not None]
    if counts:
        text += f"; {' / '.join(dict.fromkeys(counts))}"
    cpus = {r.get("cpus") for r in runs if r.get("cpus")}
    if cpus:
        text += f" ({'/'.join(str(c) for c in sorted(cpus))} cores)"
    return (what, text, where)


def make_test_row() -> Row:
    return _quick_row("`make test` from a clean clone", "test")


def make_run_row() -> Row:
    return _quick_row("`make run` from a clean clone (setup, then the four notebooks)", "run")


def lab_up_row() -> Row:
    return _quick_row("`workshop lab up` (serving lab ready)", "lab_up")


def _vram_at(data: dict[str, Any], size: int, op: str = "READ", mode: str = "one-at-a-time") -> dict[str, Any] | None:
    for run in data.get("runs", []):
        if run.get("backend") != "UCX" or run.get("op") != op or run.get("mode", "one-at-a-time") != mode:
            continue
        for r in run.get("rows", []):
            if int(r["block_size"]) * int(r.get("batch", 1)) == size:
                return r
    return None


def nixl_vram_row() -> Row:
    what = "NIXL VRAM -> VRAM, 2 GPUs of one host, UCX, READ one request at a time"
    where = "`benchmarks/nixl_vram/`"
    records = [rec for rec in (_load(HERE / "nixl_vram" / "results.json"),
                               _load(HERE / "nixl_vram" / "results-repeat.json")) if isinstance(rec, dict)]
    if not records:
        return (what, NO_RECORD, where)
    parts = []
    verified = True
    for size in (64 * MiB, 256 * MiB):
        rows = [r for r in (_vram_at(rec, size) for rec in records) if r]
        if not rows:
            continue
        verified &= all(r.get("verified") for r in rows)
        gbps = " / ".join(_g(r["gbps"]) for r in rows)
        pct = " / ".join(f"{r['pct_of_peer_copy']:.0f}%" for r in rows if r.get("pct_of_peer_copy") is not None)
        parts.append(f"{size // MiB} MiB: {gbps} GB/s ({pct} of a peer copy)")
    if not parts:
        return (what, NO_RECORD, where)
    runs = f"{len(records)} run{'s' if len(records) > 1 else ''}"
    text = f"{'; '.join(parts)} [{runs}, each run's figure]; every block verified: {'yes' if verified else 'NO'}"
    card = (records[0].get("meta", {}).get("nvidia_smi") or [""])[0]
    if card:
        text = f"{str(card).split(',')[0].strip()} x{len(records[0]['meta']['nvidia_smi'])}: " + text
    ref = _load(HERE / "nixl_vram" / "refcopy.json")
    if isinstance(ref, dict) and ref.get("ipc_rows"):
        ipc = {int(r["bytes"]): r.get("ipc-pull") for r in ref["ipc_rows"]}
        got = [f"{_g(ipc[s])}" for s in (64 * MiB, 256 * MiB) if ipc.get(s)]
        if got:
            text += f"; a plain two-process CUDA-IPC copy: {' / '.join(got)} GB/s at 64 / 256 MiB"
    return (what, text, where)


def client_fidelity_row() -> Row:
    what = "`workshop bench serve` TTFT p50 error vs a server with known timing"
    where = "`benchmarks/client_fidelity/`"
    rec = _load(HERE / "client_fidelity" / "results.json")
    if not isinstance(rec, dict) or not rec.get("runs"):
        return (what, NO_RECORD, where)

    def errs(tool: str) -> tuple[list[str], list[str]]:
        rows = [r for r in rec["runs"] if r.get("tool") == tool and r.get("ttft_err_pct") is not None]
        return [f"{r['ttft_err_pct']:+}%" for r in rows], [str(r["concurrency"]) for r in rows]

    kit, levels = errs("workshop bench serve (raw)")
    if not kit:
        return (what, NO_RECORD, where)
    text = f"{' / '.join(kit)} at concurrency {' / '.join(levels)}"
    ai, ai_levels = errs("aiperf 0.13.0")
    if ai:
        text += f" (aiperf 0.13.0: {' / '.join(ai)} at {' / '.join(ai_levels)})"
    tol = rec.get("meta", {}).get("tolerance")
    if tol is not None:
        text += f"; goal within {tol:.0%}: {'met' if rec.get('pass') else 'not met'}"
    return (what, text + "; one run", where)


def aiperf_compare_row() -> Row:
    what = "`workshop bench serve` vs aiperf 0.13.0 on the local Dynamo frontend, CPU per request"
    where = "`benchmarks/aiperf_compare/`"
    rec = _load(HERE / "aiperf_compare" / "results.json")
    if not isinstance(rec, dict) or not rec.get("runs"):
        return (what, NO_RECORD, where)
    by = {(r["tool"], r["concurrency"]): r for r in rec["runs"]}
    ratios, levels = [], []
    for conc in sorted({r["concurrency"] for r in rec["runs"]}):
        a, o = by.get(("aiperf 0.13.0", conc)), by.get(("workshop bench serve", conc))
        if a and o and o.get("cpu_s_per_1000") and a.get("cpu_s_per_1000"):
            ratios.append(f"{a['cpu_s_per_1000'] / o['cpu_s_per_1000']:.1f}x")
            levels.append(str(conc))
    if not ratios:
        return (what, NO_RECORD, where)
    return (what, f"aiperf used {' / '.join(ratios)} the kit client's CPU per request at concurrency "
                  f"{' / '.join(levels)}; one run", where)


def logs_vs_grep_row() -> Row:
    what = "`workshop diagnose` vs `grep -cE` on one large log"
    where = "`benchmarks/logs_vs_grep/`"
    rec = _load(HERE / "logs_vs_grep" / "results.json")
    need = ("ratio_vs_grep_combined", "log_bytes")
    if not isinstance(rec, dict) or any(k not in rec for k in need):
        return (what, NO_RECORD, where)
    goal = rec.get("goal") or {}
    pod = rec.get("pod_log")
    if goal.get("log") == "pod" and isinstance(pod, dict) and pod.get("ratio_vs_grep") is not None:
        met = pod["ratio_vs_grep"] <= goal["max_ratio"] and pod["cpu_ratio_vs_grep"] <= goal["max_ratio"]
        text = (f"{pod['log_bytes'] / MiB:.0f} MiB of real lines as pods print them again (only header numbers, "
                f"addresses and uuids re-drawn): {pod['ratio_vs_grep']}x one combined grep with the rules' keys "
                f"(goal {goal['max_ratio']}x: {'met' if met else 'missed'}), "
                f"{max(pod['peak_rss_mb'], rec.get('diagnose_peak_rss_mb') or 0)} MB peak RSS; "
                f"{rec['ratio_vs_grep_combined']}x on a stress log with every number re-drawn")
        if rec.get("ratio_vs_grep_per_pattern") is not None:
            text += f" ({rec['ratio_vs_grep_per_pattern']}x the per-pattern greps)"
        if rec.get("pool_lines"):
            text += f"; both drawn from {rec['pool_lines']} real lines"
    else:  # a record from before the pod log was the goal's log
        text = f"{rec['log_bytes'] / MiB:.0f} MiB: {rec['ratio_vs_grep_combined']}x one combined grep with the rules' keys"
        if rec.get("ratio_vs_grep_per_pattern") is not None:
            text += f", {rec['ratio_vs_grep_per_pattern']}x the per-pattern greps"
        if goal.get("max_ratio") is not None:
            met = rec["ratio_vs_grep_combined"] <= goal["max_ratio"]
            text += f" (goal {goal['max_ratio']}x: {'met' if met else 'missed'})"
        if rec.get("diagnose_peak_rss_mb") is not None:
            text += f", {rec['diagnose_peak_rss_mb']} MB peak RSS"
        if rec.get("pool_lines"):
            text += f"; input drawn from {rec['pool_lines']} real lines, every id and number re-drawn"
        if isinstance(pod, dict) and pod.get("ratio_vs_grep") is not None:
            text += f"; {pod['ratio_vs_grep']}x on a pod-like log (only header numbers, addresses and uuids re-drawn)"
        elif rec.get("fixture_lines_per_copy"):
            text += f"; input repeats {rec['fixture_lines_per_copy']} fixture lines"
    repeat = re.search(r"--repeat (\d+)", str(rec.get("command", "")))
    if repeat:
        text += f" (times: median of {repeat[1]} runs)"
    return (what, text, where)


ROWS: list[Callable[[], Row]] = [make_test_row, make_run_row, lab_up_row, nixl_vram_row, client_fidelity_row, aiperf_compare_row,
                                 logs_vs_grep_row]


def table() -> str:
    """The markdown table (header included), one row per record."""
    lines = ["| what | result (from the record) | record (rerun) |", "|---|---|---|"]
    for w, r, p in (row() for row in ROWS):
        name = p.strip("`/").split("/")[-1]
        dates = sorted({d for f in RECORD_FILES.get(name, []) if (d := _date(_load(HERE / f)))}) if r != NO_RECORD else []
        when = f", run {' and '.join(dates)}" if dates else ""
        lines.append(f"| {w} | {r} | {p}{when} (`python -m benchmarks {name}`) |")
    return "\n".join(lines)


def splice(text: str, body: str) -> str:
    """``text`` with the part between the markers replaced by ``body``.

    Raises:
        ValueError: the markers are missing or out of order.
    """
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise ValueError(f"README.md needs one {BEGIN} ... {END} block around the measured table")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{body}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.measured", description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 when README.md's table differs from the records")
    ap.add_argument("--print", action="store_true", help="print the table only")
    ap.add_argument("--readme", type=Path, default=README)
    a = ap.parse_args(argv)
    body = table()
    if a.print:
        print(body)
        return 0
    try:
        old = a.readme.read_text()
        new = splice(old, body)
    except (OSError, ValueError) as exc:
        print(f"error: {a.readme}: {exc}", file=sys.stderr)
        return 1
    if a.check:
        if new != old:
            print(f"{a.readme}: the measured table differs from the records; run `python -m benchmarks.measured`",
                  file=sys.stderr)
            return 1
        return 0
    if new != old:
        a.readme.write_text(new)
        print(f"rewrote the measured table in {a.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
