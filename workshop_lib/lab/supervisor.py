"""Start the planned lab processes in order and wait for each to be ready, naming the one that died.

:class:`Supervisor` owns the ``Popen`` objects of the processes this Python process started (so a dead child is
reaped, not left a zombie) and writes each process's record to the lab's state file as soon as it starts, so
``workshop lab status`` and ``down`` from another shell see it.

Example:
    >>> sup = Supervisor(StateFile(Path("/tmp/no-such-lab")), status=lambda: None)   # doctest: +SKIP
    >>> sup.start_all(plan.processes, state, timeout=300, progress=True)               # doctest: +SKIP
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workshop_lib.bench.client import chat
from workshop_lib.errors import LabError
from workshop_lib.lab import procs
from workshop_lib.lab.labnet import ROLES as WORKERS
from workshop_lib.lab.labstate import StateFile, records
from workshop_lib.lab.stack import LOOPBACK, probe

# Seconds one warm-up completion may take: the real engine's first request pays for the lazy NIXL handshake.
WARMUP_TIMEOUT = {"vllm": 180.0, "mocker": 10.0}
# An engine worker this lab up started that writes nothing to its log for this long while the lab waits on it is restarted,
# once, with a message. Seen once in a CI run: a decode worker restarted after kill -9 printed its last engine-config
# line, then its EngineCore child printed nothing for 10 minutes (alive, never past its imports); started again it
# came up in 40 s. A normal start is never quiet this long (imports, model load and warm-up log within seconds).
STALL_S = 240.0


def chat_ok(url: str, model: str, timeout: float = 10.0) -> bool:
    """True when a short non-streamed completion through ``url`` returns tokens."""
    try:
        return chat(url, model, "Say hello.", stream=False, max_tokens=4, timeout=timeout).tokens > 0
    except LabError:
        return False


class Supervisor:
    """Starts processes for one lab and waits on them (see the module docstring).

    Args:
        state_file: the lab's state file.
        status: returns the lab's current :class:`~workshop_lib.lab.labstate.LabStatus` (its health probes).
    """

    def __init__(self, state_file: StateFile, status: Callable[[], Any]) -> None:
        self.state_file = state_file
        self.status = status
        self.popens: dict[str, subprocess.Popen] = {}
        self.steps: dict[str, Any] = {}  # name -> the LocalProcess this lab up started (restartable once)
        self.quiet: dict[str, tuple[int, float]] = {}  # name -> (log size, when it last grew)
        self.restarted: set[str] = set()

    def reap(self) -> None:
        for p in self.popens.values():
            p.poll()  # reap our own children so a dead one is not a zombie

    def start_all(self, steps: list, state: dict, timeout: float, progress: bool) -> None:
        """Start ``steps`` (:class:`~workshop_lib.lab.graphplan.LocalProcess`) in order, wait for the infrastructure to
        accept connections, for every process to be healthy, then for one warm-up completion."""
        from tqdm.auto import tqdm

        deadline = time.monotonic() + timeout
        self.steps, self.quiet, self.restarted = {}, {}, set()  # this lab up's processes, each restartable once
        url, model = state["frontend_url"], state["model"]
        hosts = state.get("hosts", {})
        waits: dict[str, Callable[[], bool]] = {
            "etcd": lambda: probe("etcd", state["ports"]["etcd"], None, None, hosts.get("etcd", LOOPBACK))[0],
            "nats": lambda: procs.port_accepts(state["ports"]["nats"], hosts.get("nats", LOOPBACK)),
            "frontend": lambda: procs.port_accepts(state["ports"]["frontend"]),
        }
        bar = tqdm(total=len(steps) + 2, desc=f"lab up ({state.get('engine')})", unit="step", disable=not progress)
        try:
            for step in steps:
                name = step.name
                bar.set_postfix_str(f"starting {name}")
                self.start(step, state)
                if name in waits:
                    self.wait(f"{name} accepts connections", waits[name], state, deadline)
                bar.update(1)
            bar.set_postfix_str("waiting for both workers to register")
            self.wait(
                f"/v1/models at {url} lists {model} and every process is healthy",
                lambda: all(p.healthy for p in self.status().processes.values()),
                state,
                deadline,
            )
            bar.update(1)
            # Warm-up: the first request through a fresh vLLM pair pays for the lazy NIXL handshake and the
            # first sampler/compile work; `lab up` pays it so a learner's first completion is fast.
            bar.set_postfix_str("warm-up completion")
            t0 = time.monotonic()
            slow = WARMUP_TIMEOUT.get(str(state.get("engine")), 10.0)
            self.wait("a first (warm-up) completion", lambda: chat_ok(url, model, slow), state, deadline)
            state.setdefault("notes", []).append(f"warm-up completion took {time.monotonic() - t0:.1f} s")
            self.state_file.save(state)
            bar.update(1)
            bar.set_postfix_str(f"ready at {url}")
        finally:
            bar.close()

    def start(self, step: Any, state: dict) -> None:
        """Start one :class:`~workshop_lib.lab.graphplan.LocalProcess` and record it in the state file."""
        name = step.name
        try:
            rec, popen = procs.spawn(name, step.argv, step.env, Path(state["run_dir"]) / f"{name}.log", step.port,
                                     prefix=step.exec_prefix or None)  # fmt: skip
        except OSError as exc:
            raise LabError(name, f"cannot start {step.argv[0]} ({exc})", "run `workshop lab setup`") from exc
        self.popens[name] = popen
        self.steps[name] = step
        self.quiet.pop(name, None)
        state["processes"][name] = rec.to_json()
        self.state_file.save(state)

    def restart_stalled(self, state: dict) -> None:
        """Restart, once, an engine worker this lab up started whose log has not grown for :data:`STALL_S`
        seconds."""
        now = time.monotonic()
        for name, r in records(state).items():
            if name not in WORKERS or name not in self.steps or name in self.restarted:
                continue  # etcd, NATS and the frontend are quiet for long stretches by nature
            try:
                size = Path(r.log).stat().st_size
            except OSError:
                size = -1
            seen = self.quiet.get(name)
            if seen is None or seen[0] != size:
                self.quiet[name] = (size, now)
            elif now - seen[1] > STALL_S:
                msg = (f"{name} wrote nothing to its log for {STALL_S:.0f} s while starting (a stalled start): "
                       f"restarting it once (log {r.log})")
                print(f"lab up: {msg}", file=sys.stderr, flush=True)
                state.setdefault("notes", []).append(msg)
                procs.stop([r], popens=self.popens)
                self.restarted.add(name)
                self.start(self.steps[name], state)

    def wait(self, what: str, ready: Callable[[], bool], state: dict, deadline: float) -> None:
        """Poll ``ready`` until true; raise with the dead process's log tail, or on timeout."""
        while True:
            for name, r in records(state).items():
                popen = self.popens.get(name)
                code = popen.poll() if popen else None
                if code is not None or not procs.is_running(r):
                    how = f"exited with code {code}" if code is not None else "is gone (pid no longer the lab's)"
                    raise LabError(
                        f"lab process {name} (log {r.log})",
                        f"{how} while waiting for {what}; last log lines:\n{procs.tail(r.log, 20)}",
                        f"read {r.log}; `workshop lab setup` repairs missing pieces",
                    )
            if ready():
                return
            self.restart_stalled(state)
            if time.monotonic() > deadline:
                logs = {n: r.log for n, r in records(state).items()}
                last = list(logs)[-1] if logs else "frontend"
                raise LabError(
                    f"lab up (log {logs.get(last, '')})",
                    f"timed out waiting for {what}; last log lines of {last}:\n{procs.tail(logs.get(last, ''), 20)}",
                    "raise the timeout (`workshop lab up --timeout 300`) or read the logs with `workshop lab logs`",
                )
            time.sleep(0.2)


def remove_stale_netns(who: str, keep: set[str] | frozenset[str] = frozenset()) -> None:
    """Delete network namespaces and veths left by killed lab runs (the NIXL pair's and the serving lab's, except
    ``keep``); says what it removed on stderr, and says so when it cannot check."""
    from workshop_lib.lab import labnet, netns

    try:
        for name in [*netns.remove_stale(), *labnet.remove_stale(keep)]:
            print(f"{who}: removed {name}, left by a lab run that was killed", file=sys.stderr)
    except (OSError, LabError, subprocess.SubprocessError) as exc:
        print(f"{who}: could not check for stale lab namespaces ({exc})", file=sys.stderr)
