"""workshop_lib: the library behind the Dynamo disaggregated-inference workshop notebooks.

Data flows one way: parameters -> :class:`~workshop_lib.config.WorkshopConfig` -> rendered manifests -> cluster or
local lab -> logs and metrics -> parsed tables -> verdicts and plots.
"""

from workshop_lib.config import WorkshopConfig
from workshop_lib.errors import WorkshopError

__version__ = "0.1.0"
__all__ = ["WorkshopConfig", "WorkshopError", "__version__"]
