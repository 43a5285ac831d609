"""Section 01, cluster setup: the steps notebook 01 calls, for both targets.

eks: preflight, the Dynamo CRDs and platform through Helm, wait for the operator/etcd/NATS pods, EFA allocatable and
GDRCopy on the GPU nodes, and the HF token secret. local: the lab's etcd and NATS (started and probed), the
manifests rendered and validated offline, and the exact commands an eks user runs.

Example:
    >>> from workshop_lib.sections.common import start
    >>> ctx = start({"TARGET": "local"}, "01")
    >>> [c.split()[0] for c in eks_commands(ctx.cfg)][:2]
    ['helm', 'helm']
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workshop_lib.checks import CheckTable
from workshop_lib.config import WorkshopConfig
from workshop_lib.errors import WorkshopError
from workshop_lib.record import record
from workshop_lib.sections import eks, probes
from workshop_lib.sections.common import Context

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

PROFILES = ("platform", "single-node", "cross-node", "bench")


# ------------------------------------------------------------------------------------------------ prerequisites
def prerequisites(ctx: Context) -> CheckTable:
    """The preflight rows as a PASS/WARN/FAIL table: the cluster on eks, this machine and the lab's setup on local."""
    from workshop_lib import preflight

    frame = eks.preflight(ctx.cfg) if ctx.eks else preflight.preflight_local()
    table = CheckTable.from_rows(frame.to_dict(orient="records"), f"Preflight ({ctx.cfg.target})")
    record("preflight_rows", len(table))
    record("preflight_failed", [r.check for r in table.failed()])
    return table


# ------------------------------------------------------------------------------------------------ platform
def platform(ctx: Context) -> Any:
    """eks: ``helm upgrade --install`` the CRDs and the platform, then wait for the pods (progress shown).
    local: start the lab (etcd, NATS, and the serving processes notebook 02 uses) and return its status table.
    """
    if ctx.eks:
        return eks.install_platform(ctx.cfg, timeout_s=ctx.cfg.deploy_timeout_s)
    from workshop_lib.lab.serving import Lab

    st = Lab().up(progress=True)
    ctx.state["lab"] = st
    return lab_frame(st)


def lab_frame(st: Any) -> pd.DataFrame:
    """A LabStatus as a table: process, pid, port, healthy, RSS (MB), detail."""
    import pandas as pd

    rows = [{"process": p.name, "pid": p.pid, "port": p.port, "healthy": p.healthy, "rss_mb": p.rss_mb,
             "detail": str(p.detail).splitlines()[0] if p.detail else ""} for p in st.processes.values()]
    return pd.DataFrame(rows, columns=["process", "pid", "port", "healthy", "rss_mb", "detail"])


# ------------------------------------------------------------------------------------------------ manifests
def render_manifests(ctx: Context) -> tuple[pd.DataFrame, CheckTable]:
    """Render every section's manifests from the notebook's config into ``<work_dir>/manifests`` and validate them.

    Returns the file table (path, kinds, documents) and the validation checks (one row per file).
    """
    import pandas as pd

    from workshop_lib.manifests import render, write_files

    out = ctx.work_dir / "manifests"
    files = []
    for profile in PROFILES:
        files += render(ctx.cfg, profile)
    paths = write_files(files, out)
    frame = pd.DataFrame(
        [{"file": f.path, "kinds": ", ".join(sorted({d.get("kind", "?") for d in f.docs if isinstance(d, dict)})),
          "documents": len(f.docs)} for f in files]
    )
    objects = {f.path for f in files if f.docs and all(isinstance(d, dict) and d.get("kind") for d in f.docs)}
    table = validate([p for p, f in zip(paths, files, strict=True) if f.path in objects], out)
    record("manifest_files", len(files))
    record("manifest_failures", [r.check for r in table.failed()])
    ctx.state["manifest_dir"] = out
    return frame, table


def validate(paths: list[Path], root: Path, crd: str | dict[str, Any] | None = None) -> CheckTable:
    """Validate rendered files against the DGD CRD schema and the workshop's lint rules; one row per file.

    ``crd`` defaults to :func:`crd_path`; without any CRD the schema is not checked and the rows say so (WARN).
    """
    from workshop_lib.manifests.validate import validate_paths

    crd = crd if crd is not None else crd_path()
    paths = [p for p in paths if Path(p).suffix in (".yaml", ".yml")]
    findings = validate_paths([str(p) for p in paths], Path(crd) if isinstance(crd, str) else crd)
    table = CheckTable("Rendered manifests (offline validation)")
    by_file: dict[str, list[Any]] = {}
    for f in findings:
        by_file.setdefault(str(Path(f.file).resolve()), []).append(f)
    for p in paths:
        mine = by_file.get(str(Path(p).resolve()), [])
        errors = [f for f in mine if f.severity == "error"]
        warnings = [f for f in mine if f.severity == "warning" or f.code == "S000"]
        first = (errors or warnings or [None])[0]
        evidence = first.format() if first is not None else "CRD schema + workshop lint: no findings"
        status = "FAIL" if errors else ("WARN" if warnings else "PASS")
        table.add(str(Path(p).relative_to(root)), status, f"{len(errors)} errors, {len(warnings)} warnings",
                  "0 errors", evidence, first.fix if first is not None else "")
    return table


