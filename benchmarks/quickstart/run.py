"""Quick-start cost: the README's two commands (``make run``, ``make test``) from a clean clone, measured.

For each command, in a fresh ``git clone`` of this checkout's HEAD (its own ``.venv`` and ``.lab``, an empty pip
cache so every wheel is downloaded): wall time, bytes received on the machine's network interfaces (all traffic of
the machine during the run, so run it on a quiet one), disk used by the clone afterwards (``.venv``, ``.lab`` and the
rest), and peak RAM (the highest sum of RSS over the command's process tree, sampled every 0.5 s, and the machine's
peak used memory above the starting point). Writes ``results.json`` and ``RESULTS.md`` here.

It installs several GB and takes tens of minutes, so it runs only when named:
``python -m benchmarks quickstart`` (``--only run`` or ``--only test`` for one command; ``--keep`` keeps the clone).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from workshop_lib.paths import repo_root

HERE = Path(__file__).resolve().parent
REPO = repo_root()
COMMANDS = {"run": ["make", "run"], "test": ["make", "test"], "lab_up": [".venv/bin/workshop", "lab", "up"]}
# `lab_up` is measured on a set-up clone (the kept `make run` clone, else a new one after an unmeasured `make setup`),
# from a stopped lab: the serving lab's defaults (real engine, UCX) until ready with its warm-up completion done.


def rx_bytes() -> int:
    """Bytes received on all non-loopback interfaces (``/proc/net/dev``)."""
    total = 0
    for line in Path("/proc/net/dev").read_text().splitlines()[2:]:
        name, data = line.split(":", 1)
        if name.strip() != "lo":
            total += int(data.split()[0])
    return total


def du(path: Path) -> int:
    res = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True)
    return int(res.stdout.split()[0]) if res.returncode == 0 and res.stdout else 0


class PeakSampler(threading.Thread):
    """Peak RSS of a process tree and peak machine memory use, sampled every ``every`` seconds."""

    def __init__(self, pid: int, every: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.base_used = psutil.virtual_memory().used
        self.peak_tree = 0
        self.peak_used = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                root = psutil.Process(self.pid)
                procs = [root, *root.children(recursive=True)]
                rss = sum(p.memory_info().rss for p in procs if p.is_running())
            except psutil.Error:
                rss = 0
            self.peak_tree = max(self.peak_tree, rss)
            self.peak_used = max(self.peak_used, psutil.virtual_memory().used - self.base_used)
            self.stop.wait(self.every)


def measure(name: str, clone: Path, env: dict[str, str]) -> dict:
    cmd = COMMANDS[name]
    log = clone / f"quickstart-{name}.log"
    rx0, t0 = rx_bytes(), time.monotonic()
    with open(log, "w") as fh:
        p = subprocess.Popen(cmd, cwd=clone, env=env, stdout=fh, stderr=subprocess.STDOUT)
        s = PeakSampler(p.pid)
        s.start()
        rc = p.wait()
        s.stop.set()
        s.join()
    return {
        "command": " ".join(cmd),
        "exit_code": rc,
        "seconds": round(time.monotonic() - t0, 1),
        "downloaded_bytes": rx_bytes() - rx0,
        "disk_bytes": {"total": du(clone), "venv": du(clone / ".venv"), "lab": du(clone / ".lab")},
        "peak_rss_tree_bytes": s.peak_tree,
        "peak_machine_used_above_start_bytes": s.peak_used,
        "log": str(log),
        **({"notebooks": notebook_times(clone)} if name == "run" else {}),
    }


def notebook_times(clone: Path) -> list[dict]:
    """Per notebook of the newest ``workshop run`` in ``clone`` (``runs/<ts>/summary.json``): status, seconds and the
    verdicts it recorded; [] when there is none."""
    runs = sorted(clone.glob("runs/*/summary.json"))
    if not runs:
        return []
    out = []
    for nb in json.loads(runs[-1].read_text()):
        verdicts = {k: v for k, v in (nb.get("records") or {}).items() if k.startswith("verdict_")}
        out.append({"notebook": nb.get("notebook"), "status": nb.get("status"), "seconds": nb.get("seconds"),
                    "verdicts": verdicts})
    return out


def gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


def write(results: dict) -> None:
    (HERE / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        "# Quick start from a clean clone",
        "",
        f"Commit {results['commit']}, {results['when']}, {results['cpus']} CPUs, {gib(results['ram_bytes'])} RAM.",
        "Written by `python -m benchmarks quickstart` (benchmarks/quickstart/run.py).",
        "",
        "| command | exit | time | downloaded | disk (clone / venv / .lab) | peak RSS (tree) |",
        "|---|---|---|---|---|---|",
    ]
    for r in results["commands"].values():
        d = r["disk_bytes"]
        lines.append(
            f"| `{r['command']}` | {r['exit_code']} | {r['seconds']:.0f} s | {gib(r['downloaded_bytes'])} | "
            f"{gib(d['total'])} / {gib(d['venv'])} / {gib(d['lab'])} | {gib(r['peak_rss_tree_bytes'])} |"
        )
    (HERE / "RESULTS.md").write_text("\n".join(lines) + "\n")


def _set_up_clone(work: Path, env: dict[str, str]) -> Path:
    """The kept ``make run`` clone when it is set up, else a new clone after ``make setup`` (not measured)."""
    kept = work / "kit-run"
    if (kept / ".venv" / "bin" / "workshop").exists():
        return kept
    clone = work / "kit-lab_up"
    shutil.rmtree(clone, ignore_errors=True)
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    subprocess.run(["make", "setup"], cwd=clone, env=env, check=True, stdout=subprocess.DEVNULL)
    return clone


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        if "quickstart" not in sys.argv[1:]:
            print(
                "quickstart: skipped (clones, installs several GB, tens of minutes): `python -m benchmarks quickstart`"
            )
            return 0
        argv = [a for a in sys.argv[1:] if a.startswith("--")]
    ap = argparse.ArgumentParser(prog="python -m benchmarks quickstart")
    ap.add_argument("--only", choices=list(COMMANDS), action="append", help="measure only this command")
    ap.add_argument("--keep", action="store_true", help="keep the clones")
    ap.add_argument("--merge", action="store_true", help="keep the other commands already in results.json")
    ap.add_argument("--notebooks-from", type=Path, metavar="CLONE",
                    help="only fill the `make run` record's per-notebook times from CLONE's newest run, then stop")
    ap.add_argument("--work", type=Path, help="folder for the clones (default: a new temporary folder); put a copy "
                    "of shared/ beside them there and the tests that read ../shared run too")
    args = ap.parse_args(argv)
    if args.notebooks_from:
        rec = json.loads((HERE / "results.json").read_text())
        rec["commands"]["run"]["notebooks"] = notebook_times(args.notebooks_from)
        write(rec)
        return 0
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    work = args.work or Path(tempfile.mkdtemp(prefix="quickstart-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "WORKSHOP_LAB_DIR"))}
    results = {
        "commit": commit,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpus": os.cpu_count(),
        "ram_bytes": psutil.virtual_memory().total,
        "commands": {},
    }
    if args.merge and (HERE / "results.json").exists():
        results["commands"] = json.loads((HERE / "results.json").read_text()).get("commands", {})
    clones: list[Path] = []
    try:
        for name in args.only or list(COMMANDS):
            if name == "lab_up":
                clone = _set_up_clone(work, env)
                subprocess.run([str(clone / ".venv/bin/workshop"), "lab", "down"], cwd=clone, capture_output=True)
            else:
                # each command from its own clean clone and an empty pip cache: every wheel is downloaded
                clone = work / f"kit-{name}"
                shutil.rmtree(clone, ignore_errors=True)
                subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
                env["PIP_CACHE_DIR"] = str(work / f"pip-cache-{name}")
            clones.append(clone)
            print(f"quickstart: {' '.join(COMMANDS[name])} in {clone} ...", flush=True)
            results["commands"][name] = {**measure(name, clone, env), "commit": commit,
                                         "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            print(json.dumps(results["commands"][name], indent=2), flush=True)
        write(results)
    finally:
        for clone in clones:
            if (clone / ".venv/bin/workshop").exists():
                subprocess.run([str(clone / ".venv/bin/workshop"), "lab", "down"], cwd=clone, capture_output=True)
            if not args.keep:
                shutil.rmtree(clone, ignore_errors=True)
        if not args.keep:
            for cache in work.glob("pip-cache-*"):
                shutil.rmtree(cache, ignore_errors=True)
    # the exit code of what this invocation measured (merged records keep theirs but do not decide it)
    return max((results["commands"][n]["exit_code"] for n in args.only or list(COMMANDS)), default=0)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
