"""workshop_lib: the library behind the Dynamo disaggregated-inference workshop notebooks.

Data flows one way: parameters -> :class:`~workshop_lib.config.WorkshopConfig` -> rendered manifests -> cluster or
local lab -> logs and metrics -> parsed tables -> verdicts and plots.

``WorkshopConfig`` and ``WorkshopError`` are loaded on first use (PEP 562), so a command that needs neither (``workshop
diagnose`` on a log) does not pay for the config stack (YAML, the version table) at start-up.

Example:
    >>> import workshop_lib
    >>> workshop_lib.WorkshopConfig.__name__, workshop_lib.WorkshopError.__name__
    ('WorkshopConfig', 'WorkshopError')
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from workshop_lib.config import WorkshopConfig
    from workshop_lib.errors import WorkshopError

__version__ = "0.1.0"
__all__ = ["WorkshopConfig", "WorkshopError", "__version__"]
_LAZY = {"WorkshopConfig": "workshop_lib.config", "WorkshopError": "workshop_lib.errors"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'workshop_lib' has no attribute {name!r}")
