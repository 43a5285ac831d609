"""Benchmark: ``workshop diagnose`` against ``grep -cE`` on the same >= 256 MB log built from real fixture lines.

Builds the log at run time in a scratch directory (never committed) by repeating every line of
``../shared/fixtures/logs/*.log`` and the nixlbench fixture (their ``# source:`` headers left out), then times, in one
run and on the same file: the real CLI path (``python -m workshop_lib.cli diagnose FILE --json`` in a child process,
peak RSS from ``wait4``) and GNU grep counting the key patterns, both as one combined ``grep -cE`` and as one
``grep -cE`` per pattern (what a person checking by eye would run). Writes ``results.json`` and ``RESULTS.md`` here.

Run: ``.venv/bin/python benchmarks/logs_vs_grep/run.py [--size-mb 256] [--repeat 1]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
FIXTURES = REPO.parent / "shared" / "fixtures"
GREP_PATTERNS = [
    r"Backend (UCX|LIBFABRIC) was instantiated",
    r"Discovered [0-9]+ (EFA|socket) devices",
    r"Opened fabric|provider efa",
    r"HANDSHAKE received from peer",
    r"data rails",
    r"Prefill router activated successfully",
    r"OOMKilled|Exit Code: +137",
    r"NIXL_ERR_|NIXL_SUCCESS|not found|fi_read still retrying EAGAIN|couldn't get EFA|not available",
    r"ERROR|FATAL|^E[01][0-9]",
]


def build_log(dest: Path, size_mb: int) -> tuple[int, int]:
    """Write at least ``size_mb`` MiB of real fixture lines to ``dest``; returns (bytes, fixture lines per copy)."""
    lines: list[bytes] = []
    for p in sorted([*FIXTURES.glob("logs/*.log"), *FIXTURES.glob("nixlbench/*.log")]):
        lines += [x for x in p.read_bytes().splitlines(keepends=True) if not x.startswith((b"# source:", b"# ..."))]
    blob = b"".join(x if x.endswith(b"\n") else x + b"\n" for x in lines)
    copies = -(-size_mb * 2**20 // len(blob))
    with dest.open("wb") as f:
        for _ in range(copies):
            f.write(blob)
    return dest.stat().st_size, len(lines)


def timed(cmd: list[str]) -> tuple[float, float, int, bytes]:
    """Run ``cmd``; returns (wall seconds, CPU seconds user+sys, peak RSS in KiB of that child, stdout)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = proc.stdout.read() if proc.stdout else b""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - t0, usage.ru_utime + usage.ru_stime, int(usage.ru_maxrss), out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=1, help="timed runs of each command (best is kept)")
    args = ap.parse_args(argv)
    grep = shutil.which("grep")
    if not FIXTURES.is_dir() or not grep:
        print("needs ../shared/fixtures and grep", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="logs_vs_grep.") as tmp:
        log = Path(tmp) / "big.log"
        size, n_fixture_lines = build_log(log, args.size_mb)
        n_lines = int(subprocess.run(["wc", "-l", str(log)], capture_output=True, text=True).stdout.split()[0])
        diag_cmd = [sys.executable, "-m", "workshop_lib.cli", "diagnose", str(log), "--json"]
        combined_cmd = [grep, "-cE", "|".join(f"({p})" for p in GREP_PATTERNS), str(log)]
        runs: dict[str, list[float]] = {k: [] for k in ("diagnose", "grep_combined", "grep_per_pattern",
                                                         "diagnose_cpu", "grep_combined_cpu", "grep_per_pattern_cpu")}
        rss = 0
        verdict: dict = {}
        for _ in range(args.repeat):
            t, cpu, peak, out = timed(diag_cmd)
            runs["diagnose"].append(t)
            runs["diagnose_cpu"].append(cpu)
            rss = max(rss, peak)
            verdict = json.loads(out) if out else {}
            t, cpu, _, _ = timed(combined_cmd)
            runs["grep_combined"].append(t)
            runs["grep_combined_cpu"].append(cpu)
            per = [timed([grep, "-cE", p, str(log)]) for p in GREP_PATTERNS]
            runs["grep_per_pattern"].append(sum(x[0] for x in per))
            runs["grep_per_pattern_cpu"].append(sum(x[1] for x in per))
    best = {k: min(v) for k, v in runs.items()}
    res = {
        "log_bytes": size, "log_lines": n_lines, "fixture_lines_per_copy": n_fixture_lines,
        "diagnose_s": round(best["diagnose"], 2), "grep_combined_s": round(best["grep_combined"], 3),
        "grep_per_pattern_s": round(best["grep_per_pattern"], 3),
        "ratio_vs_grep_combined": round(best["diagnose"] / best["grep_combined"], 1),
        "ratio_vs_grep_per_pattern": round(best["diagnose"] / best["grep_per_pattern"], 1),
        "diagnose_cpu_s": round(best["diagnose_cpu"], 2), "grep_combined_cpu_s": round(best["grep_combined_cpu"], 3),
        "grep_per_pattern_cpu_s": round(best["grep_per_pattern_cpu"], 3),
        "cpu_ratio_vs_grep_combined": round(best["diagnose_cpu"] / max(best["grep_combined_cpu"], 1e-3), 1),
        "diagnose_peak_rss_mb": round(rss / 1024, 1), "diagnose_mb_per_s": round(size / 2**20 / best["diagnose"], 1),
        "goal": {"max_ratio": 3, "max_rss_mb": 300},
        "diagnosis": {k: verdict.get(k) for k in ("nixl_backend", "libfabric_provider", "handshakes", "verdict")},
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "command": f"python benchmarks/logs_vs_grep/run.py --size-mb {args.size_mb} --repeat {args.repeat}",
    }
    (HERE / "results.json").write_text(json.dumps(res, indent=2) + "\n")
    (HERE / "RESULTS.md").write_text(render_md(res))
    print(json.dumps(res, indent=2))
    return 0


