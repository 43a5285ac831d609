"""``workshop render``: write the manifests of a profile (or all committed ones) from the workshop config.

Examples:
    workshop render --profile cross-node --set kv_backend=UCX --out /tmp/m
    workshop render --all --out manifests            # refresh the committed renders
    workshop render --all --out manifests --check    # exit 1 when they are stale
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from workshop_lib import table
from workshop_lib.clicmds.config import parse_sets
from workshop_lib.config import WorkshopConfig
from workshop_lib.errors import ConfigError
from workshop_lib.manifests.documents import RenderedFile
from workshop_lib.manifests.profiles import ALL_COMMAND, PROFILES, render, render_all, write_files


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("render", help="render the manifests of a workshop section from the config")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--profile", help=f"one of: {', '.join(PROFILES)}")
    what.add_argument("--all", action="store_true", help="every committed render (the manifests/ directory)")
    what.add_argument("--list", action="store_true", help="list the profiles and their options")
    p.add_argument("--config", help="YAML file of parameters (default: WORKSHOP_* environment variables)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field or profile option")
    p.add_argument("--out", help="output directory (default: print to stdout)")
    p.add_argument("--check", action="store_true", help="with --out: write nothing, exit 1 if a file differs")
    p.set_defaults(func=run)


def stale(files: list[RenderedFile], out: Path) -> list[str]:
    """Paths under ``out`` whose content differs from ``files`` (or that are missing)."""
    return [f.path for f in files if not (out / f.path).is_file() or (out / f.path).read_text() != f.text]


def run(args: argparse.Namespace) -> int:
    if args.list:
        rows = [{"profile": p.name, "what": p.help, "options": ", ".join(f"{k}={v}" for k, v in p.options.items())}
                for p in PROFILES.values()]
        print(table.text(rows, ["profile", "what", "options"], width=None))
        return 0
    cfg = WorkshopConfig.from_yaml(args.config) if args.config else WorkshopConfig.from_env()
    sets = parse_sets(args.set)
    if args.all:
        fields = set(WorkshopConfig.field_names())
        unknown = sorted(k for k in sets if k.lower() not in fields)
        if unknown:
            raise ConfigError(f"--set {unknown[0]}", "unknown config field", f"use one of {', '.join(sorted(fields))}")
        files = render_all(WorkshopConfig.from_params({**cfg.to_dict(), **sets}) if sets else cfg)
    else:
        try:
            files = render(cfg, args.profile, sets)
        except ConfigError as exc:
            if exc.where != "profile":
                raise
            raise ConfigError("--profile", exc.problem, exc.fix) from None  # the library names the field; the CLI its flag
    if args.out is None:
        for f in files:
            sys.stdout.write(f"# ---- {f.path}\n{f.text}")
        return 0
    out = Path(args.out)
    if args.check:
        bad = stale(files, out)
        for path in bad:
            print(f"stale: {out / path}", file=sys.stderr)
        if bad:
            print(f"{len(bad)} file(s) out of date: run `{ALL_COMMAND if args.all else 'workshop render ...'}`", file=sys.stderr)
            return 1
        print(f"{len(files)} file(s) up to date under {out}")
        return 0
    if out.exists() and not out.is_dir():
        raise ConfigError("--out", f"{out} is a file, not a folder", "give a folder for the manifests, e.g. --out /tmp/m")
    try:
        written = write_files(files, out)
    except OSError as exc:
        raise ConfigError("--out", f"cannot write under {out} ({exc.strerror}: {exc.filename})",
                          "give a folder you can write to, e.g. --out /tmp/m") from None
    for path in written:
        print(path)
    return 0
