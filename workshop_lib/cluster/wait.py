"""Wait for readiness by watching (never by sleep-polling), with a progress bar and problems surfaced as they happen.

Several watch streams (the DGD, its pods, the namespace's events) feed one queue from background threads; the caller's
thread updates the progress bar, reports each new problem once, raises early on a fatal one (OOMKilled, image pull,
crash loop) and raises :class:`~workshop_lib.errors.ClusterTimeout` with everything it saw when time runs out.

Example:
    >>> wait_for_dgd(cluster, "vllm-disagg", "dynamo-workshop", timeout_s=1800)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tqdm.auto import tqdm

from workshop_lib.cluster.client import Cluster
from workshop_lib.cluster.diagnose import Problem, dgd_ready, event_problem, pod_problems, pod_ready
from workshop_lib.errors import ClusterError, ClusterTimeout
from workshop_lib.k8s import DGD_API, DGD_KIND

DGD_LABEL = "nvidia.com/dynamo-graph-deployment-name"


@dataclass
class WaitState:
    """What the watches have shown so far."""

    pods: dict[str, dict[str, Any]] = field(default_factory=dict)
    target: dict[str, Any] | None = None
    problems: list[Problem] = field(default_factory=list)
    deleted: set[str] = field(default_factory=set)  # pods seen DELETED

    def ready_pods(self) -> int:
        return sum(1 for p in self.pods.values() if pod_ready(p))


@dataclass(frozen=True)
class _Stream:
    api_version: str
    kind: str
    namespace: str | None
    label_selector: str | None = None
    field_selector: str | None = None
    resource_version: str | None = None  # start after this version (e.g. a list's), so no event in between is lost


def _pump(cluster: Cluster, s: _Stream, q: queue.Queue[tuple[str, str, dict[str, Any]] | Exception],
          stop: threading.Event, deadline: float, opened: list[Any]) -> None:
    """Re-open the watch until stopped or past the deadline, resuming from the last resourceVersion."""
    rv: str | None = s.resource_version
    try:
        while not stop.is_set() and time.monotonic() < deadline:
            left = max(deadline - time.monotonic(), 1.0)
            for etype, obj in cluster.watch(s.api_version, s.kind, s.namespace, label_selector=s.label_selector,
                                            field_selector=s.field_selector, resource_version=rv,
                                            timeout_s=min(left, 300.0), on_open=opened.append):
                rv = (obj.get("metadata") or {}).get("resourceVersion") or rv
                if etype != "BOOKMARK":
                    q.put((s.kind, etype, obj))
                if stop.is_set():
                    return
    except Exception as exc:  # noqa: BLE001 - handed to the waiting thread
        if not stop.is_set():
            q.put(exc)


def watch_until(cluster: Cluster, streams: list[_Stream], done: Callable[[WaitState], bool], *, what: str,
                timeout_s: float, progress: bool = True, fail_fast: bool = True,
                on_problem: Callable[[Problem], None] | None = None,
                describe: Callable[[WaitState], str] | None = None, fix: str | None = None) -> WaitState:
    """Watch ``streams`` until ``done(state)``; report problems; raise on fatal ones or at the deadline."""
    q: queue.Queue[tuple[str, str, dict[str, Any]] | Exception] = queue.Queue()
    stop = threading.Event()
    deadline = time.monotonic() + timeout_s
    opened: list[Any] = []  # open watch responses, shut down when the wait ends
    threads = [threading.Thread(target=_pump, args=(cluster, s, q, stop, deadline, opened), daemon=True)
               for s in streams]
    state = WaitState()
    seen: set[str] = set()
    bar = tqdm(total=0, desc=what, unit="pod", disable=not progress, leave=True)
    report = on_problem or (lambda p: tqdm.write(f"WARNING {p}"))
    for t in threads:
        t.start()
    try:
        while True:
            try:
                item = q.get(timeout=max(min(deadline - time.monotonic(), 1.0), 0.01))
            except queue.Empty:
                item = None
            if isinstance(item, Exception):
                raise item
            if item is not None:
                kind, etype, obj = item
                for p in _absorb(state, kind, etype, obj):
                    key = f"{p.obj}|{p.kind}"
                    if key not in seen:
                        seen.add(key)
                        state.problems.append(p)
                        report(p)
                        if p.fatal and fail_fast:
                            raise ClusterError(p.obj, f"{p.kind}: {p.message}", p.fix)
                bar.total = max(len(state.pods), 1)
                bar.n = state.ready_pods()
                if describe:
                    bar.set_postfix_str(describe(state), refresh=False)
                bar.refresh()
            if done(state):
                return state
            if time.monotonic() >= deadline:
                seen_txt = "; ".join(str(p) for p in state.problems[-3:]) or "no errors reported"
                pods = ", ".join(f"{n} {'Ready' if pod_ready(p) else 'not Ready'}" for n, p in sorted(state.pods.items()))
                raise ClusterTimeout(what, f"not ready after {timeout_s:.0f} s (pods: {pods or 'none yet'}; {seen_txt})",
                                     fix or "look at the problems above, kubectl describe the pods, or raise "
                                     "deploy_timeout_s")
    finally:
        stop.set()
        for resp in list(opened):
            with contextlib.suppress(Exception):
                resp.shutdown()
        for t in threads:
            t.join(timeout=2)
        bar.close()


def _absorb(state: WaitState, kind: str, etype: str, obj: dict[str, Any]) -> list[Problem]:
    name = (obj.get("metadata") or {}).get("name", "")
    if kind == "Pod":
        if etype == "DELETED":
            state.pods.pop(name, None)
            state.deleted.add(name)
            return []
        state.pods[name] = obj
        return pod_problems(obj)
    if kind == "Event":
        p = event_problem(obj)
        return [p] if p and obj.get("type") == "Warning" else []
    if etype != "DELETED":
        state.target = obj
    return []


def wait_for_dgd(cluster: Cluster, name: str, namespace: str, *, timeout_s: float = 1800, progress: bool = True,
                 fail_fast: bool = True, on_problem: Callable[[Problem], None] | None = None) -> WaitState:
    """Wait until DynamoGraphDeployment ``name`` is Ready and all its pods are Ready.

    Raises:
        ClusterError: a fatal problem (OOMKilled, ImagePullBackOff, CrashLoopBackOff) when ``fail_fast``.
        ClusterTimeout: not ready within ``timeout_s``; the message lists pods and the last problems.
    """
    streams = [
        _Stream(DGD_API, DGD_KIND, namespace, field_selector=f"metadata.name={name}"),
        _Stream("v1", "Pod", namespace, label_selector=f"{DGD_LABEL}={name}"),
        _Stream("v1", "Event", namespace),
    ]

    def done(s: WaitState) -> bool:
        return s.target is not None and dgd_ready(s.target) and all(pod_ready(p) for p in s.pods.values())

    def desc(s: WaitState) -> str:
        conds = ((s.target or {}).get("status") or {}).get("conditions") or []
        return next((f"{c.get('reason', '')}" for c in conds if c.get("type") == "Ready"), "waiting for operator")

    return watch_until(cluster, streams, done, what=f"{DGD_KIND} {namespace}/{name}", timeout_s=timeout_s,
                       progress=progress, fail_fast=fail_fast, on_problem=on_problem, describe=desc)


def wait_for_pod_phase(cluster: Cluster, namespace: str, pod: str, phases: tuple[str, ...] = ("Succeeded", "Failed"),
                       *, timeout_s: float = 600, progress: bool = True, fix: str | None = None) -> str:
    """Watch one pod until its phase is one of ``phases`` (a finished Job-like pod); returns the phase.

    Raises:
        ClusterTimeout: still in another phase after ``timeout_s``.
    """

    def phase(s: WaitState) -> str:
        return ((s.pods.get(pod) or {}).get("status") or {}).get("phase") or "unknown"

    st = watch_until(cluster, [_Stream("v1", "Pod", namespace, field_selector=f"metadata.name={pod}")],
                     lambda s: phase(s) in phases, what=f"pod {namespace}/{pod}", timeout_s=timeout_s,
                     progress=progress, fail_fast=False, describe=phase, fix=fix)
    return phase(st)


def wait_for_pods_gone(cluster: Cluster, namespace: str, label_selector: str, *, timeout_s: float = 600,
                       progress: bool = True, fix: str | None = None) -> list[str]:
    """Watch until every pod matching ``label_selector`` now is deleted (e.g. after deleting their DGD); returns them.

    Raises:
        ClusterTimeout: some still there after ``timeout_s``.
    """
    listed = cluster.list_raw("v1", "Pod", namespace, label_selector=label_selector)
    left = {p["metadata"]["name"] for p in listed.get("items", [])}
    rv = (listed.get("metadata") or {}).get("resourceVersion")
    if left:
        watch_until(cluster, [_Stream("v1", "Pod", namespace, label_selector=label_selector, resource_version=rv)],
                    lambda s: left <= s.deleted, what=f"pods {label_selector} deleted", timeout_s=timeout_s,
                    progress=progress, fail_fast=False, fix=fix)
    return sorted(left)


def wait_for_pods(cluster: Cluster, namespace: str, *, label_selector: str | None = None, count: int | None = None,
                  names: list[str] | None = None, timeout_s: float = 600, progress: bool = True,
                  fail_fast: bool = True, on_problem: Callable[[Problem], None] | None = None) -> WaitState:
    """Wait until the selected pods are Ready: at least ``count`` of them, or each name prefix in ``names``."""

    def done(s: WaitState) -> bool:
        ready = [n for n, p in s.pods.items() if pod_ready(p)]
        if names:
            return all(any(r.startswith(n) for r in ready) for n in names)
        return len(ready) >= (count or 1) and len(ready) == len(s.pods)

    streams = [_Stream("v1", "Pod", namespace, label_selector=label_selector), _Stream("v1", "Event", namespace)]
    return watch_until(cluster, streams, done, what=f"pods in {namespace}" + (f" ({label_selector})" if label_selector else ""),
                       timeout_s=timeout_s, progress=progress, fail_fast=fail_fast, on_problem=on_problem)
