"""The kit's exceptions: one flat module, every error says what was wrong and how to fix it.

Each exception carries a message that names the field, file or resource, and (where there is one) the fix. The CLI
prints ``str(exc)`` on one line and exits non-zero; no traceback reaches the user.

Example:
    >>> raise ConfigError("worker_memory", "'lots' is not a Kubernetes quantity", "use e.g. 128Gi")
    Traceback (most recent call last):
    ...
    workshop_lib.errors.ConfigError: worker_memory: 'lots' is not a Kubernetes quantity. Fix: use e.g. 128Gi
"""

from __future__ import annotations


class WorkshopError(Exception):
    """Base class of every error the kit raises on purpose."""

    def __init__(self, where: str, problem: str, fix: str = "") -> None:
        self.where = where
        self.problem = problem
        self.fix = fix
        msg = f"{where}: {problem}" if where else problem
        if fix:
            msg += f". Fix: {fix}"
        super().__init__(msg)


class ConfigError(WorkshopError):
    """A workshop parameter is missing, malformed or inconsistent."""


class VersionsError(WorkshopError):
    """The versions table is inconsistent (an unpinned or unknown component)."""


class ManifestError(WorkshopError):
    """A manifest cannot be rendered, parsed or validated."""


class ValidationFailed(WorkshopError):
    """One or more manifests broke the CRD schema or a workshop lint rule."""


class ClusterError(WorkshopError):
    """The Kubernetes API refused, could not be reached, or answered unexpectedly."""


class ClusterTimeout(ClusterError):
    """A wait on the cluster ran past its timeout."""


class PlatformError(WorkshopError):
    """Installing or verifying the Dynamo platform (Helm charts) failed."""


class LabError(WorkshopError):
    """The local lab could not be set up, started, checked or stopped."""


class LabUnsupported(LabError):
    """The local lab cannot run on this machine (not Linux, not root for --netns, missing libfabric...)."""


class LogParseError(WorkshopError):
    """A log file cannot be read at all (missing, a directory, unreadable)."""


class BenchError(WorkshopError):
    """A benchmark was asked for with bad parameters or could not produce results."""


class NotebookError(WorkshopError):
    """A workshop notebook failed when run headless (carries the notebook and cell)."""
