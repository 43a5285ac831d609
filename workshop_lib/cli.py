"""The ``workshop`` command.

Subcommands live in ``workshop_lib/clicmds/<name>.py``; each module defines ``register(subparsers)`` which adds its
parser and sets ``func`` (a callable taking the parsed args and returning an exit code). Errors the kit raises on
purpose (:class:`~workshop_lib.errors.WorkshopError`) are printed on one line, without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from workshop_lib import __version__
from workshop_lib.errors import WorkshopError

# Order is the order of ``workshop --help``.
COMMAND_MODULES = [
    "versions",
    "config",
    "lab",
    "diagnose",
    "nixlbench",
    "render",
    "validate",
    "preflight",
    "platform",
    "bench",
    "run",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workshop",
        description="Dynamo disaggregated-inference workshop kit: local lab, manifests, EKS, logs and benchmarks.",
    )
    parser.add_argument("--version", action="version", version=f"workshop_lib {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(f"workshop_lib.clicmds.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"workshop_lib.clicmds.{name}":
                continue  # that subcommand is not part of this build
            raise
        mod.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return int(args.func(args) or 0)
    except WorkshopError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
