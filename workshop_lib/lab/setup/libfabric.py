"""libfabric >= 2.1 for NIXL's LIBFABRIC backend: a system one when present (``ldconfig``, the conda prefix,
``/opt/amazon/efa``), else built once from Debian trixie's source (LOCAL-LAB.md) into ``.lab/libfabric``, the build
logged to ``.lab/logs/libfabric-build.log``. If that fails, UCX still works and LIBFABRIC is reported unavailable with
the reason (:func:`libfabric_unavailable_reason`)."""

from __future__ import annotations

import ctypes
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

from workshop_lib.errors import LabError
from workshop_lib.lab.setup.common import (
    Progress,
    is_root,
    lab_dir,
    libfabric_build_log,
    libfabric_failure,
    libfabric_prefix,
    libfabric_version_pin,
    quiet,
    run_logged,
    say,
)
from workshop_lib.lab.setup.native import ldconfig_entries

# The Debian revision of the trixie source package for the pinned upstream version (versions.SYSTEM).
LIBFABRIC_DEBIAN_REVISION = "1.1"
LIBFABRIC_MIN = (2, 1)
LIBFABRIC_PROVIDERS = ("tcp", "sockets", "shm", "udp", "rxm", "rxd")
DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEBIAN_SUITES = ("buster", "bullseye", "bookworm", "trixie", "forky", "sid", "testing", "stable", "unstable")


def libfabric_version(lib: str | Path) -> tuple[int, int] | None:
    """``fi_version()`` of a libfabric shared library as (major, minor); None when it cannot be loaded."""
    try:
        handle = ctypes.CDLL(str(lib))
        fn = handle.fi_version
    except (OSError, AttributeError):
        return None
    fn.restype = ctypes.c_uint32
    v = int(fn())
    return (v >> 16, v & 0xFFFF)


def built_stamp() -> dict[str, object] | None:
    stamp = libfabric_prefix() / ".workshop-stamp.json"
    try:
        data = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return None
    if data.get("version") != libfabric_version_pin() or not (libfabric_prefix() / "lib" / "libfabric.so.1").exists():
        return None
    return data


def system_libfabric(ld_cache: dict[str, list[str]] | None = None) -> tuple[Path, tuple[int, int]] | None:
    """A libfabric >= 2.1 already on the machine: ldconfig, ``$CONDA_PREFIX/lib``, ``/opt/amazon/efa``."""
    cands = list((ld_cache if ld_cache is not None else ldconfig_entries()).get("libfabric.so.1", []))
    conda = os.environ.get("CONDA_PREFIX")
    if conda:
        cands.append(f"{conda}/lib/libfabric.so.1")
    cands += ["/opt/amazon/efa/lib/libfabric.so.1", "/opt/amazon/efa/lib64/libfabric.so.1"]
    seen: set[Path] = set()
    for c in cands:
        p = Path(c)
        if not p.exists() or p.resolve() in seen:
            continue
        seen.add(p.resolve())
        v = libfabric_version(p)
        if v is not None and v >= LIBFABRIC_MIN:
            return p.parent, v
    return None


def libfabric_lib_dir() -> Path | None:
    """The directory holding the libfabric the lab uses (system one first, else the one built here)."""
    found = system_libfabric()
    if found:
        return found[0]
    if built_stamp():
        return libfabric_prefix() / "lib"
    return None


def debian_mirror(etc_apt: Path = Path("/etc/apt")) -> str:
    """The Debian mirror of the system's own apt sources (one-line or deb822), else deb.debian.org."""
    entries: list[tuple[str, list[str]]] = []
    one_line = [etc_apt / "sources.list", *sorted((etc_apt / "sources.list.d").glob("*.list"))]
    for f in one_line:
        try:
            text = f.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            words = re.sub(r"\[[^\]]*\]", " ", line.split("#", 1)[0]).split()
            if len(words) >= 3 and words[0] in ("deb", "deb-src"):
                entries.append((words[1], [words[2]]))
    for f in sorted((etc_apt / "sources.list.d").glob("*.sources")):
        try:
            text = f.read_text()
        except OSError:
            continue
        for stanza in re.split(r"\n\s*\n", text):
            fields: dict[str, str] = {}
            for raw in stanza.splitlines():
                if raw.startswith("#") or ":" not in raw:
                    continue
                k, _, v = raw.partition(":")
                fields[k.strip().lower()] = v.strip()
            if fields.get("enabled", "yes").lower() == "no":
                continue
            for uri in fields.get("uris", "").split():
                entries.append((uri, fields.get("suites", "").split()))
    for uri, suites in entries:
        base = uri.rstrip("/")
        if "security" in base:
            continue
        if any(s.split("-", 1)[0] in DEBIAN_SUITES for s in suites):
            return base
    return DEFAULT_MIRROR


