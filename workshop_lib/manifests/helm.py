"""Section 1: the Dynamo platform as Helm releases (``dynamo-crds``, ``dynamo-platform``) with pinned versions.

``workshop_lib.dynamo_platform`` runs these commands; :func:`install_script` writes them out so attendees can read them.

Example:
    >>> from workshop_lib.config import WorkshopConfig
    >>> crds, platform = platform_releases(WorkshopConfig())
    >>> crds.command()[:4]
    ['helm', 'upgrade', '--install', 'dynamo-crds']
    >>> "dynamo-operator.controllerManager.manager.image.tag=0.9.0" in platform.command("values.yaml")
    True
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any

from workshop_lib import versions
from workshop_lib.config import WorkshopConfig

OCI_REPO = "oci://" + versions.HELM_REPO_URL.removeprefix("https://")


@dataclass(frozen=True)
class HelmRelease:
    """One ``helm upgrade --install``: release name, chart reference, pinned version, namespace and values."""

    name: str
    chart: str
    version: str
    namespace: str
    values: dict[str, Any] = field(default_factory=dict)
    create_namespace: bool = True
    set_strings: dict[str, str] = field(default_factory=dict)

    @property
    def fetch_url(self) -> str:
        """The chart's ``.tgz`` on NGC (``helm fetch`` alternative to the OCI reference)."""
        return f"{versions.HELM_REPO_URL}/{self.chart.rsplit('/', 1)[-1]}-{self.version}.tgz"

    def command(self, values_file: str | None = None, action: str = "upgrade --install") -> list[str]:
        """The helm argv: ``--version`` pinned, no ``--wait`` (the caller watches readiness itself).

        Without ``values_file`` the values are passed as ``--set``/``--set-string`` flags instead.
        """
        argv = ["helm", *action.split(), self.name, self.chart, "--version", self.version, "--namespace", self.namespace]
        if self.create_namespace:
            argv.append("--create-namespace")
        if values_file:
            argv += ["-f", values_file]
        flat = {} if values_file else flatten(self.values)
        if flat:
            for key, value in flat.items():
                flag = "--set-string" if isinstance(value, str) else "--set"
                argv += [flag, f"{key}={str(value).lower() if isinstance(value, bool) else value}"]
        for key, value in self.set_strings.items():
            if key in flat:
                continue
            argv += ["--set-string", f"{key}={value}"]
        return argv


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (Helm ``--set`` keys).

    >>> flatten({"etcd": {"enabled": True}})
    {'etcd.enabled': True}
    """
    out: dict[str, Any] = {}
    for k, v in values.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def platform_values(cfg: WorkshopConfig) -> dict[str, Any]:
    """Values for ``dynamo-platform``: operator image pinned to 0.9.0 (chart bug), bundled etcd and NATS on."""
    repo, _, tag = versions.image("kubernetes-operator").rpartition(":")
    return {
        "dynamo-operator": {
            "enabled": True,
            "controllerManager": {"manager": {"image": {"repository": repo, "tag": tag}}},
        },
        "etcd": {"enabled": True},
        "nats": {"enabled": True},
    }


def platform_releases(cfg: WorkshopConfig) -> list[HelmRelease]:
    """``[dynamo-crds, dynamo-platform]`` in install order."""
    return [
        HelmRelease("dynamo-crds", f"{OCI_REPO}/dynamo-crds", versions.chart_version("dynamo-crds"), "default", {},
                    create_namespace=False),
        HelmRelease(
            "dynamo-platform",
            f"{OCI_REPO}/dynamo-platform",
            versions.chart_version("dynamo-platform"),
            cfg.platform_namespace,
            platform_values(cfg),
            set_strings={versions.OPERATOR_IMAGE_TAG_FIX: versions.image("kubernetes-operator").rpartition(":")[2]},
        ),
    ]


VALUES_FILE = "values-dynamo-platform.yaml"


def install_script(cfg: WorkshopConfig, head: str, addon_files: list[str]) -> str:
    """A bash script with the exact install commands, in order, run from the directory it sits in."""
    crds, platform = platform_releases(cfg)
    lines = [
        "#!/usr/bin/env bash",
        head.rstrip("\n"),
        "set -euo pipefail",
        'cd "$(dirname "$0")"',
        "",
        f"# 1. CRDs (namespace default). Without OCI access: helm fetch {crds.fetch_url}",
        shlex.join(crds.command()),
        "",
        f"# 2. Operator + etcd + NATS. The {versions.OPERATOR_IMAGE_TAG_FIX} override fixes the 0.9.0 chart's 0.7.1 fallback.",
        "#    The 0.9.0 operator's discovery backend is kubernetes: workers register through the Kubernetes API, not in",
        "#    etcd (etcd still serves nixlbench's rendezvous in section 4).",
        shlex.join(platform.command(VALUES_FILE)),
        "",
        "# 3. The workshop namespace and the node add-ons for EFA nodes.",
        *[f"kubectl apply -f {f}" for f in addon_files],
        "",
        "# 4. The HF token Secret (key HF_TOKEN) from the environment: piped from a shell builtin, so it is never",
        "#    printed, written to disk or visible in a process list.",
        ': "${HF_TOKEN:?export HF_TOKEN first (a Hugging Face read token)}"',
        f"printf '%s' \"$HF_TOKEN\" | kubectl create secret generic {cfg.hf_token_secret} -n {cfg.namespace} "
        "--from-file=HF_TOKEN=/dev/stdin --dry-run=client -o yaml | kubectl apply -f -",
        "",
        f"# Expected: pods dynamo-platform-dynamo-operator-controller-manager-* 2/2, dynamo-platform-etcd-0 1/1 and "
        f"dynamo-platform-nats-0 2/2 in {cfg.platform_namespace}.",
        f"kubectl get pods -n {cfg.platform_namespace}",
        "",
    ]
    return "\n".join(lines)
