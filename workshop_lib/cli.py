"""The ``workshop`` command.

Subcommands live in ``workshop_lib/clicmds/<name>.py`` (``platform`` in ``dynamo_platform.py``: no module is named
like a standard-library one); each module defines ``register(subparsers)`` which adds its
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

# Order is the order of ``workshop --help``; the help text is shown without importing the module.
COMMANDS: dict[str, str] = {
    "versions": "print the table of pinned versions (images, charts, packages)",
    "config": "print the validated workshop configuration",
    "lab": "the local lab: etcd, NATS, Dynamo frontend, mocker prefill/decode; NIXL pairs",
    "diagnose": "read NIXL/libfabric/UCX/vLLM/TRT-LLM/Dynamo logs and give a verdict",
    "nixlbench": "parse a nixlbench log: config banner and results table",
    "render": "render the manifests of a workshop section from the config",
    "validate": "validate manifests against the DGD CRD and the workshop's lint rules",
    "preflight": "check the cluster (or this machine) is ready for the workshop",
    "platform": "install or check the Dynamo platform (dynamo-crds, dynamo-platform) via Helm",
    "bench": "benchmarks: serving sweep, aiperf interop, NIXL KV-transfer sweep",
    "run": "run the four notebooks headless into runs/<timestamp>/ and print a summary",
}
# A subcommand whose module is not named after it (``platform`` would be named like the standard library's).
MODULES: dict[str, str] = {"platform": "dynamo_platform"}


def _chosen(argv: Sequence[str] | None) -> str | None:
    """The subcommand named on the command line (top-level options take no values), if any."""
    args = sys.argv[1:] if argv is None else list(argv)
    return next((a for a in args if not a.startswith("-")), None)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``workshop`` parser; only the chosen subcommand's module is imported (the others cost nothing)."""
    parser = argparse.ArgumentParser(
        prog="workshop",
        description="Dynamo disaggregated-inference workshop kit: local lab, manifests, EKS, logs and benchmarks.",
    )
    parser.add_argument("--version", action="version", version=f"workshop_lib {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = _chosen(argv)
    for name, help_text in COMMANDS.items():
        if name != chosen:
            sub.add_parser(name, help=help_text, add_help=False)
            continue
        module = f"workshop_lib.clicmds.{MODULES.get(name, name)}"
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name == module:
                continue  # that subcommand is not part of this build
            raise
        mod.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return int(args.func(args) or 0)
    except WorkshopError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except UnicodeDecodeError as exc:  # a binary file where text was expected: one line, never a traceback
        print(f"error: {args.command}: a file it read is not UTF-8 text ({exc.reason} at byte {exc.start}). "
              "Fix: give text files (YAML manifests, configs, logs)", file=sys.stderr)
        return 1
    except OSError as exc:  # a file the user named that cannot be read or written: one line, never a traceback
        if isinstance(exc, BrokenPipeError):
            return 0
        where = exc.filename or args.command
        print(f"error: {where}: {exc.strerror or exc}. Fix: check the path and its permissions", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
