"""Install or upgrade the Dynamo platform (``dynamo-crds`` and ``dynamo-platform`` 0.9.0) with the helm CLI, then verify.

The releases (chart, pinned version, namespace, values including the operator image-tag fix) come from
:func:`workshop_lib.manifests.helm.platform_releases`; this module runs them through the one Helm runner,
:func:`workshop_lib.helm_runner.run_helm`. ``helm upgrade --install`` makes
a second install a no-op upgrade. Verification watches the platform pods until the operator (2/2), etcd (1/1) and
NATS (2/2) are Ready.

Example:
    >>> cmds = install(WorkshopConfig(target="eks"), dry_run=True)  # doctest: +SKIP
    >>> cmds[0][:4]  # doctest: +SKIP
    ['helm', 'upgrade', '--install', 'dynamo-crds']
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from workshop_lib.checks import Check
from workshop_lib.cluster.client import Cluster
from workshop_lib.cluster.wait import wait_for_pods
from workshop_lib.config import WorkshopConfig
from workshop_lib.helm_runner import Runner, helm_binary, kube_flags, run_helm
from workshop_lib.manifests.helm import HelmRelease, platform_releases
from workshop_lib.preflight import PLATFORM_PODS, Snapshot, check_crds, check_platform, to_frame


def commands(cfg: WorkshopConfig, values_dir: Path | None = None, *, kubeconfig: str | None = None,
             context: str | None = None) -> list[list[str]]:
    """The helm argv for each release, in install order. With ``values_dir`` values go to ``<release>-values.yaml``
    files there (written by :func:`write_values`); without, as ``--set`` flags."""
    out = []
    for rel in platform_releases(cfg):
        vf = str(values_dir / f"{rel.name}-values.yaml") if values_dir and rel.values else None
        out.append([*rel.command(vf), *kube_flags(kubeconfig, context)])
    return out


def write_values(releases: list[HelmRelease], values_dir: Path) -> list[Path]:
    """Write each release's values as YAML into ``values_dir``; returns the files written."""
    files = []
    for rel in releases:
        if rel.values:
            p = values_dir / f"{rel.name}-values.yaml"
            p.write_text(yaml.safe_dump(rel.values, sort_keys=False))
            files.append(p)
    return files


def install(cfg: WorkshopConfig, *, kubeconfig: str | None = None, context: str | None = None, dry_run: bool = False,
            verify: bool = True, timeout_s: float = 600, progress: bool = True,
            runner: Runner | None = None, values_files: bool = True) -> list[list[str]]:
    """Install or upgrade the CRDs and the platform, then (``verify``) wait for the platform pods.

    The one install path (the CLI and the eks target both come here). With ``values_files`` the values go to YAML files
    in a temp dir; without, as ``--set`` flags, so the returned commands can be shown and re-run as they are.

    Returns the helm commands (run, or only shown with ``dry_run``).
    """
    releases = platform_releases(cfg)
    if dry_run:
        return commands(cfg, None, kubeconfig=kubeconfig, context=context)
    helm_binary()
    with tempfile.TemporaryDirectory(prefix="workshop-helm-") as tmp:
        if values_files:
            write_values(releases, Path(tmp))
        cmds = commands(cfg, Path(tmp) if values_files else None, kubeconfig=kubeconfig, context=context)
        for argv in cmds:
            run_helm(argv, runner)
    if verify:
        verify_platform(Cluster.connect(kubeconfig, context), cfg, timeout_s=timeout_s, progress=progress)
    return cmds


def verify_platform(cluster: Cluster, cfg: WorkshopConfig, *, timeout_s: float = 600, progress: bool = True) -> pd.DataFrame:
    """Watch the platform namespace until operator, etcd and NATS pods are Ready; returns :func:`status`."""
    wait_for_pods(cluster, cfg.platform_namespace, names=list(PLATFORM_PODS), timeout_s=timeout_s, progress=progress,
                  fail_fast=True)
    return status(cluster, cfg)


def helm_releases(namespaces: list[str], *, kubeconfig: str | None = None, context: str | None = None,
                  runner: Runner | None = None) -> dict[str, dict[str, Any]]:
    """``{release: helm list entry}`` for the given namespaces (needs helm)."""
    out: dict[str, dict[str, Any]] = {}
    for ns in namespaces:
        text = run_helm(["helm", "list", "-n", ns, "-o", "json", *kube_flags(kubeconfig, context)], runner)
        for entry in json.loads(text or "[]"):
            out[entry["name"]] = entry
    return out


def release_rows(releases: dict[str, dict[str, Any]], cfg: WorkshopConfig) -> list[Check]:
    """One row per workshop release: deployed at the pinned chart version?"""
    rows = []
    for rel in platform_releases(cfg):
        want = f"{rel.chart.rsplit('/', 1)[-1]}-{rel.version}"
        e = releases.get(rel.name)
        if e is None:
            rows.append(Check(f"helm release {rel.name}", "FAIL", "not installed", want, fix="workshop platform install"))
            continue
        ok = e.get("chart") == want and e.get("status") == "deployed"
        rows.append(Check(f"helm release {rel.name}", "PASS" if ok else "FAIL", f"{e.get('chart')} {e.get('status')}", want,
                        fix="" if ok else "workshop platform install (upgrades to the pinned chart)"))
    return rows


def status(cluster: Cluster, cfg: WorkshopConfig, *, with_helm: bool = False, kubeconfig: str | None = None,
           context: str | None = None, runner: Runner | None = None) -> pd.DataFrame:
    """Platform verdicts: CRD version and platform pods (and the helm releases when ``with_helm``)."""
    s = Snapshot(context=cluster.context)
    s.crds = cluster.list("apiextensions.k8s.io/v1", "CustomResourceDefinition")
    s.platform_pods = cluster.list("v1", "Pod", cfg.platform_namespace)
    rows = [check_crds(s), *check_platform(s, cfg)]
    if with_helm:
        namespaces = sorted({r.namespace for r in platform_releases(cfg)})
        rows = release_rows(helm_releases(namespaces, kubeconfig=kubeconfig, context=context, runner=runner), cfg) + rows
    return to_frame(rows)