def crd_path() -> str | None:
    """The DynamoGraphDeployment CRD to validate against: ``../shared/reference`` beside the repo when present."""
    from workshop_lib.sections.common import REPO

    p = REPO.parent / "shared" / "reference" / "dynamo-0.9.0" / "crds" / "nvidia.com_dynamographdeployments.yaml"
    return str(p) if p.exists() else None


def eks_commands(cfg: WorkshopConfig) -> list[str]:
    """The commands an eks attendee runs for section 01 (what notebook 01 does through the API on eks)."""
    from workshop_lib.manifests import platform_releases

    cmds = [shlex.join(r.command()) for r in platform_releases(cfg)]
    cmds += [
        f"kubectl get pods -n {cfg.platform_namespace}",
        "kubectl get nodes -o custom-columns=NAME:.metadata.name,EFA:.status.allocatable.vpc\\.amazonaws\\.com/efa",
        f"kubectl create namespace {cfg.namespace}",
        f"kubectl -n {cfg.namespace} create secret generic {cfg.hf_token_secret} --from-literal=HF_TOKEN=\"$HF_TOKEN\"",
    ]
    return cmds


# ------------------------------------------------------------------------------------------------ HF token
def hf_token(ctx: Context, token: str | None = None) -> str:
    """eks: put the HF token (``token``, else ``$HF_TOKEN``, else a getpass prompt) into the Secret; never echoed.

    Returns a message without the value. local: nothing to do (the lab serves an offline tokenizer, no download).
    """
    if ctx.local:
        return "local: no Hugging Face download happens (the lab builds its tokenizer offline), so no token is needed."
    return eks.put_hf_secret(ctx.cfg, token)


# ------------------------------------------------------------------------------------------------ verification
def verify(ctx: Context) -> CheckTable:
    """The section's PASS/FAIL table: eks platform pods, EFA, GDRCopy, secret; local etcd, NATS and the manifests."""
    table = eks.verify_platform(ctx.cfg) if ctx.eks else verify_local(ctx)
    table.title = f"Section 01 verification ({ctx.cfg.target})"
    return table


def verify_local(ctx: Context) -> CheckTable:
    """etcd and NATS as they describe themselves, plus the validation verdict of the rendered manifests."""
    from workshop_lib.lab.serving import Lab

    t = CheckTable()
    st = Lab().status()
    ports = {n: p.port for n, p in st.processes.items()}
    try:
        info = probes.etcd_info(f"http://127.0.0.1:{ports.get('etcd') or 2379}")
        t.require("etcd health", info.get("health"), "true",
                  evidence=f"etcdserver {info.get('etcdserver')} /health {{\"health\":\"{info.get('health')}\"}}",
                  fix="workshop lab down && workshop lab up")
    except WorkshopError as exc:
        t.add("etcd health", "FAIL", "no answer", "true", str(exc), "workshop lab up")
    try:
        nats = probes.nats_info(port=ports.get("nats") or 4222)
        t.require("NATS JetStream", nats.get("jetstream", False), True,
                  evidence=f"INFO version={nats.get('version')} jetstream={nats.get('jetstream')}",
                  fix="start nats-server with -js (the lab does)")
    except WorkshopError as exc:
        t.add("NATS JetStream", "FAIL", "no answer", "True", str(exc), "workshop lab up")
    manifests = ctx.state.get("manifest_checks")
    if isinstance(manifests, CheckTable):
        c = manifests.counts()
        t.check_true("manifests valid", manifests.ok, f"{c['PASS']} pass, {c['WARN']} warn, {c['FAIL']} fail",
                     "no FAIL", evidence=f"{len(manifests)} files validated offline",
                     fix="see the validation table above")
    return t


# ------------------------------------------------------------------------------------------------ cost, teardown
def teardown(ctx: Context, confirm: bool) -> list[str]:
    """Undo section 01 when ``confirm``: eks uninstalls the platform releases; local stops the lab. Safe twice."""
    if not confirm:
        return ["TEARDOWN is False: nothing removed (later notebooks use this setup)."]
    if ctx.eks:
        return eks.uninstall_platform(ctx.cfg)
    from workshop_lib.lab.serving import Lab

    stopped = Lab().down()
    return [f"stopped {', '.join(stopped)}" if stopped else "the lab was not running"]
