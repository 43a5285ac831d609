"""``workshop diagnose FILE|DIR... [--json] [--env FILE]``: backend, provider, rails, handshakes, errors and a verdict.

Exit codes: 0 efa-rdma, ucx or unknown; 3 error (a failure signature or an unrecognised error line); 4 tcp-fallback
(LIBFABRIC on tcp/sockets or UCX over tcp); 1 a file could not be read (missing, a FIFO or device, unreadable);
2 bad arguments. With several files, or pods in one ``kubectl logs --prefix`` file, the verdict is the combined one
(the worst verdict among the pods that show transport evidence) and a per-pod table is printed.

``--env FILE`` (``kubectl exec POD -- env > FILE``, ``KEY=VALUE`` lines) adds the version truth: the NIXL, UCX and
libfabric versions and library paths the log shows were loaded, and each variable set in the environment that the
pinned stack does not read (the table lives in :mod:`workshop_lib.manifests.envaudit`).

The output names the per-line scanner that ran (``scanner``): the compiled one
(:mod:`workshop_lib.logs.shapescan`) or the pure-Python fallback and why (no C compiler...); both give the same
diagnosis.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from workshop_lib.choices import FRAMEWORKS
from workshop_lib.logs.diagnose import diagnose_files
from workshop_lib.logs.report import EXIT_CODES, render_diagnosis, render_multi
from workshop_lib.logs.shapescan import scanner

EPILOG = "exit codes: 0 efa-rdma/ucx/unknown, 3 error, 4 tcp-fallback, 1 unreadable file, 2 bad arguments"
DOCUMENTED_EXIT_CODES = frozenset({0, 1, 2, 3, 4})
PINNED_NIXL = "0.9.0"  # the version envaudit's table was checked against (workshop versions)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("diagnose", help="read NIXL/libfabric/UCX/vLLM/TRT-LLM/Dynamo logs and give a verdict",
                       description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="log files or directories of them (e.g. kubectl logs POD > logs/POD.log)")
    p.add_argument("--json", action="store_true", help="print JSON (the contract plus versions, notes, pods)")
    p.add_argument("--env", metavar="FILE", help="the worker's environment (kubectl exec POD -- env > FILE)")
    p.add_argument("--framework", choices=FRAMEWORKS, help="the engine, for engine-specific env checks")
    p.set_defaults(func=run)


def read_env(path: str) -> dict[str, str]:
    """``KEY=VALUE`` lines (``env`` output; ``export`` and quotes allowed); other lines are skipped.

    Raises:
        LogParseError: the file is missing or unreadable.
    """
    from workshop_lib.logs.parser import read_lines, to_text

    env: dict[str, str] = {}
    for raw in read_lines(path, max_line=1 << 20):
        line = to_text(raw).strip()
        if line.startswith("export "):
            line = line[7:].lstrip()
        key, sep, value = line.partition("=")
        if sep and key.replace("_", "").isalnum() and not key[:1].isdigit():
            env[key] = value.strip().strip("'\"")
    return env


def version_truth(versions: dict, env: dict[str, str] | None, framework: str | None) -> dict:
    """What was loaded (from the log) and which env vars are no-ops for it (from envaudit's one table)."""
    seen = dict(versions.get("versions") or {})
    out: dict = {"loaded": seen, "loaded_from": dict(versions.get("loaded_from") or {}),
                 "nixl_log_format": versions.get("nixl_log_format"), "unread_env": []}
    if env is not None:  # envaudit (and the manifests package under it) only when there is an env to check
        from workshop_lib.manifests.envaudit import unread_env

        nixl = seen.get("nixl")
        for u in unread_env(env, framework):
            item = {"name": u.name, "value": u.value, "message": u.message(), "fix": u.fix()}
            if nixl and nixl != PINNED_NIXL and u.name.startswith("NIXL_"):
                item["note"] = f"checked against NIXL {PINNED_NIXL}; this worker loaded NIXL {nixl}"
            out["unread_env"].append(item)
    return out


def _render_truth(t: dict) -> str:
    lines = ["== version truth"]
    for comp, ver in t["loaded"].items():
        where = t["loaded_from"].get(comp)
        lines.append(f"  {comp:<10} {ver}" + (f"  ({where})" if where else ""))
    if t["loaded_from"].get("nixl_plugins"):
        lines.append(f"  NIXL plugins from {t['loaded_from']['nixl_plugins']}")
    if not t["loaded"]:
        lines.append("  no version lines in the log (set NIXL_LOG_LEVEL=INFO, UCX_LOG_LEVEL=info, FI_LOG_LEVEL=info)")
    for u in t["unread_env"]:
        lines.append(f"  NO-OP {u['name']}={u['value']}: {u['message']}")
        lines.append(f"        fix: {u['fix']}" + (f" ({u['note']})" if u.get("note") else ""))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    env = read_env(args.env) if args.env else None
    md = diagnose_files(args.files)
    single = len(md.per_file) == 1 and len(md.per_pod) <= 1
    d = next(iter(md.per_file.values())) if single else md.combined
    truth = version_truth(d.versions, env, args.framework) if (env is not None or d.versions) else None
    if args.json:
        out = d.report() if single else {**md.to_dict(), "versions": md.combined.versions}
        if truth is not None:
            out["version_truth"] = truth
        out["scanner"] = scanner()  # which per-line scanner ran: never silent about the pure-Python fallback
        print(json.dumps(out, indent=2, default=str))
    else:
        print(render_diagnosis(d, str(Path(args.files[0]))) if single else render_multi(md))
        if truth is not None and (env is not None or truth["loaded"]):
            print(_render_truth(truth))
        print(f"scanner: {scanner()}")
    return EXIT_CODES[d.verdict]
