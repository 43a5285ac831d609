"""The local lab's plan of one DGD: its processes (:class:`LocalProcess`), each difference from the DGD
(:class:`Substitution`), and the whole (:class:`GraphPlan`) with its printable table and command lines. Built by
:func:`workshop_lib.lab.graph.plan_graph`; pure data, no side effects.

Example:
    >>> Substitution("DecodeWorker", "--model", "Qwen/Qwen3-0.6B", "/lab/model", "no weights here").local
    '/lab/model'
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from workshop_lib.lab.labnet import LabNet
from workshop_lib.lab.stack import LOOPBACK


@dataclass(frozen=True, slots=True)
class Substitution:
    """One difference between the DGD and what runs here."""

    service: str
    field: str
    dgd: str
    local: str
    why: str


@dataclass(slots=True)
class LocalProcess:
    """One process of the plan: ``name`` is the role (etcd, nats, frontend, prefill, decode)."""

    name: str
    service: str | None
    argv: list[str]
    env: dict[str, str]
    port: int | None
    extra_ports: dict[str, int] = field(default_factory=dict)
    metrics_port: int | None = None
    host: str = LOOPBACK  # where its ports are served (the namespace's address with --netns)
    netns: str | None = None  # the network namespace it runs in (None: the root namespace)

    def arg(self, flag: str) -> str | None:
        """The value after ``flag`` in ``argv`` (None when absent)."""
        return self.argv[self.argv.index(flag) + 1] if flag in self.argv[:-1] else None

    @property
    def metrics_url(self) -> str | None:
        return f"http://{self.host}:{self.metrics_port}/metrics" if self.metrics_port else None

    @property
    def exec_prefix(self) -> list[str]:
        """What runs ``argv`` inside its namespace ([] in the root namespace)."""
        return ["ip", "netns", "exec", self.netns] if self.netns else []


@dataclass(slots=True)
class GraphPlan:
    """What ``Lab.up`` runs for one DGD."""

    dgd_name: str
    engine: str
    kv_backend: str | None
    processes: list[LocalProcess]
    substitutions: list[Substitution]
    unhonoured: list[str]
    net: LabNet | None = None  # the two "nodes" (network namespaces) with --netns

    def process(self, name: str) -> LocalProcess:
        for p in self.processes:
            if p.name == name:
                return p
        raise KeyError(name)

    def table(self) -> str:
        """The substitution table, one row per difference, then what the lab cannot honour."""
        from workshop_lib.table import clip, text

        cols = ("service", "field", "in the DGD", "here", "why")
        rows = [dict(zip(cols, (clip(s.service, 48), clip(s.field, 48), clip(s.dgd, 48), clip(s.local, 48), s.why),
                         strict=True)) for s in self.substitutions]
        out = [f"graph {self.dgd_name}: engine {self.engine}, KV backend {self.kv_backend or '-'}"]
        out.append(f"network: {self.net.describe()}" if self.net else "network: loopback (one host, no namespaces)")
        out.append(text(rows, cols, width=None))
        if self.unhonoured:
            out.append("not honoured here:")
            out += [f"  - {u}" for u in self.unhonoured]
        return "\n".join(out)

    def command_lines(self, base_env: Mapping[str, str] | None = None) -> str:
        """One shell line per process: the variables it sets beyond ``base_env`` (default ``os.environ``), then argv."""
        base = dict(os.environ if base_env is None else base_env)
        lines = []
        for p in self.processes:
            delta = {k: v for k, v in sorted(p.env.items()) if base.get(k) != v}
            envs = " ".join(f"{k}={shlex.quote(v)}" for k, v in delta.items())
            lines.append(f"# {p.name}" + (f" (DGD service {p.service})" if p.service else ""))
            lines.append(shlex.join(p.exec_prefix) + " " * bool(p.netns) + (f"env {envs} " if envs else "")
                         + shlex.join(p.argv))
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "dgd": self.dgd_name,
            "engine": self.engine,
            "kv_backend": self.kv_backend,
            "substitutions": [vars_(s) for s in self.substitutions],
            "unhonoured": list(self.unhonoured),
            "net": self.net.to_json() if self.net else None,
            "processes": {
                p.name: {"service": p.service, "argv": p.argv, "port": p.port, "metrics_url": p.metrics_url,
                         "host": p.host, "netns": p.netns}
                for p in self.processes
            },
        }


def vars_(s: Substitution) -> dict[str, str]:
    return {k: getattr(s, k) for k in Substitution.__slots__}
