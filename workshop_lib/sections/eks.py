"""The eks side of the notebooks: one cached cluster connection and the few steps built on ``workshop_lib.cluster``,
``preflight``, ``platform`` and ``manifests``.

Example:
    >>> from workshop_lib.config import WorkshopConfig
    >>> efa_rows([{"metadata": {"name": "n1", "labels": {"node.kubernetes.io/instance-type": "p5.48xlarge"}},
    ...            "status": {"allocatable": {"vpc.amazonaws.com/efa": "32"}}}], WorkshopConfig()).rows[0].status
    'PASS'
"""

from __future__ import annotations

import base64
import getpass
import os
import shlex
import subprocess
from typing import TYPE_CHECKING, Any

from workshop_lib.checks import CheckTable
from workshop_lib.config import INSTANCE_TYPES, WorkshopConfig
from workshop_lib.cost import gpu_node_starts as _starts
from workshop_lib.errors import ConfigError, PlatformError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from workshop_lib.cluster import Cluster

INSTANCE_LABEL = "node.kubernetes.io/instance-type"
EFA_RESOURCE = "vpc.amazonaws.com/efa"
_CLUSTERS: dict[str, Cluster] = {}


def cluster() -> Cluster:
    """The cluster of ``$KUBECONFIG`` (or ``~/.kube/config``), connected once per kernel and kubeconfig."""
    from workshop_lib.cluster import Cluster

    key = os.environ.get("KUBECONFIG", "~/.kube/config") + "|" + os.environ.get("WORKSHOP_KUBE_CONTEXT", "")
    if key not in _CLUSTERS:
        _CLUSTERS[key] = Cluster.connect(context=os.environ.get("WORKSHOP_KUBE_CONTEXT") or None)
    return _CLUSTERS[key]


def gpu_node_starts(cfg: WorkshopConfig) -> list[str]:
    """``creationTimestamp`` of each ``cfg.instance_type`` node (for the running cost)."""
    return _starts(cluster().list("v1", "Node"), cfg.instance_type)


# ------------------------------------------------------------------------------------------------ section 01
def preflight(cfg: WorkshopConfig) -> pd.DataFrame:
    """The preflight rows for the cluster."""
    from workshop_lib.preflight import preflight_eks

    return preflight_eks(cluster(), cfg)


def helm_commands(cfg: WorkshopConfig) -> list[list[str]]:
    """The ``helm upgrade --install`` argv of the CRDs and the platform, in order."""
    from workshop_lib.manifests import platform_releases

    return [r.command() for r in platform_releases(cfg)]


