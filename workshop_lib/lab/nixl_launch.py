"""Launching the two agents of a NIXL pair: readiness checks, where each agent runs (two network namespaces, one
private namespace, or the host), its environment, and the parent's handle on each agent process.

:func:`workshop_lib.lab.nixl_pair.run_pair` drives the conversation; this module owns the processes, so that nothing
is left running whatever happens (agents are killed by process group, namespaces deleted by their context manager).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workshop_lib.checks import PASS
from workshop_lib.errors import LabError, LabUnsupported
from workshop_lib.lab import netns as netns_mod
from workshop_lib.lab import setup as lab_setup
from workshop_lib.lab.procs import tail
from workshop_lib.paths import repo_root

if TYPE_CHECKING:
    from workshop_lib.lab.nixl_pair import NixlPairSpec

LOG_KNOBS = {"NIXL_LOG_LEVEL": "INFO", "FI_LOG_LEVEL": "info", "UCX_LOG_LEVEL": "info", "UCX_PROTO_INFO": "y"}


class AgentDied(LabError):
    """A NIXL agent process exited or failed during a pair run (carries the tail of its log)."""


# ---------------------------------------------------------------------------------------------------------------------
# Processes


def free_port() -> int:
    """A TCP port free on loopback now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class AgentProcess:
    """The parent's handle on one agent process: its control socket, its log, and a kill that always works."""

    def __init__(self, role: str, cmd_prefix: list[str], env: dict[str, str], log: Path) -> None:
        self.role = role
        self.log = log
        parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock = parent_sock
        self.buf = b""
        fd = child_sock.fileno()
        cmd = [*cmd_prefix, sys.executable, "-m", "workshop_lib.lab.nixl_agent", "--role", role, "--ctl-fd", str(fd)]
        self.logfh = log.open("ab", buffering=0)
        self.logfh.write(f"# workshop lab nixl {role}: {' '.join(cmd)}\n".encode())
        try:
            self.proc = subprocess.Popen(
                cmd,
                pass_fds=(fd,),
                stdin=subprocess.DEVNULL,
                stdout=self.logfh,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=str(repo_root()),
                start_new_session=True,
            )
        finally:
            child_sock.close()

    def send(self, **obj: Any) -> None:
        try:
            self.sock.sendall(json.dumps(obj).encode() + b"\n")
        except OSError:
            self._died(f"could not send {obj.get('cmd')!r}")

    def _died(self, what: str, peers: tuple[AgentProcess, ...] = ()) -> None:
        # When this agent failed because its peer died (a remote disconnect), the dead peer is the news.
        for other in peers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                other.proc.wait(timeout=1.0)
            if other.proc.poll() is not None:
                other._died(f"{what.replace('it reported', f'the {self.role} then reported')}")
        rc = self.proc.poll()
        if rc is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                rc = self.proc.wait(timeout=2)
        how = (
            "is still running"
            if rc is None
            else (f"was killed by signal {-rc}" if rc < 0 else f"exited with code {rc}")
        )
        raise AgentDied(
            f"nixl {self.role}",
            f"the agent {how} ({what}); log {self.log}, last lines:\n{tail(self.log, 25) or '(empty or unreadable)'}",
            "read the log above; `workshop lab setup --check` shows missing pieces",
        )

    def expect(self, event: str, timeout: float, watch: tuple[AgentProcess, ...] = ()) -> dict[str, Any]:
        """Wait for ``event`` from the agent; raise :class:`AgentDied` on exit, error or timeout.

        The agents in ``watch`` (the peer) are checked too: a dead peer is reported at once, not as a timeout.
        """
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self.buf:
                line, _, self.buf = self.buf.partition(b"\n")
                msg = json.loads(line)
                if msg.get("event") == "error":
                    self._died(f"it reported {msg.get('error')}", watch)
                if msg.get("event") == event:
                    return msg
            left = deadline - time.monotonic()
            if left <= 0:
                self._died(f"no {event!r} within {timeout:.0f} s")
            ready, _, _ = select.select([self.sock], [], [], min(left, 0.2))
            if ready:
                chunk = self.sock.recv(1 << 20)
                if not chunk:
                    self._died(f"control channel closed while waiting for {event!r}")
                self.buf += chunk
            elif self.proc.poll() is not None:
                self._died(f"while waiting for {event!r}")
            for other in watch:
                if other.proc.poll() is not None:
                    other._died(f"while the {self.role} was waiting for {event!r}")

    def kill(self) -> None:
        """SIGKILL the agent's whole process group and reap it (safe to call twice)."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        with contextlib.suppress(OSError):
            self.sock.close()
        with contextlib.suppress(OSError):
            self.logfh.close()


def check_ready(spec: NixlPairSpec) -> dict[str, Any]:
    """Refuse early, with one line, what cannot run here; returns facts for ``meta``."""
    lab_setup.require_linux()
    facts: dict[str, Any] = {}
    if spec.mem == "VRAM":
        facts.update(check_gpus(spec.gpus))
    if spec.netns:
        netns_mod.require_netns_support()
    items = {i.check: i for i in lab_setup.status()}
    for name in ("libcuda.so.1", "libcudart.so.12", "nixl wheels"):
        it = items.get(name)
        if it is not None and it.status != PASS:
            raise LabError(f"nixl pair: {name}", f"not ready ({it.found})", it.fix or "run `workshop lab setup`")
    facts["libcuda"] = items["libcuda.so.1"].found if "libcuda.so.1" in items else None
    if spec.backend == "LIBFABRIC":
        reason = lab_setup.libfabric_unavailable_reason()
        if reason:
            raise LabUnsupported("LIBFABRIC", reason, "use --backend UCX, or run `workshop lab setup`")
        facts["libfabric"] = items["libfabric"].found
    return facts


def check_gpus(gpus: tuple[int, int]) -> dict[str, Any]:
    try:
        import torch
    except ImportError:
        raise LabUnsupported(
            "--mem VRAM",
            "torch is not installed (VRAM buffers are torch CUDA tensors)",
            "use --mem DRAM, or install a CUDA torch on a GPU machine",
        ) from None
    if not torch.cuda.is_available():
        raise LabUnsupported("--mem VRAM", "no CUDA GPU is visible to torch", "use --mem DRAM on this machine")
    n = torch.cuda.device_count()
    if max(gpus) >= n:
        raise LabUnsupported("--gpus", f"GPU {max(gpus)} asked for, {n} visible", f"use --gpus with indices below {n}")
    return {
        "gpus": [torch.cuda.get_device_name(g) for g in gpus],
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
    }


def agent_env(spec: NixlPairSpec, role: str, side_dev: str | None) -> tuple[dict[str, str], dict[str, str]]:
    """The full environment of one agent, and the knobs it sets (for ``meta``)."""
    knobs = dict(LOG_KNOBS)
    if spec.ucx_tls:
        knobs["UCX_TLS"] = spec.ucx_tls
    if spec.backend == "UCX" and side_dev:
        knobs["UCX_NET_DEVICES"] = side_dev  # the namespace's veth only
    base = dict(os.environ)
    # The caller's own UCX_/FI_/NIXL_ settings pass through (recorded in meta); the lab's knobs win.
    inherited = {k: v for k, v in base.items() if k.startswith(("UCX_", "FI_", "NIXL_")) and k not in knobs}
    env = {**base, **lab_setup.lab_env(base), **knobs, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"}
    knobs = {**inherited, **knobs}
    pp = [str(repo_root())]  # the agent imports workshop_lib from the same place as this process
    pp += [p for p in base.get("PYTHONPATH", "").split(os.pathsep) if p]
    if pp:
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(pp))
    return env, knobs


def default_log_dir(spec: NixlPairSpec) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    tag = f"{spec.backend.lower()}-{spec.op.lower()}-{spec.mem.lower()}" + ("-netns" if spec.netns else "")
    return lab_setup.logs_dir() / "nixl" / f"{stamp}-{os.getpid()}-{tag}"


@dataclass
class Placement:
    """Where the two agents run: command prefixes, the address the target listens on, network devices."""

    mode: str  # "netns" | "isolated" | "host"
    prefixes: dict[str, list[str]]
    addrs: dict[str, str]
    devs: dict[str, str | None]
    note: str
    detail: dict[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def placement(spec: NixlPairSpec) -> Iterator[Placement]:
    """Two namespaces (``--netns``), one private namespace (root), or the host itself."""
    if spec.netns:
        with netns_mod.netns_pair() as pair:
            yield Placement(
                "netns",
                {"initiator": pair.exec_prefix(0), "target": pair.exec_prefix(1)},
                {"initiator": pair.addrs[0], "target": pair.addrs[1]},
                {"initiator": pair.veths[0], "target": pair.veths[1]},
                "two network namespaces joined by a veth pair",
                {"names": list(pair.names), "veths": list(pair.veths), "addrs": list(pair.addrs)},
            )
        return
    if spec.isolate or (spec.isolate is None and netns_mod.can_isolate()):
        with netns_mod.isolated_netns() as iso:
            yield Placement(
                "isolated",
                {"initiator": iso.exec_prefix(), "target": iso.exec_prefix()},
                {"initiator": "127.0.0.1", "target": "127.0.0.1"},
                {"initiator": iso.device, "target": iso.device},
                f"one private network namespace (lo + {iso.device} {iso.addr}): the host's interfaces carry nothing",
                {"name": iso.name, "device": iso.device, "addr": iso.addr},
            )
        return
    yield Placement(
        "host",
        {"initiator": [], "target": []},
        {"initiator": "127.0.0.1", "target": "127.0.0.1"},
        {"initiator": None, "target": None},
        "the host's network stack (not root): UCX/libfabric wire up over the host's own interface address, "
        "which the kernel keeps local",
    )
