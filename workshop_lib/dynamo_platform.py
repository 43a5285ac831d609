"""Install or upgrade the Dynamo platform (``dynamo-crds`` and ``dynamo-platform`` 0.9.0) with the helm CLI, then verify.

The releases (chart, pinned version, namespace, values including the operator image-tag fix) come from
:func:`workshop_lib.manifests.helm.platform_releases`; this module only runs them. ``helm upgrade --install`` makes
a second install a no-op upgrade. Verification watches the platform pods until the operator (2/2), etcd (1/1) and
NATS (2/2) are Ready.

Example:
    >>> cmds = install(WorkshopConfig(target="eks"), dry_run=True)  # doctest: +SKIP
    >>> cmds[0][:4]  # doctest: +SKIP
    ['helm', 'upgrade', '--install', 'dynamo-crds']
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from workshop_lib.checks import Check
from workshop_lib.cluster.client import Cluster
from workshop_lib.cluster.wait import wait_for_pods
from workshop_lib.config import WorkshopConfig
from workshop_lib.errors import PlatformError
from workshop_lib.manifests.helm import HelmRelease, platform_releases
from workshop_lib.preflight import PLATFORM_PODS, Snapshot, check_crds, check_platform, to_frame

HELM_INSTALL_HINT = ("install Helm 3 (https://helm.sh/docs/intro/install/, e.g. "
                     "curl -fsSL https://raw.githubusercontent.com/helm/helm/main/scripts/get-helm-3 | bash) "
                     "and make sure `helm` is on PATH")
Runner = Callable[[list[str]], subprocess.CompletedProcess[str]]


def helm_binary() -> str:
    """Path of the ``helm`` executable.

    Raises:
        PlatformError: helm is not on PATH.
    """
    path = shutil.which("helm")
    if not path:
        raise PlatformError("helm", "the helm CLI is not on PATH", HELM_INSTALL_HINT)
    return path


def kube_flags(kubeconfig: str | None = None, context: str | None = None) -> list[str]:
    """helm's ``--kubeconfig``/``--kube-context`` flags.

    >>> kube_flags("/k", "c")
    ['--kubeconfig', '/k', '--kube-context', 'c']
    """
    return [*(["--kubeconfig", str(kubeconfig)] if kubeconfig else []), *(["--kube-context", context] if context else [])]


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


def _helm_fix(stderr: str) -> str:
    s = stderr.lower()
    if "kubernetes cluster unreachable" in s:
        return "check your kubeconfig/context (workshop preflight) and that the cluster is reachable"
    if "401" in s or "unauthorized" in s or "denied" in s:
        return "check access to helm.ngc.nvidia.com (helm registry login nvcr.io with an NGC API key if your org needs one)"
    if "another operation" in s and "in progress" in s:
        return "a previous helm run was interrupted: helm history <release> -n <ns>, then helm rollback or uninstall it"
    if "forbidden" in s:
        return "your identity lacks cluster-admin rights needed for CRDs and the operator: ask your admin"
    if "no such host" in s or "timeout" in s or "i/o timeout" in s:
        return "the chart registry is unreachable: check network/proxy, or helm fetch the .tgz and install from the file"
    return "read helm's message above; re-run workshop platform install (it is idempotent)"


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False)


def run_helm(argv: list[str], runner: Runner | None = None) -> str:
    """Run one helm command; returns stdout.

    Raises:
        PlatformError: helm exits non-zero (message: helm's last error line and a fix).
    """
    argv = [helm_binary(), *argv[1:]] if argv and argv[0] == "helm" else argv
    proc = (runner or _run)(argv)
    if proc.returncode != 0:
        err = (proc.stderr or proc.stdout or "").strip().splitlines()
        last = next((ln for ln in reversed(err) if ln.strip()), f"exit code {proc.returncode}")
        release = argv[3] if len(argv) > 3 and argv[1] == "upgrade" else " ".join(argv[1:3])
        raise PlatformError(f"helm release {release}", last.strip()[:400], _helm_fix("\n".join(err)))
    return proc.stdout


def install(cfg: WorkshopConfig, *, kubeconfig: str | None = None, context: str | None = None, dry_run: bool = False,
            verify: bool = True, timeout_s: float = 600, progress: bool = True,
            runner: Runner | None = None) -> list[list[str]]:
    """Install or upgrade the CRDs and the platform, then (``verify``) wait for the platform pods.

    Returns the helm commands (run, or only shown with ``dry_run``; values files then live in a temp dir).
    """
    releases = platform_releases(cfg)
    if dry_run:
        return commands(cfg, None, kubeconfig=kubeconfig, context=context)
    helm_binary()
    with tempfile.TemporaryDirectory(prefix="workshop-helm-") as tmp:
        write_values(releases, Path(tmp))
        cmds = commands(cfg, Path(tmp), kubeconfig=kubeconfig, context=context)
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
