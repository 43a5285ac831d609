"""The eks target: a real cluster through the kubeconfig, with :mod:`workshop_lib.cluster` (apply, watch, logs,
port-forward), :mod:`workshop_lib.dynamo_platform` (the platform's Helm releases, through the one Helm runner
:mod:`workshop_lib.helm_runner`) and :mod:`workshop_lib.preflight`.

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
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from workshop_lib.checks import CheckTable
from workshop_lib.config import INSTANCE_TYPES, WorkshopConfig
from workshop_lib.cost import gpu_node_starts as _starts
from workshop_lib.errors import ConfigError
from workshop_lib.k8s import DGD_API, EFA_RESOURCE, INSTANCE_LABEL
from workshop_lib.targets.base import (
    DGD_KIND,
    GRAPH_LABELS,
    ROLE_SERVICES,
    ROLES,
    ServingRun,
    Sides,
    Target,
    dgd_names,
    docs_of,
)

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from workshop_lib.cluster import Cluster

GRAPH_LABEL = "nvidia.com/dynamo-graph-deployment-name"
SERVING_LABELS = GRAPH_LABELS
WARMUP_BATCH = 4  # concurrent completions after the first one, before section 3 reads handshakes
WARMUP_PROMPT = "In one sentence, what does the KV cache hold?"
_CLUSTERS: dict[str, Cluster] = {}


def cluster() -> Cluster:
    """The cluster of ``$KUBECONFIG`` (or ``~/.kube/config``), connected once per kernel and kubeconfig."""
    from workshop_lib.cluster import Cluster

    key = os.environ.get("KUBECONFIG", "~/.kube/config") + "|" + os.environ.get("WORKSHOP_KUBE_CONTEXT", "")
    if key not in _CLUSTERS:
        _CLUSTERS[key] = Cluster.connect(context=os.environ.get("WORKSHOP_KUBE_CONTEXT") or None)
    return _CLUSTERS[key]


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


def efa_per_node(files: list[Any]) -> int:
    """EFA devices one node must give a rendered graph: the largest ``vpc.amazonaws.com/efa`` request of any of its
    services (the cross-node graphs put one worker on each node).

    >>> svc = {"resources": {"requests": {"custom": {EFA_RESOURCE: "32"}}}}
    >>> efa_per_node([{"kind": "DynamoGraphDeployment", "spec": {"services": {"PrefillWorker": svc}}}])
    32
    """
    most = 0
    for d in docs_of(files):
        if d.get("kind") != DGD_KIND:
            continue
        for svc in ((d.get("spec") or {}).get("services") or {}).values():
            res = (svc or {}).get("resources") or {}
            for part in ("requests", "limits"):
                most = max(most, int(((res.get(part) or {}).get("custom") or {}).get(EFA_RESOURCE) or 0))
    return most


def graph_plan(backends: list[str], graphs: dict[str, str], states: dict[str, str],
               coexist: bool) -> list[tuple[str, str]]:
    """The steps that sweep ``backends`` in order, one graph deployed at a time unless both fit (``coexist``).

    ``graphs`` maps a backend to its cross-node graph (a backend without one, e.g. a given URL, is only swept);
    ``states`` maps a graph to ``"Ready"``, ``"not Ready"`` or ``"absent"``. A Ready graph is swept where it stands;
    any other is applied first, after deleting the other graphs still present when the two cannot share the nodes.

    >>> g = {"UCX": "vllm-xnode-ucx", "LIBFABRIC": "vllm-xnode-libfabric"}
    >>> graph_plan(["UCX", "LIBFABRIC"], g, {"vllm-xnode-libfabric": "Ready"}, coexist=False)
    ... # doctest: +NORMALIZE_WHITESPACE
    [('delete', 'LIBFABRIC'), ('apply', 'UCX'), ('sweep', 'UCX'), ('delete', 'UCX'), ('apply', 'LIBFABRIC'),
     ('sweep', 'LIBFABRIC')]
    >>> graph_plan(["UCX", "LIBFABRIC"], g, {"vllm-xnode-libfabric": "Ready"}, coexist=True)
    [('apply', 'UCX'), ('sweep', 'UCX'), ('sweep', 'LIBFABRIC')]
    """
    live = {be for be, g in graphs.items() if states.get(g, "absent") != "absent"}
    ready = {be for be, g in graphs.items() if states.get(g) == "Ready"}
    steps: list[tuple[str, str]] = []
    for be in backends:
        if be in graphs and be not in ready:
            if not coexist:
                for other in [o for o in backends if o in live and o != be]:
                    steps.append(("delete", other))
                    live.discard(other)
                    ready.discard(other)
            steps.append(("apply", be))
            live.add(be)
            ready.add(be)
        steps.append(("sweep", be))
    return steps


class EksTarget(Target):
    """A real cluster: Helm for the platform, server-side apply of the rendered DGDs, watches, pod logs, port-forward.

    Args:
        cfg: the notebook's config.
        urls: backend -> a frontend URL given as a parameter (``UCX_URL``...), swept without deploying.
    """

    name: ClassVar[str] = "eks"
    efa: ClassVar[bool] = True
    published_comparable: ClassVar[bool] = True
    sweep_defaults: ClassVar[dict[str, Any]] = {
        "concurrency": [1, 5, 10, 20], "requests": 100, "isl": 512, "osl": 128,
        "sizes": "4K,16K,64K,256K,1M,4M,16M,64M", "iters": 100}

    def __init__(self, cfg: WorkshopConfig, urls: dict[str, str] | None = None) -> None:
        super().__init__(cfg)
        self.urls = dict(urls or {})
        self._forwards: dict[str, tuple[Any, str]] = {}
        self.profiles: dict[str, list[Any]] = {}

    # ------------------------------------------------------------------------------------------ what it is
    @property
    def engine(self) -> str:
        return self.cfg.framework

    def describe(self) -> list[str]:
        c = self.cfg
        return [f"TARGET=eks: namespace {c.namespace!r} through your kubeconfig, {c.framework} workers on "
                f"{c.instance_type} ({c.instance.efa} EFA per node), NIXL backend {c.kv_backend}."]

    def commands(self, step: str) -> list[str]:
        from workshop_lib.manifests import platform_releases

        c, ns = self.cfg, self.cfg.namespace
        graphs = self.graphs or ["<graph>"]
        table = {
            "platform": [shlex.join(r.command()) for r in platform_releases(c)]
            + [f"kubectl get pods -n {c.platform_namespace} -w"],
            "verify": [f"kubectl get pods -n {c.platform_namespace}",
                       "kubectl get nodes -o custom-columns=NAME:.metadata.name,"
                       "EFA:.status.allocatable.vpc\\.amazonaws\\.com/efa"],
            "secret": [f"kubectl create namespace {ns}",
                       f"kubectl -n {ns} create secret generic {c.hf_token_secret} --from-literal=HF_TOKEN=\"$HF_TOKEN\""],
            "deploy": ["kubectl apply --server-side -f <rendered manifests>"]
            + [f"kubectl -n {ns} wait dynamographdeployment/{g} --for=condition=Ready --timeout={c.deploy_timeout_s}s"
               for g in graphs],
            "logs": [f"kubectl -n {ns} logs -l nvidia.com/dynamo-component={svc},{GRAPH_LABEL}={graphs[0]}"
                     for svc in ROLE_SERVICES.values()],
            "metrics": [f"kubectl -n {ns} port-forward svc/{graphs[0]}-frontend {c.frontend_port} && "
                        f"curl -s localhost:{c.frontend_port}/metrics"],
            "frontend": [f"kubectl -n {ns} port-forward svc/{graphs[0]}-frontend {c.frontend_port}"],
            "teardown": [f"kubectl -n {ns} delete dynamographdeployment {g}" for g in graphs],
        }
        return table[step]

    def cost_note(self, final: bool = False) -> str:
        """The GPU nodes' running cost (node-hours x ``PRICE_PER_NODE_HOUR``), recorded as ``cost_usd``."""
        from workshop_lib import cost
        from workshop_lib.record import record

        try:
            est = cost.estimate(self.gpu_node_starts(), self.cfg.price_per_node_hour, instance_type=self.cfg.instance_type)
        except Exception as exc:  # noqa: BLE001 - the cost line must never stop a notebook
            return f"(running cost unavailable: {exc})"
        record("cost_usd", round(est.total_usd, 2))
        return cost.teardown_reminder(self.cfg, est) if final else est.text()

    def gpu_node_starts(self) -> list[str]:
        """``creationTimestamp`` of each GPU node of the configured type (for the running cost)."""
        return _starts(cluster().list("v1", "Node"), self.cfg.instance_type)

    # ------------------------------------------------------------------------------------------ section 01
    def preflight(self) -> pd.DataFrame:
        from workshop_lib.preflight import preflight_eks

        return preflight_eks(cluster(), self.cfg)

    def install_platform(self) -> pd.DataFrame:
        """``helm upgrade --install`` the CRDs and the platform (:func:`workshop_lib.dynamo_platform.install`, values
        as ``--set`` flags so the table shows the commands as run), then watch the platform pods
        (:func:`workshop_lib.dynamo_platform.verify_platform`)."""
        import pandas as pd

        from workshop_lib import dynamo_platform
        from workshop_lib.manifests import platform_releases

        cmds = dynamo_platform.install(self.cfg, context=os.environ.get("WORKSHOP_KUBE_CONTEXT") or None, verify=False,
                                       values_files=False)
        rows = [{"release": rel.name, "chart": rel.chart, "version": rel.version, "namespace": rel.namespace,
                 "command": shlex.join(argv)} for rel, argv in zip(platform_releases(self.cfg), cmds, strict=True)]
        dynamo_platform.verify_platform(cluster(), self.cfg, timeout_s=self.cfg.deploy_timeout_s)
        return pd.DataFrame(rows)

    def verify_platform(self) -> CheckTable:
        """Platform pods, Dynamo CRDs, GDRCopy, the EFA device plugin, the HF secret, EFA allocatable per node."""
        from workshop_lib import preflight as pf

        snap = pf.snapshot(cluster(), self.cfg)
        t = CheckTable()
        for row in pf.judge(snap, self.cfg):
            if row.check.startswith(("platform pod", "Dynamo CRDs", "GDRCopy", "EFA device plugin", "secret ")):
                t.add(row.check, row.status, row.found, row.expected, evidence=row.found, fix=row.fix)
        return t.extend(efa_rows(snap.nodes, self.cfg))

    def put_secret(self, token: str | None) -> str:
        """Create or update the HF token Secret (key ``HF_TOKEN``) from ``token``, ``$HF_TOKEN`` or a hidden prompt.

        Raises:
            ConfigError: no token given anywhere.
        """
        from workshop_lib.widgets import headless

        value = token or os.environ.get("HF_TOKEN") or ""
        source = "the argument" if token else "$HF_TOKEN"
        if not value and not headless():
            value, source = getpass.getpass("Hugging Face token (input hidden): ").strip(), "the prompt"
        if not value:
            raise ConfigError("HF_TOKEN", "no Hugging Face token in the environment",
                              "export HF_TOKEN=... before starting Jupyter, or run the cell interactively to be prompted")
        c = self.cfg
        secret = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                  "metadata": {"name": c.hf_token_secret, "namespace": c.namespace},
                  "data": {"HF_TOKEN": base64.b64encode(value.encode()).decode()}}
        cl = cluster()
        if cl.get("v1", "Namespace", c.namespace) is None:
            cl.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": c.namespace}})
        cl.apply(secret, force_conflicts=True)
        del value, secret
        return (f"secret {c.namespace}/{c.hf_token_secret} (key HF_TOKEN) written from {source}; "
                "the value was not displayed or stored in this notebook")

    def uninstall_platform(self) -> list[str]:
        from workshop_lib.helm_runner import kube_flags, run_helm
        from workshop_lib.manifests import platform_releases

        out = []
        flags = kube_flags(None, os.environ.get("WORKSHOP_KUBE_CONTEXT") or None)  # the context install_platform used
        for rel in reversed(platform_releases(self.cfg)):
            run_helm(["helm", "uninstall", rel.name, "--namespace", rel.namespace, "--ignore-not-found", *flags])
            out.append(f"uninstalled {rel.name} ({rel.namespace})")
        return out

    # ------------------------------------------------------------------------------------------ graphs
    def deploy(self, files: list[Any]) -> pd.DataFrame:
        """Server-side apply every document in dependency order, then watch each DGD until Ready."""
        import pandas as pd

        from workshop_lib.cluster import apply_all, wait_for_dgd

        docs = docs_of(files)
        apply_all(cluster(), docs)
        names = dgd_names(files)
        for name in names:
            wait_for_dgd(cluster(), name, self.cfg.namespace, timeout_s=self.cfg.deploy_timeout_s)
        self.graphs = names
        return pd.DataFrame({"applied": [f"{d['kind']}/{d['metadata']['name']}" for d in docs]})

    def log_files(self, work_dir: Path, roles: tuple[str, ...] = ROLES) -> dict[str, Path]:
        from workshop_lib.cluster import component_logs

        out = work_dir / "logs"
        out.mkdir(parents=True, exist_ok=True)
        dgd = self.graphs[0] if self.graphs else None
        files = {}
        for role in roles:
            logs = component_logs(cluster(), self.cfg.namespace, ROLE_SERVICES[role], dgd=dgd)
            p = out / f"{role}.log"
            p.write_text("\n".join(line for lines in logs.values() for line in lines) + "\n")
            files[role] = p
        return files

    def metrics_url(self, role: str) -> str | None:
        """The frontend's ``/metrics`` through its port-forward; workers' system ports are not forwarded (None)."""
        return f"{self.frontend()[0]}/metrics" if role == "frontend" else None

    def frontend(self, graph: str | None = None) -> tuple[str, str]:
        """A local URL to ``<graph>-frontend`` (port-forward, opened once), and the model id."""
        from workshop_lib.cluster import port_forward

        graph = graph or (self.graphs[0] if self.graphs else "")
        service = f"{graph}-frontend"
        if service not in self._forwards:
            cm = port_forward(cluster(), self.cfg.namespace, service, self.cfg.frontend_port)
            self._forwards[service] = (cm, str(cm.__enter__()))
        return self._forwards[service][1], self.cfg.model

    def forwards(self) -> dict[str, str]:
        return {svc: url for svc, (_, url) in self._forwards.items()}

    def close(self, service: str | None = None) -> list[str]:
        out = []
        for svc in [s for s in list(self._forwards) if service in (None, s)]:
            cm, url = self._forwards.pop(svc)
            cm.__exit__(None, None, None)
            out.append(f"closed port-forward {url} -> {svc}")
        return out

    def teardown(self, names: list[str]) -> list[str]:
        cl = cluster()
        out = []
        for name in names:
            gone = cl.delete(DGD_API, DGD_KIND, name, self.cfg.namespace)
            out.append(f"deleted DynamoGraphDeployment {name}" if gone else f"DynamoGraphDeployment {name} already gone")
        return out

    def graph_state(self, name: str) -> str:
        """``"Ready"``, ``"not Ready"`` or ``"absent"``: the DGD ``name`` as the cluster has it."""
        from workshop_lib.cluster import dgd_ready

        obj = cluster().get(DGD_API, DGD_KIND, name, self.cfg.namespace)
        if obj is None:
            return "absent"
        return "Ready" if dgd_ready(obj) else "not Ready"

    def delete_graph(self, name: str) -> bool:
        """Delete the DGD ``name`` and watch until its pods are gone (their GPUs and EFA devices free).

        Returns False when it was already gone.

        Raises:
            ClusterTimeout: pods still terminating after ``deploy_timeout_s``.
        """
        from workshop_lib.cluster import wait_for_pods_gone

        gone = cluster().delete(DGD_API, DGD_KIND, name, self.cfg.namespace)
        sel = f"{GRAPH_LABEL}={name}"
        wait_for_pods_gone(cluster(), self.cfg.namespace, sel, timeout_s=self.cfg.deploy_timeout_s,
                           fix=f"kubectl -n {self.cfg.namespace} get pods -l {sel}; re-run the cell once they are gone")
        return gone

    def oom_killed(self) -> list[dict[str, Any]]:
        from workshop_lib.cluster import pod_problems

        pods = cluster().list("v1", "Pod", self.cfg.namespace)
        return [{"pod": p.where, "problem": p.kind, "explanation": p.message, "fix": p.fix}
                for pod in pods for p in pod_problems(pod) if p.kind == "OOMKilled"]

    # ------------------------------------------------------------------------------------------ KV transfer
    def cross_node(self, files: list[Any], work_dir: Path, pair_spec: Any) -> Sides:
        """Deploy the cross-node graph, send it a warm-up (:meth:`warm_up`), then read its workers' logs."""
        table = self.deploy(files)
        warm = self.warm_up(dgd_names(files)[0])
        return Sides(logs=self.log_files(work_dir, ("prefill", "decode")), table=table, warmup=warm)

    def warm_up(self, graph: str, batch: int = WARMUP_BATCH) -> list[dict[str, Any]]:
        """One completion, then ``batch`` at once, through the graph's frontend (port-forward).

        vLLM's NixlConnector connects to a remote agent at the first request that needs its KV cache, so a freshly
        deployed graph has logged no handshake yet; the concurrent batch lets the decode worker pull from several
        requests at once, as in class. Failures are returned, not raised: the verification shows them.
        """
        from concurrent.futures import ThreadPoolExecutor

        from workshop_lib.bench.client import chat
        from workshop_lib.errors import WorkshopError

        url, model = self.frontend(graph)

        def one(i: int) -> dict[str, Any]:
            try:
                res = chat(url, model, f"{WARMUP_PROMPT} ({i})", stream=True, max_tokens=16, timeout=120)
                return {"request": i, "ok": res.tokens > 0, "tokens": res.tokens, "error": ""}
            except WorkshopError as exc:
                return {"request": i, "ok": False, "tokens": 0, "error": str(exc)}

        out = [one(0)]
        with ThreadPoolExecutor(max_workers=batch) as pool:
            out += list(pool.map(one, range(1, batch + 1)))
        return out

    def _graphs(self, profiles: dict[str, str]) -> tuple[dict[str, str], dict[str, str], bool, int]:
        from workshop_lib.manifests import render

        files = {be: self.profiles.setdefault(p, render(self.cfg, p)) for be, p in profiles.items()
                 if be not in self.urls}
        graphs = {be: dgd_names(f)[0] for be, f in files.items()}
        need = sum(efa_per_node(f) for f in files.values())
        states = {g: self.graph_state(g) for g in graphs.values()}
        return graphs, states, need <= self.cfg.instance.efa, need

    def serving_plan(self, profiles: dict[str, str]) -> pd.DataFrame | None:
        import pandas as pd

        from workshop_lib.record import record

        graphs, states, coexist, need = self._graphs(profiles)
        fit = f"both graphs need {need} EFA devices per node, a {self.cfg.instance_type} has {self.cfg.instance.efa}"
        why = {"delete": "frees the nodes' EFA devices and GPUs: " + fit,
               "apply": "render, validate, apply, wait for Ready",
               "sweep": "port-forward to its frontend, then the concurrency sweep"}
        rows = []
        for i, (action, be) in enumerate(graph_plan(list(profiles), graphs, states, coexist), 1):
            graph = graphs.get(be, f"{be}_URL")
            rows.append({"step": i, "action": action, "backend": SERVING_LABELS[be], "graph": graph,
                         "state now": states.get(graph, "given URL"), "why": why[action]})
        record("graphs_plan", [f"{r['action']} {r['graph']}" for r in rows])
        return pd.DataFrame(rows)

    def serving_runs(self, profiles: dict[str, str]) -> Iterator[ServingRun]:
        """Run :func:`graph_plan`; records graphs_applied, graphs_deleted, graphs_left and the port-forwards."""
        from workshop_lib.record import record

        graphs, states, coexist, _ = self._graphs(profiles)
        steps = graph_plan(list(profiles), graphs, states, coexist)
        applied: list[str] = []
        deleted: list[str] = []
        opened: dict[str, str] = {}
        for i, (action, be) in enumerate(steps, 1):
            graph = graphs.get(be)
            print(f"[{i}/{len(steps)}] {action} {graph or be + '_URL'} ({SERVING_LABELS[be]})", flush=True)
            if action == "delete":
                self.close(f"{graph}-frontend")
                self.delete_graph(graph)
                deleted.append(graph)
            elif action == "apply":
                self.deploy(self.profiles[profiles[be]])
                applied.append(graph)
            else:
                url = self.urls.get(be) or self.frontend(graph)[0]
                opened.update(self.forwards())
                yield ServingRun(SERVING_LABELS[be], str(url), self.cfg.model)
            record("graphs_applied", applied)
            record("graphs_deleted", deleted)
        record("port_forwards", opened)  # service -> local URL of every forward opened; empty when *_URL were given
        record("graphs_left", {g: self.graph_state(g) for g in graphs.values()})

    def transfer_sweep(self, backends: tuple[str, ...], sizes: str, iters: int, work_dir: Path) -> pd.DataFrame:
        """nixlbench between the two nodes, one pod pair per backend; backend and transport as the log states them."""
        import pandas as pd

        return pd.concat([self._nixlbench(be, work_dir) for be in backends], ignore_index=True)

    def _nixlbench(self, backend: str, work_dir: Path) -> pd.DataFrame:
        from workshop_lib.bench.nixl import nixlbench_frame
        from workshop_lib.cluster import pod_log
        from workshop_lib.logs.diagnose import diagnose
        from workshop_lib.manifests.bench import LABEL_NIXLBENCH, nixlbench_pods
        from workshop_lib.record import record

        cfg = self.cfg.replace(kv_backend=backend)
        pods = nixlbench_pods(cfg, "VRAM")
        cl = cluster()
        for p in pods:
            cl.apply(p, force_conflicts=True)
        run = pods[0]["metadata"]["labels"][LABEL_NIXLBENCH]
        phase = self.wait_pod_done(pods[0]["metadata"]["name"])
        record(f"nixlbench_{backend.lower()}_phase", phase)
        log = work_dir / f"{run}.log"
        log.write_text("\n".join(pod_log(cl, cfg.namespace, pods[0]["metadata"]["name"])) + "\n")
        frame = nixlbench_frame(log)
        # The backend stays as nixlbench printed it; the transport is the libfabric provider the log names (efa only
        # when a line says so), else None: "transport not confirmed" in the table.
        frame["transport"] = diagnose(log).libfabric_provider
        frame["pod_pair"] = backend
        return frame

    def wait_pod_done(self, pod: str) -> str:
        """Watch one pod until it has finished (Succeeded or Failed); returns the phase.

        Raises:
            ClusterTimeout: still running after ``deploy_timeout_s``.
        """
        from workshop_lib.cluster import wait_for_pod_phase

        ns = self.cfg.namespace
        return wait_for_pod_phase(cluster(), ns, pod, timeout_s=self.cfg.deploy_timeout_s,
                                  fix=f"kubectl -n {ns} logs {pod}; raise DEPLOY_TIMEOUT_S if it is still transferring")