def _apt_private_opts(root: Path) -> list[str]:
    opts = [
        "-o",
        f"Dir::Etc::SourceList={root / 'sources.list'}",
        "-o",
        "Dir::Etc::SourceParts=/dev/null",
        "-o",
        f"Dir::State::Lists={root / 'lists'}",
        "-o",
        f"Dir::Cache={root / 'cache'}",
        "-o",
        "Debug::NoLocking=1",
    ]
    if is_root():
        opts += ["-o", "APT::Sandbox::User=root"]
    return opts


def fetch_libfabric_source(log: Path, say: Progress = say) -> Path:
    """Download ``libfabric_<ver>.orig.tar.*`` from trixie with a private apt config; returns the tarball."""
    ver = libfabric_version_pin()
    src = lab_dir() / "src"
    src.mkdir(parents=True, exist_ok=True)
    have = sorted(src.glob(f"libfabric_{ver}.orig.tar.*"))
    if have:
        return have[0]
    if not shutil.which("apt-get"):
        raise LabError(
            "libfabric",
            "apt-get is needed to fetch Debian trixie's libfabric source",
            "install libfabric >= 2.1 yourself (conda-forge libfabric) and activate that environment",
        )
    root = lab_dir() / "apt"
    for d in ("lists/partial", "cache/archives/partial"):
        (root / d).mkdir(parents=True, exist_ok=True)
    mirror = debian_mirror()
    signed = f"[signed-by={DEBIAN_KEYRING}] " if Path(DEBIAN_KEYRING).exists() else ""
    (root / "sources.list").write_text(f"deb-src {signed}{mirror} trixie main\n")
    opts = _apt_private_opts(root)
    say(f"fetching libfabric {ver} source from Debian trixie ({mirror})")
    if run_logged(["apt-get", *opts, "update"], log) != 0:
        raise LabError("libfabric", f"apt-get update of the private trixie source list failed (see {log})",
                       f"check access to {mirror} (proxy, DNS), then rerun `workshop lab setup`")
    pkg = f"libfabric={ver}-{LIBFABRIC_DEBIAN_REVISION}"
    # The .dsc/.debian.tar may 404 on some mirrors; only the upstream tarball is needed, so judge by the file.
    run_logged(["apt-get", *opts, "source", "--download-only", pkg], log, cwd=src)
    have = sorted(src.glob(f"libfabric_{ver}.orig.tar.*"))
    if not have:
        raise LabError("libfabric", f"apt-get source --download-only {pkg} gave no orig tarball (see {log})",
                       f"read {log}; or put libfabric_{ver}.orig.tar.* from a Debian mirror into {src} and rerun "
                       "`workshop lab setup`")
    shutil.rmtree(root, ignore_errors=True)  # the trixie lists (20+ MB) are not needed once the tarball is here
    return have[0]


