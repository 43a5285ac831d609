"""Preflight: is this cluster (or this machine) ready for the workshop? One PASS/WARN/FAIL row per check.

EKS checks read the cluster once (:func:`snapshot`, side effects) and then judge it with small pure functions, so each
verdict is testable from data. The HF token secret is checked by its key names only; its value is never kept,
printed or returned.

Example:
    >>> from workshop_lib.cluster import Cluster  # doctest: +SKIP
    >>> df = preflight_eks(Cluster.connect(), WorkshopConfig(target="eks"))  # doctest: +SKIP
    >>> df[df.status == "FAIL"]  # doctest: +SKIP
"""

from __future__ import annotations

import os
import platform as _platform
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from workshop_lib import table, versions
from workshop_lib.checks import FAIL, INFO, PASS, WARN, Check
from workshop_lib.cluster.client import Cluster
from workshop_lib.cluster.diagnose import ready_counts
from workshop_lib.config import INSTANCE_TYPES, WorkshopConfig, parse_quantity
from workshop_lib.errors import ClusterError
from workshop_lib.k8s import DGD_API, DGD_CRD, DGD_KIND, EFA_RESOURCE, GPU_RESOURCE, INSTANCE_LABEL, ZONE_LABEL

# Rows are workshop_lib.checks.Check (INFO: a manual check the API cannot see, it does not judge); preflight's table
# shows them without the evidence column.
COLUMNS = ["check", "status", "found", "expected", "fix"]
# Expected platform pods: name prefix -> containers (FACTS.md, "Cluster setup").
PLATFORM_PODS = {
    "dynamo-platform-dynamo-operator-controller-manager-": 2,
    "dynamo-platform-etcd-0": 1,
    "dynamo-platform-nats-0": 2,
}
INSTALL_FIX = "workshop platform install"
SIDE_CHANNEL_PORT = 5600  # vLLM 0.14.1 envs.py VLLM_NIXL_SIDE_CHANNEL_PORT default (the kit does not change it)


@dataclass
class Snapshot:
    """What preflight read from the cluster. ``errors`` maps a part (nodes, daemonsets...) to why it could not be read."""

    version: str = ""
    host: str = ""
    context: str = ""
    nodes: list[dict[str, Any]] = field(default_factory=list)
    daemonsets: list[dict[str, Any]] = field(default_factory=list)
    crds: list[dict[str, Any]] = field(default_factory=list)
    platform_pods: list[dict[str, Any]] = field(default_factory=list)
    secret_keys: list[str] | None = None  # None: the secret does not exist
    network_policies: list[dict[str, Any]] = field(default_factory=list)  # in the workshop namespace
    workloads: list[dict[str, Any]] = field(default_factory=list)  # DGDs and pods in the workshop namespace
    errors: dict[str, str] = field(default_factory=dict)


def to_frame(rows: list[Check]) -> pd.DataFrame:
    """Rows as a DataFrame with columns ``check, status, found, expected, fix`` (:func:`workshop_lib.table.frame`)."""
    return table.frame(rows, COLUMNS)


# ------------------------------------------------------------------------------------------------ reading (edge)
def snapshot(cluster: Cluster, cfg: WorkshopConfig) -> Snapshot:
    """Read everything the EKS checks need. Unreadable parts (403...) are recorded in ``errors``, not raised."""
    s = Snapshot(version=cluster.version(), host=cluster.host, context=cluster.context)

    def read(part: str, fn: Any) -> Any:
        try:
            return fn()
        except ClusterError as exc:
            s.errors[part] = str(exc)
            return None

    s.nodes = read("nodes", lambda: cluster.list("v1", "Node")) or []
    s.daemonsets = read("daemonsets", lambda: cluster.list("apps/v1", "DaemonSet")) or []
    s.crds = read("crds", lambda: cluster.list("apiextensions.k8s.io/v1", "CustomResourceDefinition")) or []
    s.platform_pods = read("platform", lambda: cluster.list("v1", "Pod", cfg.platform_namespace)) or []

    def secret_keys() -> list[str] | None:
        sec = cluster.get("v1", "Secret", cfg.hf_token_secret, cfg.namespace)
        return None if sec is None else sorted({**(sec.get("data") or {}), **(sec.get("stringData") or {})})

    s.secret_keys = read("secret", secret_keys)
    s.network_policies = read("netpol", lambda: cluster.list("networking.k8s.io/v1", "NetworkPolicy", cfg.namespace)) or []
    dgds = read("dgds", lambda: cluster.list(DGD_API, DGD_KIND, cfg.namespace)) or []
    s.errors.pop("dgds", None)  # no DGD kind means no CRDs: the Dynamo CRDs row says so
    pods = read("workloads", lambda: cluster.list("v1", "Pod", cfg.namespace)) or []
    s.workloads = [*dgds, *pods]
    return s


