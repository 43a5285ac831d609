"""``workshop lab setup``: everything the local lab needs outside pip, cached under ``.lab/``.

What it does, once (a second run checks and does nothing, in well under two seconds), one module per piece:

- :mod:`.apt`: Debian packages (:data:`~.apt.APT_PACKAGES`), installed with apt-get when root (``apt-get update``
  once if a package is not found), otherwise a message with the exact ``apt-get install`` command. The system etcd
  service that ``etcd-server``'s postinst starts is stopped and disabled: the serving lab runs its own etcd.
- :mod:`.native`: ``libcuda.so.1`` (NIXL 0.9.0's plugins link it; on a GPU-less host a stub answering
  CUDA_ERROR_NO_DEVICE is compiled into ``.lab/lib``, never used where a real driver library exists) and
  ``libcudart.so.12`` from the pip package ``nvidia-cuda-runtime-cu12``.
- :mod:`.libfabric`: libfabric >= 2.1 for NIXL's LIBFABRIC backend, a system one or built once from Debian
  trixie's source into ``.lab/libfabric``. If that fails, UCX still works and LIBFABRIC is reported unavailable.
- :mod:`.engine`: the pinned NIXL wheels (``--no-deps``) and the real engine (``pins/engine.txt``).
- :mod:`.common`: how a need becomes a :class:`workshop_lib.checks.Check` row (:func:`~.common.item`; PASS, FAIL, or
  WARN for one of :data:`~.common.OPTIONAL_ITEMS`), progress messages, where things live.

This module: :func:`setup` (do it), :func:`status` (the local preflight's view, changes nothing), :func:`failed`,
and :func:`lab_env` (the environment NIXL processes need).

Example:
    >>> from workshop_lib.lab import setup
    >>> items = setup.status()            # fast checks, changes nothing: a list of checks.Check rows
    >>> env = setup.lab_env()             # {"LD_LIBRARY_PATH": ...}
"""

from __future__ import annotations

import os
import platform
import shutil
import sys

from workshop_lib import versions
from workshop_lib.checks import FAIL, PASS, WARN, Check
from workshop_lib.errors import LabError
from workshop_lib.lab.setup import apt, engine, libfabric, native
from workshop_lib.lab.setup.common import (
    OPTIONAL_ITEMS,
    Progress,
    item,
    lab_dir,
    libfabric_build_log,
    libfabric_failure,
    libfabric_failure_file,
    libfabric_prefix,
    libfabric_version_pin,
    logs_dir,
    quiet,
    require_linux,
    say,
    stub_path,
)
from workshop_lib.lab.setup.engine import ENGINE_MIN_DISK_GIB, ENGINE_MIN_RAM_GIB, engine_missing, engine_shortfall
from workshop_lib.lab.setup.libfabric import libfabric_unavailable_reason
from workshop_lib.paths import checkout_lab_dir

__all__ = [
    "OPTIONAL_ITEMS",
    "ENGINE_MIN_DISK_GIB",
    "ENGINE_MIN_RAM_GIB",
    "engine_missing",
    "engine_shortfall",
    "setup",
    "status",
    "failed",
    "lab_env",
    "lab_dir",
    "logs_dir",
    "require_linux",
    "libfabric_unavailable_reason",
    "apt",
    "engine",
    "libfabric",
    "native",
]

