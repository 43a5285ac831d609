"""Values a notebook records for the headless runner and the tests (a small, dependency-free "scrap").

A notebook calls :func:`record` for each value worth checking (a verdict, a row count, a file written). When the
notebook runs under ``workshop run`` (or the tests), ``WORKSHOP_RECORD_DIR`` and ``WORKSHOP_NOTEBOOK`` are set and
the values land in ``<dir>/<notebook>.json``; in JupyterLab they are only kept in memory. Tests assert on those
values, never on pixels.

Example:
    >>> record("verdict", "tcp-fallback")
    'tcp-fallback'
    >>> recorded()["verdict"]
    'tcp-fallback'
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

_VALUES: dict[str, Any] = {}

ENV_DIR = "WORKSHOP_RECORD_DIR"
ENV_NOTEBOOK = "WORKSHOP_NOTEBOOK"


def _jsonable(value: Any) -> Any:
    """Plain JSON values from numpy/pandas scalars, paths, frames and NaN (as None)."""
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "to_dict") and hasattr(value, "columns"):  # a DataFrame
        return [_jsonable(r) for r in value.to_dict(orient="records")]
    if hasattr(value, "item"):  # numpy scalar
        return _jsonable(value.item())
    return str(value)


def record_path() -> Path | None:
    """Where recorded values are written, or None when not running headless."""
    d, nb = os.environ.get(ENV_DIR), os.environ.get(ENV_NOTEBOOK)
    return Path(d) / f"{nb}.json" if d and nb else None


def record(name: str, value: Any) -> Any:
    """Record ``value`` under ``name`` (JSON-able); returns ``value`` so it can wrap an expression."""
    _VALUES[name] = _jsonable(value)
    path = record_path()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(_VALUES, indent=2, sort_keys=True))
        tmp.replace(path)
    return value


def recorded() -> dict[str, Any]:
    """Everything recorded so far in this kernel."""
    return dict(_VALUES)


def load(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a record file written by :func:`record` (empty dict when the notebook recorded nothing)."""
    p = Path(path)
    return json.loads(p.read_text()) if p.exists() else {}