def render_md(r: dict) -> str:
    """RESULTS.md from the results dict (numbers only; the analysis lives in NOTES.md beside it)."""
    ok_t = r["ratio_vs_grep_combined"] <= r["goal"]["max_ratio"]
    ok_m = r["diagnose_peak_rss_mb"] <= r["goal"]["max_rss_mb"]
    return f"""# logs_vs_grep: results

Command: `{r['command']}` ({r['machine']['cpus']} CPUs, Python {r['machine']['python']}).
Log: {r['log_bytes'] / 2**20:.0f} MiB, {r['log_lines']:,} lines, every line of the public fixtures repeated.

| what | wall s | CPU s |
|---|---|---|
| `workshop diagnose FILE --json` | {r['diagnose_s']} | {r['diagnose_cpu_s']} |
| one combined `grep -cE` | {r['grep_combined_s']} | {r['grep_combined_cpu_s']} |
| {len(GREP_PATTERNS)} `grep -cE`, one per key pattern | {r['grep_per_pattern_s']} | {r['grep_per_pattern_cpu_s']} |

- ratio diagnose / combined grep: {r['ratio_vs_grep_combined']}x wall, {r['cpu_ratio_vs_grep_combined']}x CPU
  (goal <= {r['goal']['max_ratio']}x: {'met' if ok_t else 'MISSED'}); vs the per-pattern greps {r['ratio_vs_grep_per_pattern']}x wall.
- diagnose peak RSS: {r['diagnose_peak_rss_mb']} MB (goal < {r['goal']['max_rss_mb']} MB: {'met' if ok_m else 'MISSED'});
  throughput {r['diagnose_mb_per_s']} MB/s.
- diagnosis of the big log: {json.dumps(r['diagnosis'])}.

Why the time goal is missed: see NOTES.md.
"""


if __name__ == "__main__":
    sys.exit(main())