def lab_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """Variables a NIXL process of the lab needs, to lay over ``os.environ`` (or ``base``).

    ``LD_LIBRARY_PATH`` gets, in order: the libcuda stub's directory (only when no real driver library exists),
    the ``libcudart.so.12`` directory, the libfabric lib directory; then whatever the base had. NIXL 0.9.0's wheel
    finds its plugins beside its bindings, so ``NIXL_PLUGIN_DIR`` is set only when the base already sets it.
    """
    base = dict(os.environ if base is None else base)
    cache = native.ldconfig_entries()
    dirs: list[str] = []
    stub = next((p for p in (stub_path(), checkout_lab_dir() / "lib" / "libcuda.so.1") if p.exists()), None)
    if native.real_libcuda(cache) is None and stub is not None:
        dirs.append(str(stub.parent))
    cd = native.cudart_dir()
    if cd:
        dirs.append(str(cd))
    lf = libfabric.system_libfabric(cache)
    if lf:
        if str(lf[0]) not in ("/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/lib/x86_64-linux-gnu"):
            dirs.append(str(lf[0]))
    elif libfabric.built_stamp():
        dirs.append(str(libfabric_prefix() / "lib"))
    elif (checkout_lab_dir() / "libfabric" / "lib" / "libfabric.so.1").exists():
        dirs.append(str(checkout_lab_dir() / "libfabric" / "lib"))  # built by `make setup`, lab run elsewhere
    old = [d for d in base.get("LD_LIBRARY_PATH", "").split(":") if d]
    out = {"LD_LIBRARY_PATH": ":".join(dict.fromkeys(dirs + old))}
    if base.get("NIXL_PLUGIN_DIR"):
        out["NIXL_PLUGIN_DIR"] = base["NIXL_PLUGIN_DIR"]
    return out


def status() -> list[Check]:
    """The local lab's preflight: one :class:`~workshop_lib.checks.Check` per need (PASS, FAIL, or WARN for an
    optional one), checked quickly, changing nothing."""
    items: list[Check] = []
    if sys.platform != "linux":
        items.append(
            item(
                "platform",
                False,
                platform.system() or sys.platform,
                "Linux",
                "use the eks target (TARGET='eks') or a Linux machine or VM",
            )
        )
        return items
    items.append(item("platform", True, f"Linux {platform.machine()}", "Linux", ""))
    have = apt.dpkg_installed(apt.APT_PACKAGES)
    dpkg = shutil.which("dpkg-query") is not None
    missing = [p for p, v in have.items() if v is None]
    for pkg, why in apt.APT_PACKAGES.items():
        v = have[pkg]
        pin = versions.SYSTEM.get(pkg)
        items.append(
            item(
                f"apt:{pkg}",
                v is not None,
                v or ("not installed" if dpkg else "no dpkg on this machine"),
                (pin.version if pin else "installed") + f" ({why})",
                "" if v is not None else (apt.apt_install_command(missing) if dpkg else f"install the equivalent of {pkg}"),
            )
        )
    pids = apt.system_etcd_pids()
    items.append(
        item(
            "system etcd service",
            not pids,
            f"running (pid {', '.join(map(str, pids))})" if pids else "not running",
            "not running (the lab starts its own etcd on 127.0.0.1:2379)",
            ""
            if not pids
            else "run `workshop lab setup` as root, or: sudo /etc/init.d/etcd stop && sudo update-rc.d etcd disable",
        )
    )
    cache = native.ldconfig_entries()
    real = native.real_libcuda(cache)
    if real:
        items.append(item("libcuda.so.1", True, f"NVIDIA driver: {real}", "driver library or the lab stub", ""))
    else:
        ok = native.stub_current()
        items.append(
            item(
                "libcuda.so.1",
                ok,
                f"stub: {stub_path()}" if ok else ("stub out of date" if stub_path().exists() else "missing"),
                "driver library or the lab stub",
                "" if ok else "run `workshop lab setup` (compiles native/libcuda_stub.c with gcc)",
            )
        )
    cd = native.cudart_dir()
    items.append(
        item(
            "libcudart.so.12",
            cd is not None,
            str(cd) if cd else "not found",
            "from pip package nvidia-cuda-runtime-cu12",
            "" if cd else "pip install -e '.[lab]' (pins/lab.txt has nvidia-cuda-runtime-cu12)",
        )
    )
    sys_lf = libfabric.system_libfabric(cache)
    built = libfabric.built_stamp()
    want = f">= {libfabric.LIBFABRIC_MIN[0]}.{libfabric.LIBFABRIC_MIN[1]} (built: {libfabric_version_pin()} from Debian trixie source)"
    if sys_lf:
        found = f"system: {sys_lf[0]} (fi_version {sys_lf[1][0]}.{sys_lf[1][1]})"
    elif built:
        found = f"built: {libfabric_prefix()} ({built.get('version')}, fi_version {built.get('fi_version')})"
    else:
        found = "not found"
        fail = libfabric_failure()
        if fail:
            found += f"; last build failed: {fail} (log {libfabric_build_log()})"
        elif libfabric_build_log().exists():
            found += f" (a build was tried: {libfabric_build_log()})"
    items.append(
        item(
            "libfabric",
            bool(sys_lf or built),
            found,
            want,
            ""
            if (sys_lf or built)
            else "run `workshop lab setup` (builds it in 3-4 min on 2 cores); UCX works without it",
        )
    )
    items.append(engine.nixl_item())
    items.append(engine.engine_item())
    return items

