"""Section 01, cluster setup: the steps notebook 01 calls, for both targets.

Every step calls ``ctx.target`` (:mod:`workshop_lib.targets`): on eks preflight, the Dynamo CRDs and platform through
Helm, the platform pods, EFA allocatable and GDRCopy on the GPU nodes, and the HF token secret; locally the lab's
etcd and NATS (started and probed). On both, the manifests rendered and validated offline, and the exact commands an
eks user runs.

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
from workshop_lib.config import PROFILES, WorkshopConfig
from workshop_lib.record import record
from workshop_lib.sections.common import Context, record_checks

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd



# ------------------------------------------------------------------------------------------------ prerequisites
def prerequisites(ctx: Context) -> CheckTable:
    """The preflight rows as a PASS/WARN/FAIL table: the cluster on eks, this machine and the lab's setup on local."""
    frame = ctx.target.preflight()
    table = CheckTable.from_rows(frame.to_dict(orient="records"), f"Preflight ({ctx.cfg.target})")
    record("preflight_rows", len(table))
    record("preflight_failed", [r.check for r in table.failed()])
    return record_checks("preflight", table)


# ------------------------------------------------------------------------------------------------ platform
def platform(ctx: Context) -> Any:
    """eks: ``helm upgrade --install`` the CRDs and the platform, then wait for the pods (progress shown).
    local: start the lab (etcd, NATS, and the serving processes notebook 02 uses) and return its status table.
    """
    return ctx.target.install_platform()


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
    record_checks("manifests", table)
    ctx.state["manifest_dir"] = out
    return frame, table


def validate(paths: list[Path], root: Path, crd: str | dict[str, Any] | None = None) -> CheckTable:
    """Validate rendered files against the DGD CRD schema and the workshop's lint rules; one row per file.

    ``crd`` defaults to :func:`crd_path`, else :func:`~workshop_lib.manifests.crdsource.resolve` finds one (the
    cluster's CRD, the dynamo-crds chart, or the kit's own schema); the evidence names the schema used.
    """
    from workshop_lib.manifests.crdsource import resolve
    from workshop_lib.manifests.validate import file_checks

    crd = crd if crd is not None else crd_path()
    return file_checks(paths, root, resolve(Path(crd) if isinstance(crd, str) else crd))


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

    Returns a message without the value. local: nothing to do (the lab serves an offline model, no download).
    """
    return ctx.target.put_secret(token)


# ------------------------------------------------------------------------------------------------ verification
def verify(ctx: Context) -> CheckTable:
    """The section's table: what the target set up (eks: platform pods, EFA, GDRCopy, secret; local: etcd, NATS),
    plus the validation verdict of the rendered manifests."""
    t = ctx.target.verify_platform()
    t.title = f"Section 01 verification ({ctx.cfg.target})"
    manifests = ctx.state.get("manifest_checks")
    if isinstance(manifests, CheckTable):
        c = manifests.counts()
        t.check_true("manifests valid", manifests.ok and manifests.judged,
                     f"{c['PASS']} pass, {c['WARN']} warn, {c['FAIL']} fail", "no FAIL",
                     evidence=f"{len(manifests)} files validated offline", fix="see the validation table above")
    return t


# ------------------------------------------------------------------------------------------------ cost, teardown
def teardown(ctx: Context, confirm: bool) -> list[str]:
    """Undo section 01 when ``confirm``: eks uninstalls the platform releases; local stops the lab. Safe twice."""
    if not confirm:
        return ["TEARDOWN is False: nothing removed (later notebooks use this setup)."]
    return ctx.target.uninstall_platform()