def build_libfabric(progress: bool = True, say: Progress = say) -> Path:
    """Build the pinned libfabric from Debian trixie's source into ``.lab/libfabric``; returns its lib dir."""
    ver = libfabric_version_pin()
    prefix = libfabric_prefix()
    log = libfabric_build_log()
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(f"# libfabric {ver} build for the workshop lab, {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    t0 = time.monotonic()
    steps = ["fetch source", "unpack", "autogen.sh", "configure", "make", "make install", "check"]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(steps), desc="libfabric", unit="step", file=sys.stderr, leave=True)

    def step(name: str, cmd: list[str] | None = None, cwd: Path | None = None) -> None:
        if bar is not None:
            bar.set_description(f"libfabric: {name}")
        else:
            say(f"libfabric: {name}")
        with log.open("a") as fh:
            fh.write(f"\n# step {name!r} at {time.monotonic() - t0:.0f} s\n")
        if cmd is not None:
            with log.open("a") as fh:
                fh.write(f"\n$ {shlex.join(cmd)}\n")
                fh.flush()
                proc = subprocess.Popen(cmd, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT)
                start = time.monotonic()
                while proc.poll() is None:
                    if bar is not None:
                        # a terminal sees the seconds tick; a log (CI) gets a line per step, not one per second
                        bar.set_postfix_str(f"{time.monotonic() - start:.0f} s", refresh=sys.stderr.isatty())
                    time.sleep(1.0)
            if proc.returncode != 0:
                if bar is not None:
                    bar.close()
                tail = "".join(log.read_text(errors="replace").splitlines(True)[-15:])
                raise LabError(
                    "libfabric",
                    f"`{name}` failed (exit {proc.returncode}); full log: {log}; last lines:\n{tail}",
                    "UCX works without it; fix the error above and run `workshop lab setup` again",
                )
        if bar is not None:
            bar.update(1)

    try:
        lib = _fetch_and_build(step, prefix, log, say if bar is None else quiet)
    finally:
        if bar is not None:
            bar.close()
    secs = time.monotonic() - t0
    v = libfabric_version(lib) or (0, 0)
    stamp = {"version": ver, "fi_version": f"{v[0]}.{v[1]}", "seconds": round(secs, 1), "built": time.time()}
    (prefix / ".workshop-stamp.json").write_text(json.dumps(stamp) + "\n")
    with log.open("a") as fh:
        fh.write(f"\n# done in {secs:.0f} s: {lib} (fi_version {v[0]}.{v[1]})\n")
    say(f"libfabric {ver} built in {secs:.0f} s into {prefix}")
    return prefix / "lib"


def _fetch_and_build(step: Callable[..., None], prefix: Path, log: Path, say: Progress) -> Path:
    """The steps of :func:`build_libfabric`; returns the installed ``libfabric.so.1``."""
    build = lab_dir() / "build"
    step("fetch source")
    tarball = fetch_libfabric_source(log, say=say)
    step("unpack")
    shutil.rmtree(build, ignore_errors=True)
    build.mkdir(parents=True)
    with tarfile.open(tarball) as tf:
        tf.extractall(build, filter="data")
    srcdirs = [d for d in build.iterdir() if d.is_dir()]
    if len(srcdirs) != 1:
        raise LabError("libfabric", f"unexpected layout in {tarball.name}: {[d.name for d in srcdirs]}",
                       f"delete {tarball} (a partial download?) and rerun `workshop lab setup`")
    srcdir = srcdirs[0]
    shutil.rmtree(prefix, ignore_errors=True)
    step("autogen.sh", ["./autogen.sh"], srcdir)
    conf = ["./configure", f"--prefix={prefix}", "--enable-only"] + [f"--enable-{p}" for p in LIBFABRIC_PROVIDERS]
    conf += ["--disable-static"]
    step("configure", conf, srcdir)
    step("make", ["make", f"-j{os.cpu_count() or 2}"], srcdir)
    step("make install", ["make", "install"], srcdir)
    step("check")
    lib = prefix / "lib" / "libfabric.so.1"
    v = libfabric_version(lib)
    if v is None or v < LIBFABRIC_MIN:
        raise LabError("libfabric", f"the built {lib} reports version {v}, expected >= {LIBFABRIC_MIN}",
                       f"read {log}; delete {prefix} and rerun `workshop lab setup`")
    shutil.rmtree(build, ignore_errors=True)
    return lib

def libfabric_unavailable_reason() -> str | None:
    """Why NIXL's LIBFABRIC backend cannot load here (None when it can)."""
    if libfabric_lib_dir() is None:
        log = libfabric_build_log()
        fail = libfabric_failure()
        extra = f" (last build failed: {fail}; log {log})" if fail else (f" (build log {log})" if log.exists() else "")
        return f"no libfabric >= {LIBFABRIC_MIN[0]}.{LIBFABRIC_MIN[1]} on this machine{extra}; run `workshop lab setup`"
    if "libhwloc.so.15" not in ldconfig_entries():
        return "libhwloc.so.15 is missing (Debian package libhwloc15); run `workshop lab setup`"
    return None
