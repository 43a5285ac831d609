"""Section 1 add-ons: namespace, the HF token Secret template, the EFA device plugin and the GDRCopy installer.

Images come from :mod:`workshop_lib.versions`. The Secret template never holds a token: the value is a placeholder
that ``kubectl apply`` would store as-is, so the notebooks create the real Secret from the environment instead.

Example:
    >>> from workshop_lib.config import WorkshopConfig
    >>> hf_secret_template(WorkshopConfig())["stringData"]
    {'HF_TOKEN': 'REPLACE_WITH_YOUR_HF_TOKEN'}
"""

from __future__ import annotations

from typing import Any

from workshop_lib import versions
from workshop_lib.config import WorkshopConfig
from workshop_lib.k8s import EFA_RESOURCE, GPU_RESOURCE, INSTANCE_LABEL

HF_TOKEN_KEY = "HF_TOKEN"  # a key named `token` is not picked up (HTTP 401), FACTS.md "Cluster setup"
HF_TOKEN_PLACEHOLDER = "REPLACE_WITH_YOUR_HF_TOKEN"
GPU_TOLERATION = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}
EFA_TOLERATION = {"key": EFA_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}


def namespace(cfg: WorkshopConfig) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": cfg.namespace}}


def hf_secret_template(cfg: WorkshopConfig) -> dict[str, Any]:
    """The ``hf-token-secret`` Secret with key ``HF_TOKEN`` and a placeholder value (never a token)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": cfg.hf_token_secret, "namespace": cfg.namespace},
        "type": "Opaque",
        "stringData": {HF_TOKEN_KEY: HF_TOKEN_PLACEHOLDER},
    }


def _gpu_node_affinity(cfg: WorkshopConfig) -> dict[str, Any]:
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": INSTANCE_LABEL, "operator": "In", "values": [cfg.instance_type]}]}
    ]}}}


def efa_device_plugin(cfg: WorkshopConfig) -> dict[str, Any]:
    """The EKS EFA device plugin DaemonSet: exposes ``vpc.amazonaws.com/efa`` (32 per p5.48xlarge) to the scheduler."""
    labels = {"name": "aws-efa-k8s-device-plugin"}
    host_paths = {"device-plugin": "/var/lib/kubelet/device-plugins", "infiniband": "/dev/infiniband"}
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "aws-efa-k8s-device-plugin", "namespace": "kube-system", "labels": dict(labels)},
        "spec": {
            "selector": {"matchLabels": dict(labels)},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "priorityClassName": "system-node-critical",
                    "hostNetwork": True,
                    "automountServiceAccountToken": False,
                    "tolerations": [{"key": "CriticalAddonsOnly", "operator": "Exists"}, EFA_TOLERATION, GPU_TOLERATION],
                    "affinity": _gpu_node_affinity(cfg),
                    "containers": [{
                        "name": "aws-efa-k8s-device-plugin",
                        "image": versions.image("efa-device-plugin"),
                        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                        "resources": {"requests": {"cpu": "10m", "memory": "20Mi"}},
                        "volumeMounts": [{"name": n, "mountPath": p} for n, p in host_paths.items()],
                    }],
                    "volumes": [{"name": n, "hostPath": {"path": p}} for n, p in host_paths.items()],
                },
            },
        },
    }


GDRCOPY_SCRIPT = """\
#!/bin/bash
# Runs in the host's namespaces (nsenter -t 1). Idempotent: does nothing when gdrdrv is loaded.
set -euo pipefail
if [ -e /dev/gdrdrv ] && grep -q '^gdrdrv ' /proc/modules; then
  echo "gdrcopy: gdrdrv already loaded"; exit 0
fi
VERSION={version}
WORK=/opt/gdrcopy-$VERSION
if [ ! -d "$WORK" ]; then
  if command -v dnf >/dev/null; then dnf install -y -q "kernel-devel-$(uname -r)" gcc make tar curl; fi
  if command -v apt-get >/dev/null; then apt-get update -q && apt-get install -y -q "linux-headers-$(uname -r)" build-essential curl; fi
  curl -fsSL "https://github.com/NVIDIA/gdrcopy/archive/refs/tags/v$VERSION.tar.gz" | tar -xz -C /opt
fi
cd "$WORK/src/gdrdrv" && make -s
cd "$WORK" && ./insmod.sh
test -e /dev/gdrdrv && echo "gdrcopy: gdrdrv $VERSION loaded"
"""


def gdrcopy_installer(cfg: WorkshopConfig) -> list[dict[str, Any]]:
    """A ConfigMap with the install script and a privileged DaemonSet that runs it on every GPU node, then idles.

    One pod per GPU node; ``/dev/gdrdrv`` present afterwards is the check. Needs outbound internet on the node
    (kernel headers, the gdrcopy source tarball); air-gapped nodes need an AMI with gdrdrv instead.
    """
    name = "gdrcopy-installer"
    labels = {"app.kubernetes.io/name": name}
    script = GDRCOPY_SCRIPT.replace("{version}", versions.chart_version("gdrcopy"))
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "kube-system"},
          "data": {"install-gdrcopy.sh": script}}
    run = "nsenter -t 1 -m -u -i -n -p -- bash -s < /scripts/install-gdrcopy.sh && exec sleep infinity"
    ds = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": "kube-system", "labels": dict(labels)},
        "spec": {
            "selector": {"matchLabels": dict(labels)},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "hostPID": True,
                    "automountServiceAccountToken": False,
                    "tolerations": [EFA_TOLERATION, GPU_TOLERATION],
                    "affinity": _gpu_node_affinity(cfg),
                    "containers": [{
                        "name": name,
                        "image": versions.image("gdrcopy-installer"),
                        "command": ["/bin/bash", "-c", run],
                        "securityContext": {"privileged": True},
                        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}},
                        "volumeMounts": [{"name": "scripts", "mountPath": "/scripts", "readOnly": True}],
                    }],
                    "volumes": [{"name": "scripts", "configMap": {"name": name, "defaultMode": 0o755}}],
                },
            },
        },
    }
    return [cm, ds]