# ------------------------------------------------------------------------------------------------ judging (pure)
def gpu_nodes(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Nodes whose instance type is a known GPU instance (``INSTANCE_TYPES``)."""
    return [n for n in nodes if (n["metadata"].get("labels") or {}).get(INSTANCE_LABEL) in INSTANCE_TYPES]


def _alloc(node: dict[str, Any], resource: str) -> float | None:
    v = ((node.get("status") or {}).get("allocatable") or {}).get(resource)
    return None if v is None else parse_quantity(v, resource)


def _name(o: dict[str, Any]) -> str:
    return str(o["metadata"]["name"])


def check_reachable(s: Snapshot) -> Check:
    minor = s.version.split(".")[1] if s.version.count(".") >= 1 else "0"
    ok = minor.isdigit() and int(minor) >= 27
    return Check("cluster reachable", PASS if ok else WARN, f"{s.version} at {s.host} (context {s.context})",
               "Kubernetes >= 1.27", fix="" if ok else "upgrade the cluster: Dynamo 0.9.0 is tested on recent EKS versions")


def check_gpu_nodes(s: Snapshot, cfg: WorkshopConfig) -> list[Check]:
    if "nodes" in s.errors:
        return [Check("GPU nodes", FAIL, "cannot list nodes", "list nodes", fix=s.errors["nodes"])]
    gpus = gpu_nodes(s.nodes)
    types = Counter((n["metadata"]["labels"]).get(INSTANCE_LABEL) for n in gpus)
    found = ", ".join(f"{c} x {t}" for t, c in sorted(types.items())) or "none"
    exp = f">= 2 x {cfg.instance_type} ({INSTANCE_TYPES[cfg.instance_type].gpus} GPU, {INSTANCE_TYPES[cfg.instance_type].efa} EFA each)"
    rows = []
    if not gpus:
        rows.append(Check("GPU nodes", FAIL, found, exp,
                        fix=f"add a GPU node group with {cfg.instance_type} (label {INSTANCE_LABEL})"))
    elif types.get(cfg.instance_type, 0) < 2:
        rows.append(Check("GPU nodes", WARN, found, exp, fix=f"the cross-node section needs two {cfg.instance_type} nodes; "
                        "set instance_type to the type you have, or scale the node group to 2"))
    else:
        rows.append(Check("GPU nodes", PASS, found, exp))
    for n in gpus:
        it = INSTANCE_TYPES[n["metadata"]["labels"][INSTANCE_LABEL]]
        g, e, hp = _alloc(n, GPU_RESOURCE), _alloc(n, EFA_RESOURCE), _alloc(n, "hugepages-2Mi")
        name = _name(n)
        if not g:
            rows.append(Check(f"{GPU_RESOURCE} on {name}", FAIL, "not allocatable", str(it.gpus),
                            fix="install the NVIDIA device plugin / GPU operator on the GPU nodes"))
        else:
            rows.append(Check(f"{GPU_RESOURCE} on {name}", PASS if g >= it.gpus else WARN, f"{g:.0f}", str(it.gpus),
                            fix="" if g >= it.gpus else "some GPUs are unhealthy or not advertised: check the device plugin pod on this node"))
        if e is None:
            rows.append(Check(f"{EFA_RESOURCE} on {name}", FAIL, "not allocatable", str(it.efa),
                            fix="install the EFA device plugin (chart aws-efa-k8s-device-plugin v0.5.6, image v0.5.4) and launch the node "
                            "group with EFA interfaces enabled"))
        else:
            rows.append(Check(f"{EFA_RESOURCE} on {name}", PASS if e >= it.efa else WARN, f"{e:.0f}", str(it.efa),
                            fix="" if e >= it.efa else f"{it.name} has {it.efa} EFA devices: launch the node group with all "
                            "EFA interfaces (or set efa_per_worker to what is there)"))
        need = parse_quantity(cfg.hugepages_2mi, "hugepages_2mi")
        have = hp or 0.0
        rows.append(Check(f"hugepages-2Mi on {name}", PASS if have >= need else FAIL, f"{have / 2**20:.0f}Mi",
                        f">= {cfg.hugepages_2mi}", fix="" if have >= need else
                        "pre-allocate 2Mi hugepages in the node group's user data (sysctl vm.nr_hugepages) and "
                        "restart kubelet, or lower hugepages_2mi"))
    return rows


def check_same_az(s: Snapshot, cfg: WorkshopConfig) -> Check:
    zones = Counter((n["metadata"].get("labels") or {}).get(ZONE_LABEL, "?") for n in gpu_nodes(s.nodes)
                    if n["metadata"]["labels"].get(INSTANCE_LABEL) == cfg.instance_type)
    found = ", ".join(f"{z}: {c}" for z, c in sorted(zones.items())) or "no GPU nodes"
    ok = any(c >= 2 for c in zones.values())
    return Check("two GPU nodes in one AZ", PASS if ok else FAIL, found, f">= 2 x {cfg.instance_type} in one zone",
               fix="" if ok else "EFA does not cross availability zones: put both GPU nodes in one AZ (node group subnets)")


def check_daemonset(s: Snapshot, label: str, needle: str, n_gpu: int, fix: str) -> Check:
    if "daemonsets" in s.errors:
        return Check(label, FAIL, "cannot list DaemonSets", "list daemonsets", fix=s.errors["daemonsets"])
    ds = [d for d in s.daemonsets if needle in _name(d)]
    if not ds:
        return Check(label, FAIL, "not installed", f"ready on all {n_gpu} GPU nodes", fix=fix)
    d = ds[0]
    st = d.get("status") or {}
    ready, desired = int(st.get("numberReady", 0)), int(st.get("desiredNumberScheduled", 0))
    found = f"{d['metadata'].get('namespace')}/{_name(d)} {ready}/{desired} ready"
    ok = ready == desired and ready >= n_gpu
    return Check(label, PASS if ok else FAIL, found, f"ready on all {n_gpu} GPU nodes",
               fix="" if ok else f"kubectl -n {d['metadata'].get('namespace')} describe ds {_name(d)}: its pods are not "
               "running on every GPU node (tolerations, nodeSelector, image pull)")


def check_crds(s: Snapshot) -> Check:
    want = versions.chart_version("dynamo-crds")
    if "crds" in s.errors:
        return Check("Dynamo CRDs", FAIL, "cannot list CRDs", f"dynamo-crds {want}", fix=s.errors["crds"])
    crd = next((c for c in s.crds if _name(c) == DGD_CRD), None)
    if crd is None:
        return Check("Dynamo CRDs", FAIL, f"{DGD_CRD} missing", f"dynamo-crds {want}", fix=INSTALL_FIX)
    chart = (crd["metadata"].get("labels") or {}).get("helm.sh/chart", "")
    if not chart:
        return Check("Dynamo CRDs", WARN, f"{DGD_CRD} present, chart version unknown", f"dynamo-crds {want}",
                   fix=f"reinstall with {INSTALL_FIX} so the version is recorded (helm.sh/chart label)")
    found = chart.removeprefix("dynamo-crds-")
    ok = found == want
    return Check("Dynamo CRDs", PASS if ok else FAIL, f"dynamo-crds {found}", f"dynamo-crds {want}",
               fix="" if ok else f"upgrade: {INSTALL_FIX} (installs dynamo-crds {want})")


def check_platform(s: Snapshot, cfg: WorkshopConfig) -> list[Check]:
    if "platform" in s.errors:
        return [Check("platform pods", FAIL, "cannot list pods", f"pods in {cfg.platform_namespace}", fix=s.errors["platform"])]
    rows = []
    for prefix, containers in PLATFORM_PODS.items():
        pod = next((p for p in s.platform_pods if _name(p).startswith(prefix)), None)
        label = f"platform pod {prefix.rstrip('-')}{'-*' if prefix.endswith('-') else ''}"
        if pod is None:
            rows.append(Check(label, FAIL, "missing", f"{containers}/{containers} Ready in {cfg.platform_namespace}", fix=INSTALL_FIX))
            continue
        r, t = ready_counts(pod)
        ok = r == containers == t
        rows.append(Check(label, PASS if ok else FAIL, f"{_name(pod)} {r}/{t}", f"{containers}/{containers}",
                        fix="" if ok else f"kubectl -n {cfg.platform_namespace} describe pod {_name(pod)}; then {INSTALL_FIX}"))
    return rows


def check_hf_secret(s: Snapshot, cfg: WorkshopConfig) -> Check:
    label = f"secret {cfg.namespace}/{cfg.hf_token_secret}"
    create = (f"kubectl -n {cfg.namespace} create secret generic {cfg.hf_token_secret} "
              '--from-literal=HF_TOKEN="$HF_TOKEN"')
    if "secret" in s.errors:
        return Check(label, FAIL, "cannot read", "key HF_TOKEN", fix=s.errors["secret"])
    if s.secret_keys is None:
        return Check(label, FAIL, "missing", "key HF_TOKEN", fix=create)
    keys = ", ".join(s.secret_keys) or "no keys"
    if "HF_TOKEN" in s.secret_keys:
        return Check(label, PASS, f"keys: {keys} (values not read out)", "key HF_TOKEN")
    if "token" in s.secret_keys:
        return Check(label, FAIL, f"keys: {keys}", "key HF_TOKEN",
                   fix="the key must be HF_TOKEN: a key named 'token' is not picked up and model download fails with "
                   f"HTTP 401. Delete the secret and re-create it: {create}")
    return Check(label, FAIL, f"keys: {keys}", "key HF_TOKEN", fix=f"re-create it: {create}")


# ------------------------------------------------------------------------------------------------ issue 19: what the class needs
def check_worker_image(cfg: WorkshopConfig) -> Check:
    """LIBFABRIC needs an image with libfabric: the stock 0.9.0 runtime images have none (FACTS.md, stock images)."""
    from workshop_lib.manifests.lint import EFA_IMAGE_FIX  # noqa: PLC0415 - the one wording of the fix

    image = str(cfg.worker_image)
    label = "worker image for NIXL " + cfg.kv_backend
    if cfg.kv_backend != "LIBFABRIC":
        return Check(label, PASS, image, "UCX is in every runtime image")
    expected = "an image built with EFA (libfabric + hwloc + the NIXL LIBFABRIC plugin)"
    if versions.stock_runtime_without_libfabric(image) or versions.is_efa_placeholder(image):
        why = "placeholder" if versions.is_efa_placeholder(image) else "stock image: no libfabric in its runtime stage"
        return Check(label, FAIL, f"{image} ({why})", expected, fix=EFA_IMAGE_FIX)
    if cfg.framework == "trtllm":
        from workshop_lib.manifests.lint import TRTLLM_UCX_ONLY  # noqa: PLC0415

        return Check(label, WARN, f"{image} (TRT-LLM)", expected, fix=f"{TRTLLM_UCX_ONLY}; prefer UCX with TRT-LLM, or vLLM for "
                   "LIBFABRIC, and check the worker log for 'NixlTransferAgent::NixlTransferAgent using NIXL backend: LIBFABRIC'")
    return Check(label, PASS, image, expected)


def _selector_matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """Kubernetes label-selector semantics (an empty selector matches everything)."""
    if selector is None:
        return False
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e.get("key"), e.get("operator"), e.get("values") or []
        has = key in labels
        if (op == "In" and (not has or labels[key] not in values)) or (op == "NotIn" and has and labels[key] in values) \
                or (op == "Exists" and not has) or (op == "DoesNotExist" and has):
            return False
    return True


def _port_allowed(ports: list[dict[str, Any]] | None, port: int) -> bool:
    if not ports:
        return True
    for p in ports:
        if str(p.get("protocol", "TCP")).upper() != "TCP":
            continue
        first = p.get("port")
        if first is None:
            return True
        if isinstance(first, str) and not first.isdigit():
            continue  # a named port: not the side channel (vLLM does not name it)
        end = p.get("endPort") or first
        if int(first) <= port <= int(end):
            return True
    return False


def _peer_allowed(peers: list[dict[str, Any]] | None, labels: dict[str, str]) -> bool:
    if not peers:
        return True  # no from/to: any peer
    for peer in peers:
        if "ipBlock" in peer:
            continue  # pod IPs change; an ipBlock is not a reliable allow for pod-to-pod traffic
        ns_sel = peer.get("namespaceSelector")
        if ns_sel is not None and ns_sel != {}:
            continue  # another namespace's pods: the workers share one
        if _selector_matches(peer.get("podSelector", {}) if "podSelector" in peer else {}, labels):
            return True
    return False


def side_channel_blockers(policies: list[dict[str, Any]], labels: dict[str, str], port: int) -> list[str]:
    """Names of the directions (``<policy> ingress``...) that stop worker-to-worker TCP on ``port``.

    A pod selected by at least one policy of a type (Ingress/Egress) only gets traffic some such policy allows.
    """
    out = []
    for direction, key, peers_key in (("Ingress", "ingress", "from"), ("Egress", "egress", "to")):
        selecting = [p for p in policies if _selector_matches((p.get("spec") or {}).get("podSelector", {}), labels)
                     and direction in ((p.get("spec") or {}).get("policyTypes")
                                       or (["Ingress", "Egress"] if (p.get("spec") or {}).get("egress") else ["Ingress"]))]
        if not selecting:
            continue
        allowed = any(_peer_allowed(r.get(peers_key), labels) and _port_allowed(r.get("ports"), port)
                      for p in selecting for r in (p["spec"].get(key) or []))
        if not allowed:
            out.append(f"{direction.lower()} ({', '.join(_name(p) for p in selecting)})")
    return out


def check_network_policy(s: Snapshot, cfg: WorkshopConfig) -> Check:
    """No NetworkPolicy in the workshop namespace may stop the vLLM NIXL side channel between the worker pods."""
    from workshop_lib.manifests.dgd import LABEL_COMPONENT, LABEL_GRAPH, dgd_name  # noqa: PLC0415

    port = SIDE_CHANNEL_PORT
    label = f"NetworkPolicy vs NIXL side channel (TCP {port})"
    if "netpol" in s.errors:
        return Check(label, WARN, "cannot list NetworkPolicies", "worker pods reach each other", fix=s.errors["netpol"])
    if not s.network_policies:
        return Check(label, PASS, f"no NetworkPolicy in {cfg.namespace}", "worker pods reach each other")
    labels = {LABEL_COMPONENT: "worker", LABEL_GRAPH: dgd_name(cfg, "cross-node")}
    blocked = side_channel_blockers(s.network_policies, labels, port)
    found = f"{len(s.network_policies)} polic{'y' if len(s.network_policies) == 1 else 'ies'}"
    if not blocked:
        return Check(label, PASS, f"{found}; TCP {port} between workers allowed", "worker pods reach each other")
    return Check(label, FAIL, f"{found}; blocks {' and '.join(blocked)}", "worker pods reach each other",
               fix=f"allow TCP {port} (VLLM_NIXL_SIDE_CHANNEL_PORT, vLLM 0.14.1 default) between pods labelled "
               f"{LABEL_COMPONENT}=worker in {cfg.namespace}, ingress and egress: without it decode never gets the "
               "prefill worker's NIXL metadata")


def _host_infiniband_users(workloads: list[dict[str, Any]]) -> list[str]:
    out = []
    for w in workloads:
        if w.get("kind") == DGD_KIND:
            specs = [(f"{_name(w)}/{n}", (svc or {}).get("extraPodSpec") or {})
                     for n, svc in ((w.get("spec") or {}).get("services") or {}).items()]
        else:
            specs = [(_name(w), w.get("spec") or {})]
        for who, spec in specs:
            for v in spec.get("volumes") or []:
                path = str(((v or {}).get("hostPath") or {}).get("path") or "")
                if path.rstrip("/") == "/dev/infiniband" or path.startswith("/dev/infiniband/"):
                    out.append(f"{w.get('kind')} {who}")
    return out


def check_host_infiniband(s: Snapshot, cfg: WorkshopConfig) -> Check:
    label = "worker pods mounting host /dev/infiniband"
    if "workloads" in s.errors:
        return Check(label, WARN, "cannot list DGDs/pods", "none", fix=s.errors["workloads"])
    users = _host_infiniband_users(s.workloads)
    if not users:
        return Check(label, PASS, f"none of {len(s.workloads)} DGDs/pods in {cfg.namespace}", "none")
    return Check(label, WARN, ", ".join(users), "none",
               fix="remove the hostPath /dev/infiniband volume: it shows the container every RDMA device of the node and "
               f"can hide the EFA devices the pod was given; request {EFA_RESOURCE} instead")


def manual_checks(s: Snapshot, cfg: WorkshopConfig) -> list[Check]:
    """What the Kubernetes API cannot see, as INFO rows whose fix is the AWS CLI command to run (AWS EFA user guide)."""
    nodes = [_name(n) for n in gpu_nodes(s.nodes)
             if (n["metadata"].get("labels") or {}).get(INSTANCE_LABEL) == cfg.instance_type] or ["<gpu-node-1>", "<gpu-node-2>"]
    names = ",".join(nodes)
    sg = ("aws ec2 describe-instances --filters Name=private-dns-name,Values=" + names +
          " --query \"Reservations[].Instances[].NetworkInterfaces[?InterfaceType=='efa'].Groups[].GroupId\" --output text"
          " | xargs -n1 | sort -u | xargs aws ec2 describe-security-groups --query "
          "\"SecurityGroups[].{id:GroupId,in:IpPermissions[].UserIdGroupPairs[].GroupId,"
          "out:IpPermissionsEgress[].UserIdGroupPairs[].GroupId}\" --group-ids")
    pg = ("aws ec2 describe-instances --filters Name=private-dns-name,Values=" + names +
          " --query \"Reservations[].Instances[].[PrivateDnsName,Placement.GroupName,Placement.AvailabilityZone]\""
          " --output table")
    return [
        Check("manual: EFA security group allows itself", INFO, "not visible to the Kubernetes API",
            "the EFA interfaces' security group has an inbound and an outbound rule for all traffic from/to itself", fix=sg),
        Check("manual: GPU nodes in one cluster placement group", INFO, "not visible to the Kubernetes API",
            f"{len(nodes)} x {cfg.instance_type} share one placement group and AZ", fix=pg),
    ]


def judge(s: Snapshot, cfg: WorkshopConfig) -> list[Check]:
    """All EKS verdicts for a snapshot (pure)."""
    n_gpu = max(len(gpu_nodes(s.nodes)), 1)
    return [
        check_reachable(s),
        *check_gpu_nodes(s, cfg),
        check_same_az(s, cfg),
        check_daemonset(s, "EFA device plugin DaemonSet", "efa", n_gpu,
                        "install the EFA device plugin: helm install aws-efa-k8s-device-plugin eks/aws-efa-k8s-device-plugin "
                        "--version v0.5.6 -n kube-system (tolerating the GPU taint)"),
        check_daemonset(s, "GDRCopy DaemonSet", "gdrcopy", n_gpu,
                        "apply the GDRCopy installer DaemonSet (workshop render --profile platform writes it)"),
        check_crds(s),
        *check_platform(s, cfg),
        check_hf_secret(s, cfg),
        check_worker_image(cfg),
        check_network_policy(s, cfg),
        check_host_infiniband(s, cfg),
        *manual_checks(s, cfg),
    ]


def preflight_eks(cluster: Cluster, cfg: WorkshopConfig) -> pd.DataFrame:
    """Run the EKS checks against a connected cluster."""
    return to_frame(judge(snapshot(cluster, cfg), cfg))


# ------------------------------------------------------------------------------------------------ local target
def local_rows() -> list[Check]:
    """The local lab's prerequisites: Linux, Python, cores, then the rows of ``workshop_lib.lab.setup.status()``."""
    rows = [
        Check("operating system", PASS if sys.platform == "linux" else FAIL, f"{_platform.system()} {_platform.release()}",
            "Linux", fix="" if sys.platform == "linux" else "run the local lab on Linux (a VM or container works)"),
        Check("python", PASS if sys.version_info >= (3, 11) else FAIL, _platform.python_version(), ">= 3.11",
            fix="" if sys.version_info >= (3, 11) else "use Python 3.11 or newer (make PYTHON=python3.11 setup)"),
    ]
    cores = os.cpu_count() or 1
    rows.append(Check("CPU cores", PASS if cores >= 2 else WARN, str(cores), ">= 2",
                    fix="" if cores >= 2 else "the lab runs on one core, slowly"))
    from workshop_lib.lab import setup as lab_setup

    # already Check rows: an optional item (libfabric: the LIBFABRIC lessons say so and UCX still runs) is WARN
    rows.extend(lab_setup.status())
    return rows


def preflight_local() -> pd.DataFrame:
    return to_frame(local_rows())


def run(target: str = "eks", cfg: WorkshopConfig | None = None, *, kubeconfig: str | None = None,
        context: str | None = None) -> pd.DataFrame:
    """Preflight for ``target``. For ``eks`` an unreachable cluster raises ClusterError (one line)."""
    cfg = cfg or WorkshopConfig(target=target)
    if target == "local":
        return preflight_local()
    return preflight_eks(Cluster.connect(kubeconfig, context), cfg)


def failed(df: pd.DataFrame) -> bool:
    """True when any row is FAIL."""
    return bool((df["status"] == FAIL).any())
