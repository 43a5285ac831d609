"""Debian packages the lab needs (installed with apt-get as root, else the exact command to run) and the system etcd
service that ``etcd-server``'s postinst starts (stopped and disabled: the serving lab runs its own on port 2379)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

from workshop_lib.errors import LabError
from workshop_lib.lab.setup.common import Progress, is_root, logs_dir, run_logged, say

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


def install_apt(packages: list[str], say: Progress = say) -> None:
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
        if run_logged(cmd, log, env) != 0:
            say("apt-get update (a package was not found or the lists are stale)")
            run_logged(["apt-get", "update", "-q"], log, env)
            if run_logged(cmd, log, env) != 0:
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


def service_enabled() -> bool:
    """Whether the Debian etcd service would start at boot (an S link in a runlevel dir, or a systemd unit)."""
    if any(Path("/etc").glob("rc[2-5].d/S*etcd")):
        return True
    return Path("/etc/systemd/system/multi-user.target.wants/etcd.service").exists()


def stop_system_etcd(say: Progress = say) -> None:
    """Stop and disable the etcd service the package started; the lab runs its own etcd."""
    if not is_root():
        return
    pids = system_etcd_pids()
    if pids:
        say(f"stopping the system etcd service (pid {', '.join(map(str, pids))}): the lab runs its own on port 2379")
        if Path("/run/systemd/system").is_dir() and shutil.which("systemctl"):
            run_logged(["systemctl", "stop", "etcd"], None)
        elif Path("/etc/init.d/etcd").exists():
            run_logged(["/etc/init.d/etcd", "stop"], None)
        deadline = time.monotonic() + 10
        while system_etcd_pids() and time.monotonic() < deadline:
            time.sleep(0.2)
    if service_enabled():
        if Path("/run/systemd/system").is_dir() and shutil.which("systemctl"):
            run_logged(["systemctl", "disable", "etcd"], None)
        if shutil.which("update-rc.d") and Path("/etc/init.d/etcd").exists():
            run_logged(["update-rc.d", "etcd", "disable"], None)
