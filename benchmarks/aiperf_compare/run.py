"""This kit's client vs aiperf 0.13.0, side by side against the same local Dynamo 0.9.0 frontend.

The serving lab (etcd, NATS, Dynamo frontend, mocker prefill + decode workers; ``workshop_lib.lab.serving.Lab``) is
started if it is not running. At each concurrency level both tools run as child processes with the same load (chat,
streaming, ISL/OSL, request count, warm-up); the order alternates per level. Recorded per tool: TTFT p50/p99, ITL
p50, output tokens/s, errors, and the tool's CPU seconds (whole process tree, user + system, ``RUSAGE_CHILDREN``)
per 1000 requests. The frontend's own mean TTFT (``dynamo_frontend_time_to_first_token_seconds`` sum/count over the
run, from ``/metrics``) is the server-side reference.

Writes ``results.json`` and ``RESULTS.md`` beside this file; scratch output goes to ``scratch/`` (git-ignored).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from workshop_lib.paths import repo_root

HERE = Path(__file__).resolve().parent
REPO = repo_root()
SCRATCH = HERE / "scratch"
AIPERF = REPO / ".lab" / "aiperf-venv" / "bin" / "aiperf"
LEVELS = {1: 40, 8: 160, 32: 320}  # concurrency: measured requests
ISL, OSL = 128, 32
_METRIC = re.compile(r"^dynamo_frontend_time_to_first_token_seconds_(sum|count)(?:\{[^}]*\})?\s+([0-9.eE+-]+)", re.M)


def _child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _frontend_ttft(url: str) -> tuple[float, float]:
    """(sum seconds, count) of the frontend's TTFT histogram, summed over label sets."""
    text = httpx.get(url + "/metrics", timeout=10, trust_env=False).text
    tot = {"sum": 0.0, "count": 0.0}
    for kind, value in _METRIC.findall(text):
        tot[kind] += float(value)
    return tot["sum"], tot["count"]


