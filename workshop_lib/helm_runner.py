"""The one Helm runner: find ``helm`` on PATH, run one command, turn a failure into a one-line error with a fix.

:mod:`workshop_lib.dynamo_platform` installs, checks and removes the platform releases through it (the releases
themselves are planned in :mod:`workshop_lib.manifests.helm`); :mod:`workshop_lib.manifests.crdsource` pulls the
``dynamo-crds`` chart through it. Nothing else in the kit starts ``helm``.

Example:
    >>> kube_flags("/k", "c")
    ['--kubeconfig', '/k', '--kube-context', 'c']
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable

from workshop_lib.errors import PlatformError

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


def _run(argv: list[str], timeout_s: float | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=timeout_s)


def _where(argv: list[str]) -> str:
    """``helm release <name>`` for an install/upgrade, else ``helm <verb> <arg>`` (e.g. ``helm pull oci://...``)."""
    if len(argv) > 3 and argv[1] == "upgrade":
        return f"helm release {argv[3]}"
    return "helm " + " ".join(argv[1:3])


def run_helm(argv: list[str], runner: Runner | None = None, *, timeout_s: float | None = None) -> str:
    """Run one helm command (``argv[0] == "helm"`` is resolved on PATH); returns stdout.

    Args:
        runner: runs the argv instead of :func:`subprocess.run` (tests).
        timeout_s: give up after this many seconds (None: wait for helm).

    Raises:
        PlatformError: helm is not on PATH (``where == "helm"``), exits non-zero (helm's last error line and a fix)
            or gives no answer within ``timeout_s``.
    """
    argv = [helm_binary(), *argv[1:]] if argv and argv[0] == "helm" else argv
    try:
        proc = runner(argv) if runner else _run(argv, timeout_s)
    except subprocess.TimeoutExpired:
        raise PlatformError(_where(argv), f"no answer in {timeout_s:.0f} s",
                            "check the network (and proxy) to the chart registry and the cluster") from None
    if proc.returncode != 0:
        err = (proc.stderr or proc.stdout or "").strip().splitlines()
        last = next((ln for ln in reversed(err) if ln.strip()), f"exit code {proc.returncode}")
        raise PlatformError(_where(argv), last.strip()[:400], _helm_fix("\n".join(err)))
    return proc.stdout
