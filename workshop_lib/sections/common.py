"""What every notebook does the same way: read its parameters, show tables, record verdicts, count the cost.

Example:
    >>> ctx = start({"TARGET": "local", "REQUESTS": 8, "TEARDOWN": False}, section="02")
    >>> ctx.cfg.target, ctx.target.name, ctx.cfg.requests
    ('local', 'local', 8)
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workshop_lib.checks import CheckTable
from workshop_lib.config import WorkshopConfig
from workshop_lib.paths import repo_root
from workshop_lib.record import record

if TYPE_CHECKING:  # pragma: no cover
    from workshop_lib.targets import Target

REPO = repo_root()

SECTIONS = {
    "01": ("Cluster setup", 15),
    "02": ("Single-node disaggregation", 15),
    "03": ("Cross-node disaggregation over EFA", 20),
    "04": ("Performance: UCX vs LIBFABRIC", 10),
}


@dataclass
class Context:
    """One notebook's run: its validated config, the parameters that are not config fields, and a work directory.

    Attributes:
        cfg: the :class:`WorkshopConfig` built from the parameters cell.
        extra: parameters that are not config fields (``REQUESTS``, ``TEARDOWN``...), upper-case keys.
        section: ``"01"``..``"04"``.
        work_dir: where this notebook writes logs and results (``runs/notebooks/<section>`` unless ``WORK_DIR``).
        started: ``time.monotonic()`` at start, for the elapsed time.
        state: what one step hands to a later one (the lab status, a port-forward...).
    """

    cfg: WorkshopConfig
    extra: dict[str, Any]
    section: str
    work_dir: Path
    started: float = field(default_factory=time.monotonic)
    state: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def target(self) -> Target:
        """Where this notebook's graph runs (:mod:`workshop_lib.targets`); every step goes through it."""
        from workshop_lib.targets import for_config

        urls = {be: url for be, url in (("UCX", self.cfg.ucx_url), ("LIBFABRIC", self.cfg.libfabric_url)) if url}
        return for_config(self.cfg, self.state, netns=use_netns(self), urls=urls)

    def get(self, name: str, default: Any = None) -> Any:
        """A notebook parameter as given (config fields included, None when unset), by case-insensitive name."""
        value = self.params.get(name.upper(), self.extra.get(name.upper()))
        return default if value is None else value

    def elapsed_min(self) -> float:
        return round((time.monotonic() - self.started) / 60, 1)


def use_netns(ctx: Context) -> bool:
    """``NETNS`` when given, else True when running as root (two network namespaces need root)."""
    want = ctx.cfg.netns
    return want if want is not None else os.geteuid() == 0


def parameters(namespace: Mapping[str, Any]) -> dict[str, Any]:
    """The notebook's parameters from its globals: upper-case names holding plain values (papermill's too).

    >>> parameters({"TARGET": "eks", "REQUESTS": 4, "PARAMS": {}, "pd": object(), "_X": 1})
    {'TARGET': 'eks', 'REQUESTS': 4}
    """
    plain = (str, int, float, bool, list, tuple, type(None))
    return {k: v for k, v in namespace.items()
            if k.isupper() and not k.startswith("_") and k != "PARAMS" and isinstance(v, plain)}


def start(params: Mapping[str, Any], section: str) -> Context:
    """Build the notebook's :class:`Context` from its parameters (names as in the parameters cell).

    Raises:
        ConfigError: a parameter that is a config field has a bad value (the message names it and the fix).
    """
    known = set(WorkshopConfig.field_names())
    # Every parameter is a config field: a name that is not one (a typo in the cell or in papermill's -p) stops here
    # with the closest known name. None means "the default" (e.g. ISL = None: 512 on eks, the sweep's own on local).
    cfg = WorkshopConfig.from_params({k: v for k, v in params.items() if v is not None})
    extra = {k.upper(): v for k, v in params.items() if k.lower() not in known}
    base = cfg.work_dir or extra.get("WORK_DIR") or os.environ.get("WORKSHOP_WORK_DIR") or (REPO / "runs" / "notebooks")
    work = Path(base) / f"{section}-{cfg.target}"
    work.mkdir(parents=True, exist_ok=True)
    record("target", cfg.target)
    _display_options()
    return Context(cfg=cfg, extra=extra, section=section, work_dir=work, params={k.upper(): v for k, v in params.items()})