def _run(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> tuple[int, float, float]:
    cpu0, t0 = _child_cpu(), time.monotonic()
    with open(log, "w") as fh:
        rc = subprocess.run(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, check=False).returncode
    return rc, _child_cpu() - cpu0, time.monotonic() - t0


def run_tool(tool: str, url: str, model: str, conc: int, n: int) -> dict[str, Any]:
    from workshop_lib.bench.aiperf import aiperf_command, aiperf_env, read_summary

    s0 = _frontend_ttft(url)
    if tool == "aiperf":
        art = SCRATCH / f"aiperf-c{conc}"
        cmd = aiperf_command(url, model, conc, n, ISL, OSL, "chat", art, model, warmup=conc)
        cmd[0] = str(AIPERF)
        rc, cpu, wall = _run(cmd, SCRATCH / f"aiperf-c{conc}.log", aiperf_env())
        row = read_summary(art) if rc == 0 else {}
        name = "aiperf 0.13.0"
    else:
        out = SCRATCH / f"ours-c{conc}.json"
        cmd = [sys.executable, "-m", "workshop_lib.cli", "bench", "serve", "--url", url, "--model", model,
               "--concurrency", str(conc), "--requests", str(n), "--isl", str(ISL), "--osl", str(OSL), "--warmup",
               str(conc), "--tokenizer", model, "--json", str(out), "--quiet"]
        rc, cpu, wall = _run(cmd, SCRATCH / f"ours-c{conc}.log")
        row = {}
        if rc == 0:
            run = json.loads(out.read_text())["runs"][0]
            row = {"errors": run["errors"], "ttft_p50_ms": run["ttft_ms"]["p50"], "ttft_p99_ms": run["ttft_ms"]["p99"],
                   "itl_p50_ms": run["itl_ms"]["p50"], "output_tokens_per_s": run["output_tokens_per_s"]}
        name = "workshop bench serve"
    s1 = _frontend_ttft(url)
    dcount = s1[1] - s0[1]
    return {"tool": name, "concurrency": conc, "requests": n, "rc": rc, "errors": row.get("errors"),
            "ttft_p50_ms": _r(row.get("ttft_p50_ms")), "ttft_p99_ms": _r(row.get("ttft_p99_ms")),
            "itl_p50_ms": _r(row.get("itl_p50_ms")), "output_tokens_per_s": _r(row.get("output_tokens_per_s")),
            "cpu_s": round(cpu, 2), "cpu_s_per_1000": round(cpu / (n + conc) * 1000, 2), "wall_s": round(wall, 1),
            "frontend_ttft_mean_ms": round((s1[0] - s0[0]) / dcount * 1e3, 2) if dcount else None,
            "frontend_requests": int(dcount)}


def _r(v: Any) -> Any:
    return round(v, 2) if isinstance(v, float) else v


def _markdown(res: dict[str, Any]) -> str:
    m = res["meta"]
    out = [
        "# aiperf vs `workshop bench serve` against the local Dynamo frontend",
        "",
        f"Run {m['date']} on {m['host']} ({m['cpus']} CPUs, load average before/after {m['loadavg_before']} / "
        f"{m['loadavg_after']}). Dynamo {m['dynamo']} frontend + mocker prefill/decode (local lab), chat, streaming, "
        f"ISL {m['isl']} / OSL {m['osl']}. Rerun: `python -m benchmarks aiperf_compare`; rebuild this page from results.json: "
        "`python benchmarks/aiperf_compare/run.py --report`.",
        "",
        "| tool | conc | requests | errors | TTFT p50 | TTFT p99 | ITL p50 | output tok/s | frontend TTFT mean | "
        "CPU s | CPU s / 1000 req |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res["runs"]:
        out.append(f"| {r['tool']} | {r['concurrency']} | {r['requests']} | {r['errors']} | {r['ttft_p50_ms']} | "
                   f"{r['ttft_p99_ms']} | {r['itl_p50_ms']} | {r['output_tokens_per_s']} | "
                   f"{r['frontend_ttft_mean_ms']} | {r['cpu_s']} | {r['cpu_s_per_1000']} |")
    out += ["", "Latencies in ms. CPU is the tool's whole process tree, interpreter start included. The frontend's "
            "mean TTFT is measured inside Dynamo, so it excludes the network and the client.", "", "## Findings", ""]
    out += _notes(res["runs"])
    return "\n".join(out) + "\n"


KIT, AIPERF = "workshop bench serve", "aiperf 0.13.0"


def _range(values: list[float], fmt: str = "{:.1f}") -> str:
    """``"3.5-4.7"`` (or one value) from the measured values, for findings text."""
    lo, hi = min(values), max(values)
    return fmt.format(lo) if fmt.format(lo) == fmt.format(hi) else f"{fmt.format(lo)}-{fmt.format(hi)}"


def _notes(runs: list[dict[str, Any]]) -> list[str]:
    """The findings, computed from ``runs`` (every number below is this run's): rerun, and the text follows."""
    notes = []
    by = {(r["tool"], r["concurrency"]): r for r in runs}
    pairs = []
    for conc in sorted({r["concurrency"] for r in runs}):
        a, o = by.get((AIPERF, conc)), by.get((KIT, conc))
        if not a or not o or a["ttft_p50_ms"] is None or o["ttft_p50_ms"] is None:
            notes.append(f"- concurrency {conc}: a tool failed (see scratch/ logs)")
            continue
        pairs.append((conc, o, a))
        cheaper = a["cpu_s_per_1000"] / o["cpu_s_per_1000"] if o["cpu_s_per_1000"] else float("nan")
        notes.append(
            f"- concurrency {conc}: TTFT p50 {o['ttft_p50_ms']} ms (kit) vs {a['ttft_p50_ms']} ms (aiperf), while the "
            f"frontend's own mean TTFT was {o['frontend_ttft_mean_ms']} / {a['frontend_ttft_mean_ms']} ms during those "
            f"runs; ITL p50 {o['itl_p50_ms']} vs {a['itl_p50_ms']} ms; {o['output_tokens_per_s']} vs "
            f"{a['output_tokens_per_s']} tok/s; the kit's client used "
            f"{f'{cheaper:.1f}x less' if cheaper >= 1 else f'{1 / cheaper:.1f}x more'} CPU per request.")
    if not pairs:
        return notes
    notes += ["", "Where each tool stands (computed from the rows above; the client, the lab and the other tool's "
              "leftovers share this machine's CPUs, so a client's own CPU use slows the server it measures):", ""]
    ratios = [a["cpu_s_per_1000"] / o["cpu_s_per_1000"] for _, o, a in pairs if o["cpu_s_per_1000"]]
    if ratios:
        notes.append(f"- CPU per request: aiperf used {_range(ratios)}x the kit client's "
                     f"({'more' if min(ratios) >= 1 else 'not always more'}).")
    for conc, o, a in pairs:
        fe_o, fe_a = o.get("frontend_ttft_mean_ms"), a.get("frontend_ttft_mean_ms")
        parts = [f"aiperf drove {a['output_tokens_per_s'] / o['output_tokens_per_s']:.0%} of the kit's throughput"
                 if o["output_tokens_per_s"] else "the kit's throughput was 0"]
        if fe_a:
            parts.append(f"its TTFT p50 was {a['ttft_p50_ms'] / fe_a:.1f}x the frontend's mean during its run")
        if fe_o:
            parts.append(f"the kit's was {o['ttft_p50_ms'] / fe_o:.1f}x "
                         f"({o['ttft_p50_ms'] - fe_o:+.2f} ms) the frontend's mean during its own")
        notes.append(f"- concurrency {conc}: " + "; ".join(parts) + ".")
    zero_itl = [conc for conc, _, a in pairs if a["itl_p50_ms"] == 0]
    if zero_itl:
        notes.append(f"- aiperf reported ITL p50 0 at concurrency {', '.join(map(str, zero_itl))}: its per-request ITL "
                     "when the tokens of a request arrived in one burst, not a zero inter-token latency.")
    notes += ["", "Why the kit's raw client sets TCP_QUICKACK after every read: the Dynamo frontend writes each SSE "
              "event as a small TCP segment with Nagle's algorithm on, so a client that delays its ACKs (the Linux "
              "default) can see the first token up to the delayed-ACK timeout late. The httpx transport cannot set it. "
              "This run does not measure the effect (no run without QUICKACK is recorded here); the TTFT rows above "
              "are with it."]
    return notes


def main() -> int:
    from workshop_lib import versions
    from workshop_lib.lab.serving import Lab

    if not AIPERF.exists():
        print(f"aiperf_compare: skipped, {AIPERF} missing (python -m venv .lab/aiperf-venv && "
              ".lab/aiperf-venv/bin/pip install aiperf==0.13.0)")
        return 0
    SCRATCH.mkdir(exist_ok=True)
    lab = Lab()
    was_running = lab.status().running
    st = lab.up(progress=False)
    load0 = os.getloadavg()
    runs = []
    try:
        for i, (conc, n) in enumerate(LEVELS.items()):
            for tool in (("ours", "aiperf") if i % 2 == 0 else ("aiperf", "ours")):
                r = run_tool(tool, st.frontend_url, st.model, conc, n)
                print(f"  {r['tool']:<22} c={conc:<3} TTFT p50 {r['ttft_p50_ms']} ITL p50 {r['itl_p50_ms']} "
                      f"tok/s {r['output_tokens_per_s']} CPU {r['cpu_s']} s", flush=True)
                runs.append(r)
    finally:
        if not was_running:
            lab.down()
    runs.sort(key=lambda r: (r["concurrency"], r["tool"]))
    res = {"meta": {"date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"), "host": platform.node(),
                    "cpus": len(os.sched_getaffinity(0)), "loadavg_before": [round(x, 2) for x in load0],
                    "loadavg_after": [round(x, 2) for x in os.getloadavg()], "dynamo": versions.DYNAMO,
                    "aiperf": "0.13.0", "isl": ISL, "osl": OSL, "levels": LEVELS},
           "runs": runs}
    (HERE / "results.json").write_text(json.dumps(res, indent=2) + "\n")
    (HERE / "RESULTS.md").write_text(_markdown(res))
    print("\n".join(_notes(runs)))
    return 0


def report() -> str:
    """RESULTS.md rebuilt from the recorded ``results.json`` (no rerun): ``python benchmarks/aiperf_compare/run.py
    --report``."""
    return _markdown(json.loads((HERE / "results.json").read_text()))


if __name__ == "__main__":
    if sys.argv[1:] == ["--report"]:
        (HERE / "RESULTS.md").write_text(report())
        sys.exit(0)
    sys.exit(main())
