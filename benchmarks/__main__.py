"""``python -m benchmarks [NAME...]``: run each ``benchmarks/<name>/run.py``'s ``main()`` (all of them by default).

Each benchmark writes ``results.json`` and ``RESULTS.md`` in its own folder. The exit code is the number of
benchmarks that raised or returned a non-zero code.

Example:
    python -m benchmarks                    # every benchmark
    python -m benchmarks client_fidelity    # one
    python -m benchmarks --list
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent


def discover() -> dict[str, Path]:
    """Benchmark name -> its ``run.py``, for every sub-folder that has one, sorted by name."""
    return {p.parent.name: p for p in sorted(HERE.glob("*/run.py"))}


def run_one(name: str, path: Path) -> int:
    """Import ``path`` as a module and call its ``main()``; returns 0 on success."""
    spec = importlib.util.spec_from_file_location(f"benchmarks.{name}.run", path)
    if spec is None or spec.loader is None:
        print(f"{name}: cannot import {path}", file=sys.stderr)
        return 1
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rc = mod.main()
    return int(rc or 0)


def main(argv: list[str] | None = None) -> int:
    found = discover()
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help=f"benchmarks to run (default all: {', '.join(found)})")
    ap.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = ap.parse_args(argv)
    if args.list:
        print("\n".join(found))
        return 0
    unknown = [n for n in args.names if n not in found]
    if unknown:
        print(f"error: unknown benchmark(s) {', '.join(unknown)}. Fix: use one of {', '.join(found)}", file=sys.stderr)
        return 2
    failed = 0
    for name in args.names or list(found):
        t0 = time.monotonic()
        print(f"== {name}", flush=True)
        sys.path.insert(0, str(HERE.parent))
        try:
            rc = run_one(name, found[name])
        except KeyboardInterrupt:
            print(f"== {name}: interrupted", file=sys.stderr)
            return 130
        except Exception:
            traceback.print_exc()
            rc = 1
        print(f"== {name}: {'ok' if rc == 0 else f'FAILED ({rc})'} in {time.monotonic() - t0:.0f} s", flush=True)
        failed += rc != 0
    from benchmarks import measured

    measured.main([])  # the README's measured table follows the records just written
    return failed


if __name__ == "__main__":
    sys.exit(main())