def _helm(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    except FileNotFoundError:
        raise PlatformError("helm", "not found on PATH", "install Helm 3 (https://helm.sh/docs/intro/install/)") from None
    if out.returncode != 0:
        last = (out.stderr or out.stdout).strip().splitlines()[-1:] or ["no output"]
        raise PlatformError(f"helm {argv[1]} {argv[2] if len(argv) > 2 else ''}".strip(), last[0],
                            "check the chart access and your kubeconfig, then re-run the cell")
    return out.stdout


def install_platform(cfg: WorkshopConfig, timeout_s: int = 1800) -> pd.DataFrame:
    """Install (or upgrade) the CRDs and the platform with Helm, then wait for the three platform pods.

    Returns one row per release (release, chart, version, namespace, command).
    """
    import pandas as pd

    from workshop_lib.cluster import wait_for_pods
    from workshop_lib.manifests import platform_releases

    rows = []
    for rel in platform_releases(cfg):
        argv = rel.command()
        _helm(argv)
        rows.append({"release": rel.name, "chart": rel.chart, "version": rel.version, "namespace": rel.namespace,
                     "command": shlex.join(argv)})
    wait_for_pods(cluster(), cfg.platform_namespace, count=3, timeout_s=timeout_s)
    return pd.DataFrame(rows)


def uninstall_platform(cfg: WorkshopConfig) -> list[str]:
    """``helm uninstall`` the platform and the CRDs (reverse order); a missing release is not an error."""
    from workshop_lib.manifests import platform_releases

    out = []
    for rel in reversed(platform_releases(cfg)):
        argv = ["helm", "uninstall", rel.name, "--namespace", rel.namespace, "--ignore-not-found"]
        _helm(argv)
        out.append(f"uninstalled {rel.name} ({rel.namespace})")
    return out


def efa_rows(nodes: list[dict[str, Any]], cfg: WorkshopConfig) -> CheckTable:
    """One row per GPU node: allocatable ``vpc.amazonaws.com/efa`` against the instance type's EFA count."""
    t = CheckTable()
    gpu = [n for n in nodes if (n["metadata"].get("labels") or {}).get(INSTANCE_LABEL) in INSTANCE_TYPES]
    if not gpu:
        t.add("EFA allocatable", "FAIL", "no GPU nodes", f"{cfg.instance.efa} per {cfg.instance_type}",
              fix=f"add {cfg.instance_type} nodes (EFA enabled) to the cluster")
    for n in gpu:
        itype = n["metadata"]["labels"][INSTANCE_LABEL]
        want = INSTANCE_TYPES[itype].efa
        got = ((n.get("status") or {}).get("allocatable") or {}).get(EFA_RESOURCE)
        t.check_true(f"EFA allocatable on {n['metadata']['name']}", got is not None and int(got) == want,
                     got if got is not None else "missing", f"{want} ({itype})",
                     evidence=f"status.allocatable[{EFA_RESOURCE}]={got}",
                     fix="install the EFA device plugin DaemonSet and make sure the node was created with EFA")
    return t


def verify_platform(cfg: WorkshopConfig) -> CheckTable:
    """Section 01 on eks: platform pods (2/2, 1/1, 2/2), EFA allocatable per node, GDRCopy, CRDs, the HF secret."""
    from workshop_lib import preflight as pf

    snap = pf.snapshot(cluster(), cfg)
    rows = {r.check: r for r in pf.judge(snap, cfg)}
    t = CheckTable()
    for name, row in rows.items():
        if name.startswith(("platform pod", "Dynamo CRDs", "GDRCopy", "EFA device plugin", "secret ")):
            t.add(name, row.status, row.found, row.expected, evidence=row.found, fix=row.fix)
    t.extend(efa_rows(snap.nodes, cfg))
    return t


def put_hf_secret(cfg: WorkshopConfig, token: str | None = None) -> str:
    """Create or update the HF token Secret (key ``HF_TOKEN``) from ``token``, ``$HF_TOKEN`` or a hidden prompt.

    The value is never printed or returned.

    Raises:
        ConfigError: no token given anywhere.
    """
    value = token or os.environ.get("HF_TOKEN") or ""
    source = "the argument" if token else "$HF_TOKEN"
    if not value and _interactive():
        value, source = getpass.getpass("Hugging Face token (input hidden): ").strip(), "the prompt"
    if not value:
        raise ConfigError("HF_TOKEN", "no Hugging Face token in the environment",
                          "export HF_TOKEN=... before starting Jupyter, or run the cell interactively to be prompted")
    secret = {
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": cfg.hf_token_secret, "namespace": cfg.namespace},
        "data": {"HF_TOKEN": base64.b64encode(value.encode()).decode()},
    }
    cl = cluster()
    if cl.get("v1", "Namespace", cfg.namespace) is None:
        cl.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": cfg.namespace}})
    cl.apply(secret, force_conflicts=True)
    del value, secret
    return (f"secret {cfg.namespace}/{cfg.hf_token_secret} (key HF_TOKEN) written from {source}; "
            "the value was not displayed or stored in this notebook")


def _interactive() -> bool:
    from workshop_lib.widgets import headless

    return not headless()


# ------------------------------------------------------------------------------------------------ sections 02-04
def apply_files(files: list[Any]) -> list[str]:
    """Server-side apply every document of rendered files, in dependency order; returns ``kind/name`` applied."""
    from workshop_lib.cluster import apply_all

    docs = [d for f in files for d in f.docs if isinstance(d, dict) and d.get("kind")]
    apply_all(cluster(), docs)
    return [f"{d['kind']}/{d['metadata']['name']}" for d in docs]


def dgd_names(files: list[Any]) -> list[str]:
    """Names of the DynamoGraphDeployments in rendered files."""
    return [d["metadata"]["name"] for f in files for d in f.docs
            if isinstance(d, dict) and d.get("kind") == "DynamoGraphDeployment"]


def wait_dgds(cfg: WorkshopConfig, names: list[str]) -> None:
    """Watch each DGD until Ready (progress bar; problems such as OOMKilled reported as they happen)."""
    from workshop_lib.cluster import wait_for_dgd

    for name in names:
        wait_for_dgd(cluster(), name, cfg.namespace, timeout_s=cfg.deploy_timeout_s)


def component_log(cfg: WorkshopConfig, component: str, dgd: str | None = None) -> str:
    """The current log text of a Dynamo component's pods (``frontend``, ``prefill``, ``decode``...)."""
    from workshop_lib.cluster import component_logs

    logs = component_logs(cluster(), cfg.namespace, component, dgd=dgd)
    return "\n".join(line for lines in logs.values() for line in lines)


def frontend_url(cfg: WorkshopConfig, service: str, state: dict[str, Any]) -> str:
    """A local URL to the frontend Service (port-forward, kept in ``state`` so it is opened once)."""
    from workshop_lib.cluster import port_forward

    key = f"pf:{service}"
    if key not in state:
        cm = port_forward(cluster(), cfg.namespace, service, cfg.frontend_port)
        state[key] = (cm, cm.__enter__())
    return str(state[key][1])


def forwards(state: dict[str, Any]) -> dict[str, str]:
    """Service -> local URL of every port-forward opened by :func:`frontend_url` and still open.

    >>> forwards({"pf:vllm-disagg-frontend": (None, "http://127.0.0.1:40123"), "lab": None})
    {'vllm-disagg-frontend': 'http://127.0.0.1:40123'}
    """
    return {key[3:]: str(val[1]) for key, val in state.items() if key.startswith("pf:")}


def close_forwards(state: dict[str, Any]) -> list[str]:
    """Close every port-forward opened by :func:`frontend_url` (safe twice)."""
    out = []
    for key in [k for k in state if k.startswith("pf:")]:
        cm, url = state.pop(key)
        cm.__exit__(None, None, None)
        out.append(f"closed port-forward {url} -> {key[3:]}")
    return out


def wait_pod_done(cfg: WorkshopConfig, pod: str, timeout_s: float) -> str:
    """Watch one pod until it has finished (phase Succeeded or Failed); returns the phase.

    Raises:
        ClusterTimeout: still running after ``timeout_s``.
    """
    import time

    from tqdm.auto import tqdm

    from workshop_lib.errors import ClusterTimeout

    deadline = time.monotonic() + timeout_s
    phase = "unknown"
    with tqdm(total=None, desc=f"pod {pod}", unit="event", mininterval=1.0) as bar:
        while time.monotonic() < deadline:
            left = max(1.0, deadline - time.monotonic())
            for _, obj in cluster().watch("v1", "Pod", cfg.namespace, field_selector=f"metadata.name={pod}",
                                          timeout_s=min(left, 60.0)):
                phase = ((obj.get("status") or {}).get("phase")) or phase
                bar.set_postfix_str(phase)
                bar.update()
                if phase in ("Succeeded", "Failed"):
                    return phase
    raise ClusterTimeout(f"pod {cfg.namespace}/{pod}", f"still {phase} after {timeout_s:.0f} s",
                         f"kubectl -n {cfg.namespace} logs {pod}; raise DEPLOY_TIMEOUT_S if it is still transferring")


def teardown_namespace(cfg: WorkshopConfig, names: list[str]) -> list[str]:
    """Delete the named DGDs (safe to repeat); the namespace, platform and secret stay."""
    cl = cluster()
    out = []
    for name in names:
        gone = cl.delete("nvidia.com/v1alpha1", "DynamoGraphDeployment", name, cfg.namespace)
        out.append(f"deleted DynamoGraphDeployment {name}" if gone else f"DynamoGraphDeployment {name} already gone")
    return out


# ------------------------------------------------------------------------------------------------ one graph at a time
GRAPH_LABEL = "nvidia.com/dynamo-graph-deployment-name"
DGD_API, DGD_KIND = "nvidia.com/v1alpha1", "DynamoGraphDeployment"


def efa_per_node(files: list[Any]) -> int:
    """EFA devices one node must give a rendered graph: the largest ``vpc.amazonaws.com/efa`` request of any of its
    services (the cross-node graphs put one worker on each node).

    >>> from types import SimpleNamespace as F
    >>> svc = {"resources": {"requests": {"custom": {EFA_RESOURCE: "32"}}}}
    >>> efa_per_node([F(docs=[{"kind": "DynamoGraphDeployment", "spec": {"services": {"PrefillWorker": svc}}}])])
    32
    """
    most = 0
    for f in files:
        for d in f.docs:
            if not isinstance(d, dict) or d.get("kind") != DGD_KIND:
                continue
            for svc in ((d.get("spec") or {}).get("services") or {}).values():
                res = (svc or {}).get("resources") or {}
                for part in ("requests", "limits"):
                    most = max(most, int(((res.get(part) or {}).get("custom") or {}).get(EFA_RESOURCE) or 0))
    return most


def graph_state(cfg: WorkshopConfig, name: str) -> str:
    """``"Ready"``, ``"not Ready"`` or ``"absent"``: the DGD ``name`` in ``cfg.namespace`` as the cluster has it."""
    from workshop_lib.cluster import dgd_ready

    obj = cluster().get(DGD_API, DGD_KIND, name, cfg.namespace)
    if obj is None:
        return "absent"
    return "Ready" if dgd_ready(obj) else "not Ready"


def delete_graph(cfg: WorkshopConfig, name: str) -> bool:
    """Delete the DGD ``name`` and watch until its pods are gone (their GPUs and EFA devices free), with progress.

    Returns False when it was already gone.

    Raises:
        ClusterTimeout: pods still terminating after ``cfg.deploy_timeout_s``.
    """
    import time

    from tqdm.auto import tqdm

    from workshop_lib.errors import ClusterTimeout

    cl = cluster()
    gone = cl.delete(DGD_API, DGD_KIND, name, cfg.namespace)
    sel = f"{GRAPH_LABEL}={name}"
    listed = cl.list_raw("v1", "Pod", cfg.namespace, label_selector=sel)
    left = {p["metadata"]["name"] for p in listed.get("items", [])}
    rv = (listed.get("metadata") or {}).get("resourceVersion")
    deadline = time.monotonic() + cfg.deploy_timeout_s
    with tqdm(total=len(left), desc=f"delete {name}", unit="pod", disable=not left) as bar:
        while left and time.monotonic() < deadline:
            for etype, obj in cl.watch("v1", "Pod", cfg.namespace, label_selector=sel, resource_version=rv,
                                       timeout_s=min(max(1.0, deadline - time.monotonic()), 60.0)):
                rv = (obj.get("metadata") or {}).get("resourceVersion") or rv
                if etype == "DELETED" and obj["metadata"]["name"] in left:
                    left.discard(obj["metadata"]["name"])
                    bar.update()
                if not left:
                    break
    if left:
        raise ClusterTimeout(f"DynamoGraphDeployment {cfg.namespace}/{name}",
                             f"pods still terminating after {cfg.deploy_timeout_s} s: {', '.join(sorted(left))}",
                             f"kubectl -n {cfg.namespace} get pods -l {sel}; re-run the cell once they are gone")
    return gone


def close_forward(state: dict[str, Any], service: str) -> str | None:
    """Close the port-forward to ``service`` opened by :func:`frontend_url`; None when none was open."""
    held = state.pop(f"pf:{service}", None)
    if held is None:
        return None
    held[0].__exit__(None, None, None)
    return f"closed port-forward {held[1]} -> {service}"
