"""Where the kit's files are: the repository root and the local lab's directory. One lookup for the whole package.

Example:
    >>> (repo_root() / "workshop_lib" / "paths.py").exists()
    True
"""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def repo_root() -> Path:
    """The directory that holds the ``workshop_lib`` package: the checkout's root in a clone (an editable install),
    ``site-packages`` in a plain install (see :func:`in_checkout`)."""
    return _PACKAGE.parent


def package_dir() -> Path:
    """The ``workshop_lib`` package directory (its data files: ``pins/``, ``lab/native/``...)."""
    return _PACKAGE


def in_checkout() -> bool:
    """Whether :func:`repo_root` is a checkout of the kit (it has ``pyproject.toml``), not ``site-packages``."""
    return (repo_root() / "pyproject.toml").exists()


def checkout_lab_dir() -> Path:
    """The checkout's own ``.lab`` (where ``make setup`` builds the libcuda stub and libfabric), whatever
    ``$WORKSHOP_LAB_DIR`` says: a lab run from another directory (tests, a second lab) reuses those pieces."""
    return repo_root() / ".lab"


def lab_dir() -> Path:
    """``$WORKSHOP_LAB_DIR``, else ``.lab`` at the repository root (the current directory outside a checkout).

    Example:
        >>> from unittest import mock
        >>> with mock.patch.dict(os.environ, {"WORKSHOP_LAB_DIR": "/tmp/lab"}):
        ...     str(lab_dir())
        '/tmp/lab'
    """
    env = os.environ.get("WORKSHOP_LAB_DIR")
    if env:
        return Path(env).expanduser().resolve()
    return checkout_lab_dir() if in_checkout() else Path.cwd() / ".lab"
