"""Where a notebook's graph runs: one :class:`Target` interface, two implementations (``eks``, ``local``).

The notebook steps (:mod:`workshop_lib.sections`) call ``ctx.target`` and never branch on the target themselves.
"""

from workshop_lib.targets.base import ROLES, ServingRun, Sides, Target, dgd_names, dgds, for_config, parse_metrics

__all__ = ["ROLES", "ServingRun", "Sides", "Target", "dgd_names", "dgds", "for_config", "parse_metrics"]