def _display_options() -> None:
    """Tables show whole cells (log lines, fixes, sources) instead of pandas' 50-character cut with "..."."""
    import pandas as pd

    pd.set_option("display.max_colwidth", None)


def banner(ctx: Context) -> str:
    """A one-paragraph reminder of what this run is (target, model, backend, what is real here)."""
    title, minutes = SECTIONS.get(ctx.section, ("", 0))
    where = " ".join(ctx.target.describe())
    cost_line = ctx.target.cost_note()
    return f"Section {ctx.section}, {title} ({minutes} min). {where}" + (f"\n{cost_line}" if cost_line else "")


def show(obj: Any) -> Any:
    """Display ``obj`` rich in Jupyter, as text elsewhere; returns it."""
    try:
        from IPython import get_ipython
        from IPython.display import display

        if get_ipython() is not None:
            display(obj)
            return obj
    except ImportError:  # pragma: no cover
        pass
    print(obj)
    return obj


def record_checks(name: str, table: CheckTable) -> CheckTable:
    """Record a table's verdict as ``verdict_<name>`` and its rows as ``checks_<name>`` (every check table a notebook
    shows goes through here, so a test can hold the verdict to its rows); returns the table."""
    record(f"verdict_{name}", table.verdict())
    record(f"checks_{name}", table.to_records())
    return table


def cost_note(ctx: Context, *, final: bool = False) -> str:
    """eks: the GPU nodes' running cost (node-hours x ``PRICE_PER_NODE_HOUR``), with the teardown reminder at the
    end of a notebook (``final``); local: that nothing is billed."""
    return ctx.target.cost_note(final)


def commands(ctx: Context, step: str) -> str:
    """The commands a step corresponds to on this target (kubectl/helm on eks, ``workshop lab`` locally), one a line."""
    return "\n".join(ctx.target.commands(step))


def learned(points: list[str]) -> str:
    """A numbered recap (markdown) of what the section taught."""
    return "\n".join(f"{i}. {p}" for i, p in enumerate(points, 1))


def transfer_view(frame: Any) -> Any:
    """One row per block size: bandwidth (MB/s when every value is under 1 GB/s) and median latency per backend (and
    its transport), and whether every transfer was checked byte for byte."""
    import pandas as pd

    from workshop_lib.parsing import format_size

    out = pd.DataFrame({"block size": sorted(frame["block_size"].unique())})
    # below 1 GB/s (the local lab over TCP) MB/s reads better than 0.00x GB/s
    unit, scale = ("MB/s", 1000.0) if frame["gbps"].max() < 1 else ("GB/s", 1.0)
    for (backend, transport), g in frame.groupby(["backend", frame["transport"].fillna("")], sort=False):
        name = f"{backend} ({transport})" if transport else str(backend)
        g = g.set_index("block_size")
        out[f"{name} {unit}"] = out["block size"].map(g["gbps"] * scale).round(3 if scale == 1 else 1)
        lat = g["lat_p50_us"] if g["lat_p50_us"].notna().any() else g["lat_avg_us"]
        out[f"{name} latency {'p50' if g['lat_p50_us'].notna().any() else 'avg'} (us)"] = out["block size"].map(lat).round(1)
    if frame["source"].eq("lab").all():
        out["verified"] = out["block size"].map(frame.groupby("block_size")["verified"].all())
    out["block size"] = out["block size"].map(lambda b: format_size(int(b)))
    return out