def setup(check: bool = False, progress: bool = True) -> list[Check]:
    """Make the lab ready (or only check it, with ``check=True``); returns :func:`status` afterwards.

    Raises :class:`LabUnsupported` off Linux and :class:`LabError` when a required step fails; a libfabric failure
    is not raised (UCX works without it): its row comes back WARN, with the reason.
    """
    require_linux()
    if check:
        return status()
    tell: Progress = say if progress else quiet
    lab_dir().mkdir(parents=True, exist_ok=True)
    logs_dir().mkdir(parents=True, exist_ok=True)
    have = apt.dpkg_installed(apt.APT_PACKAGES) if shutil.which("dpkg-query") else None
    if have is not None:
        missing = [p for p, v in have.items() if v is None]
        if missing:
            apt.install_apt(missing, say=tell)
        if "etcd-server" in missing or apt.system_etcd_pids() or apt.service_enabled():
            apt.stop_system_etcd(say=tell)
    if native.real_libcuda() is None:
        native.build_stub(say=tell)
    if native.cudart_dir() is None:
        tell("nvidia-cuda-runtime-cu12 is not installed: NIXL cannot load (pip install -e '.[lab]')")
    if os.environ.get("WORKSHOP_ENGINE", "").strip().lower() == "mocker":
        tell("WORKSHOP_ENGINE=mocker: not installing the real engine (the lab runs Dynamo's mocker)")
    elif engine.engine_missing():
        short = engine.engine_shortfall()
        if short:
            tell(f"NOT installing the real engine: {short}. The lab will use the lighter engine (mocker, no KV bytes).")
        else:
            engine.install_engine(say=tell)
    if engine.nixl_item().status != PASS:
        engine.install_nixl(say=tell)  # after the engine: its resolver must not replace the --no-deps NIXL wheels
    if libfabric.system_libfabric() is None and libfabric.built_stamp() is None:
        marker = libfabric_failure_file()
        past = marker.read_text() if marker.exists() else ""
        if past and f"version {libfabric_version_pin()} " in past and "step=fetch" not in past:
            # A compile that failed once fails again: don't spend minutes on it at every run.
            tell(f"LIBFABRIC unavailable: the last build failed ({past.splitlines()[0]}); delete {marker} to retry")
        else:
            try:
                libfabric.build_libfabric(progress=progress, say=tell)
                marker.unlink(missing_ok=True)
            except LabError as exc:
                step = "fetch" if "fetch" in exc.where or "apt-get" in exc.problem else "build"
                first = str(exc).splitlines()[0]
                marker.write_text(f"{first}\nversion {libfabric_version_pin()} step={step}\n")
                tell(f"LIBFABRIC will be unavailable: {exc}")
    return status()


def failed(items: list[Check], include_optional: bool = False) -> list[Check]:
    """The FAIL rows (and the WARN ones of optional items, such as libfabric, only when asked)."""
    return [i for i in items if i.status == FAIL or (include_optional and i.status == WARN)]
