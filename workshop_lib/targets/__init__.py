"""Where a notebook's graph runs: one :class:`Target` interface, two implementations (``eks``, ``local``).

The notebook steps (:mod:`workshop_lib.sections`) call ``ctx.target`` and never branch on the target themselves;
:func:`for_config` is the one place that reads ``cfg.target`` to pick an implementation (the interface in
:mod:`workshop_lib.targets.base` never imports its implementations).
"""

from __future__ import annotations

from typing import Any

from workshop_lib.config import WorkshopConfig
from workshop_lib.targets.base import ROLES, ServingRun, Sides, Target, dgd_names, dgds, parse_metrics

__all__ = ["ROLES", "ServingRun", "Sides", "Target", "dgd_names", "dgds", "for_config", "parse_metrics"]


def for_config(cfg: WorkshopConfig, state: dict[str, Any] | None = None, *, netns: bool = False,
               urls: dict[str, str] | None = None) -> Target:
    """The target ``cfg.target`` names (cached in ``state`` under ``"target"`` when given).

    Args:
        netns: local: run section 3's two "nodes" in two network namespaces (needs root).
        urls: eks: backend -> frontend URL given as a parameter (swept without deploying).
    """
    if state is not None and isinstance(state.get("target"), Target) and state["target"].cfg is cfg:
        return state["target"]
    if cfg.target == "eks":
        from workshop_lib.targets.eks import EksTarget

        target: Target = EksTarget(cfg, urls=urls)
    else:
        from workshop_lib.targets.local import LocalTarget

        target = LocalTarget(cfg, netns=netns)
    if state is not None:
        state["target"] = target
    return target
