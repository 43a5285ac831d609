"""The CUDA libraries NIXL 0.9.0's plugins link: ``libcuda.so.1`` (a real NVIDIA driver library, else a stub compiled
from ``lab/native/libcuda_stub.c`` whose functions answer CUDA_ERROR_NO_DEVICE) and ``libcudart.so.12`` (from the pip
package ``nvidia-cuda-runtime-cu12``)."""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shlex
import shutil
import subprocess
from pathlib import Path

from workshop_lib.errors import LabError
from workshop_lib.lab.setup.apt import apt_install_command
from workshop_lib.lab.setup.common import Progress, say, stub_path
from workshop_lib.paths import package_dir

STUB_SOURCE = package_dir() / "lab" / "native" / "libcuda_stub.c"


def ldconfig_entries() -> dict[str, list[str]]:
    """``ldconfig -p`` as soname -> paths (empty when ldconfig is absent)."""
    exe = shutil.which("ldconfig") or ("/sbin/ldconfig" if Path("/sbin/ldconfig").exists() else None)
    if not exe:
        return {}
    try:
        res = subprocess.run([exe, "-p"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    want_x86 = platform.machine() == "x86_64"
    out: dict[str, list[str]] = {}
    for line in res.stdout.splitlines():
        m = re.match(r"\s*(\S+)\s+\(([^)]*)\)\s+=>\s+(\S+)", line)
        if m and (not want_x86 or "x86-64" in m.group(2)):
            out.setdefault(m.group(1), []).append(m.group(3))
    return out


REAL_LIBCUDA_DIRS = (
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
    "/usr/local/nvidia/lib64",
    "/usr/local/nvidia/lib",
    "/usr/lib/wsl/lib",
)


def real_libcuda(ld_cache: dict[str, list[str]] | None = None) -> str | None:
    """Path of a real NVIDIA driver ``libcuda.so.1`` (not a toolkit ``stubs/`` copy, not ours), or None."""
    ours = stub_path().resolve()
    candidates = list((ld_cache if ld_cache is not None else ldconfig_entries()).get("libcuda.so.1", []))
    candidates += [f"{d}/libcuda.so.1" for d in REAL_LIBCUDA_DIRS]
    for c in candidates:
        p = Path(c)
        if "stubs" in p.parts or not p.exists():
            continue
        try:
            if p.resolve() == ours or p.resolve().parent == ours.parent:
                continue
        except OSError:
            continue
        return str(p)
    return None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def stub_current() -> bool:
    """Whether ``.lab/lib/libcuda.so.1`` exists and was built from the current stub source."""
    stamp = stub_path().with_name("libcuda.so.1.sha256")
    return stub_path().exists() and stamp.exists() and stamp.read_text().strip() == _sha256(STUB_SOURCE)


def build_stub(say: Progress = say) -> Path:
    """Compile ``native/libcuda_stub.c`` into ``.lab/lib/libcuda.so.1`` (skipped when current)."""
    out = stub_path()
    if stub_current():
        return out
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if not cc:
        raise LabError("libcuda stub", "no C compiler (gcc) found", f"run: {apt_install_command(['gcc', 'libc6-dev'])}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name("libcuda.so.1.tmp")
    cmd = [cc, "-shared", "-fPIC", "-O2", "-Wl,-soname,libcuda.so.1", "-o", str(tmp), str(STUB_SOURCE)]
    say("compiling the libcuda.so.1 stub (no NVIDIA driver on this machine)")
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise LabError(
            "libcuda stub", f"{shlex.join(cmd)} failed: {res.stderr.strip()[-500:]}", "install gcc and libc6-dev"
        )
    tmp.replace(out)
    out.with_name("libcuda.so.1.sha256").write_text(_sha256(STUB_SOURCE) + "\n")
    return out

# ---------------------------------------------------------------------------------------------------------------------
# libcudart.so.12 from nvidia-cuda-runtime-cu12


def cudart_dir() -> Path | None:
    """The directory of ``libcudart.so.12`` from the pip package ``nvidia-cuda-runtime-cu12`` (None if absent)."""
    from importlib import metadata

    try:
        dist = metadata.distribution("nvidia-cuda-runtime-cu12")
    except metadata.PackageNotFoundError:
        return None
    for f in dist.files or []:
        if f.name == "libcudart.so.12":
            p = Path(str(dist.locate_file(f)))
            if p.exists():
                return p.parent.resolve()
    return None
