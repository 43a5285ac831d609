"""Two network namespaces joined by a veth pair: two "nodes" on one Linux machine (root only).

The NIXL pair runs one agent in each namespace, so its traffic crosses a real network interface (the veth) instead
of loopback or a kernel memory copy. Only the namespace addresses (10.200.0.1 and 10.200.0.2 by default) are
used; nothing is routed outside. The namespaces are deleted on every way out: normal exit, an exception, Ctrl-C,
SIGTERM, or interpreter exit.

Example:
    >>> with netns_pair() as pair:                                   # doctest: +SKIP
    ...     subprocess.run([*pair.exec_prefix(0), "ip", "-br", "addr"])
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from workshop_lib.errors import LabError, LabUnsupported

DEFAULT_ADDRS = ("10.200.0.1", "10.200.0.2")
ISOLATED_ADDR = "10.200.1.1"
PREFIX_LEN = 24


@dataclass(frozen=True, slots=True)
class NetnsPair:
    """Names and addresses of the two namespaces (index 0: initiator side, 1: target side)."""

    names: tuple[str, str]
    veths: tuple[str, str]
    addrs: tuple[str, str]

    def exec_prefix(self, side: int) -> list[str]:
        """The command prefix that runs a program inside namespace ``side``."""
        return ["ip", "netns", "exec", self.names[side]]


def can_isolate() -> bool:
    """Whether this process may create namespaces (root and the ``ip`` command)."""
    return hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("ip") is not None


def require_netns_support() -> None:
    """Raise :class:`LabUnsupported` unless this process can create namespaces (root and ``ip``)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        raise LabUnsupported(
            "--netns",
            "two network namespaces need root (ip netns add, veth)",
            "run as root (sudo), or drop --netns: everything then runs over loopback",
        )
    if not shutil.which("ip"):
        raise LabUnsupported("--netns", "the `ip` command is missing", "apt-get install iproute2")


def run_ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``ip ARGS``; raise :class:`LabError` with its stderr when it fails and ``check``."""
    res = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=15)
    if check and res.returncode != 0:
        raise LabError("--netns", f"`ip {' '.join(args)}` failed: {res.stderr.strip()}",
                       "`workshop lab down` removes a half-made lab network; check `ip netns list` and `ip link`")
    return res


def existing_namespaces() -> set[str]:
    res = run_ip("netns", "list", check=False)
    return {line.split()[0] for line in res.stdout.splitlines() if line.strip()}


def existing_links() -> set[str]:
    res = run_ip("-o", "link", "show", check=False)
    names = set()
    for line in res.stdout.splitlines():
        parts = line.split(":", 2)
        if len(parts) >= 2:
            names.add(parts[1].strip().split("@", 1)[0])
    return names


def free_names(tag: str | None = None) -> tuple[tuple[str, str], tuple[str, str]]:
    """Namespace and veth names not in use now (interface names stay within 15 characters)."""
    taken_ns = existing_namespaces()
    taken_links = existing_links()
    base = tag or str(os.getpid())
    for n in range(100):
        suffix = base if n == 0 else f"{base}x{n}"
        ns = (f"wsnixl-{suffix}-i", f"wsnixl-{suffix}-t")
        veth = (f"wsv{suffix}i"[:15], f"wsv{suffix}t"[:15])
        if not (set(ns) & taken_ns) and not (set(veth) & taken_links) and veth[0] != veth[1]:
            return ns, veth
    raise LabError("--netns", "no free namespace names (wsnixl-*) after 100 tries", "ip netns list; delete stale ones")


def delete_pair(names: tuple[str, ...]) -> list[str]:
    """Kill what still runs in the namespaces and delete them (the veth goes with them). Returns errors."""
    errors = []
    for ns in names:
        res = run_ip("netns", "pids", ns, check=False)
        for pid in res.stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        if ns in existing_namespaces():
            res = run_ip("netns", "del", ns, check=False)
            if res.returncode != 0:
                errors.append(f"ip netns del {ns}: {res.stderr.strip()}")
    return errors


def wait_running(ns: str, dev: str, timeout: float = 10.0) -> None:
    """Wait until ``dev`` in ``ns`` is up with carrier: UCX skips an interface that is not running yet
    ("network device ... is not available"), and a fresh veth takes a moment to get there."""
    deadline = time.monotonic() + timeout
    while True:
        out = run_ip("-n", ns, "-o", "link", "show", "dev", dev, check=False).stdout
        if "LOWER_UP" in out and "state UP" in out and "NO-CARRIER" not in out:
            return
        if time.monotonic() > deadline:
            raise LabError("--netns", f"{dev} in {ns} did not come up within {timeout:.0f} s: {out.strip()}",
                           f"`ip -n {ns} link show {dev}`; `workshop lab down`, then try again")
        time.sleep(0.05)


def create_pair(addrs: tuple[str, str] = DEFAULT_ADDRS, tag: str | None = None) -> NetnsPair:
    """Create the two namespaces and the veth between them; on any failure, remove what was made and raise."""
    require_netns_support()
    names, veths = free_names(tag)
    try:
        run_ip("netns", "add", names[0])
        run_ip("netns", "add", names[1])
        run_ip("link", "add", veths[0], "netns", names[0], "type", "veth", "peer", "name", veths[1], "netns", names[1])
        for side in (0, 1):
            run_ip("-n", names[side], "addr", "add", f"{addrs[side]}/{PREFIX_LEN}", "dev", veths[side])
            run_ip("-n", names[side], "link", "set", veths[side], "up")
            run_ip("-n", names[side], "link", "set", "lo", "up")
        for side in (0, 1):
            wait_running(names[side], veths[side])
    except BaseException:
        delete_pair(names)
        raise
    return NetnsPair(names, veths, addrs)


@contextmanager
def deleted_on_exit(names: tuple[str, ...]) -> Iterator[None]:
    """Delete the namespaces ``names`` when the block ends: normally, by exception, Ctrl-C, SIGTERM or atexit."""
    done = threading.Event()

    def cleanup() -> None:
        if not done.is_set():
            done.set()
            delete_pair(names)

    atexit.register(cleanup)
    old_term = None
    if threading.current_thread() is threading.main_thread():

        def on_term(signum: int, frame: object) -> None:
            raise SystemExit(128 + signum)

        old_term = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        cleanup()
        atexit.unregister(cleanup)
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)


@contextmanager
def netns_pair(addrs: tuple[str, str] = DEFAULT_ADDRS, tag: str | None = None) -> Iterator[NetnsPair]:
    """Two namespaces with a veth between them, deleted on exit whatever happens (SIGTERM included)."""
    pair = create_pair(addrs, tag)
    with deleted_on_exit(pair.names):
        yield pair


@dataclass(frozen=True, slots=True)
class IsolatedNetns:
    """One namespace holding both agents: loopback plus one interface (a veth end) with a private address.

    UCX 1.20 (bundled with NIXL 0.9.0) cannot wire up over ``lo`` ("tcp/lo - no route to ...") and libfabric's
    tcp provider breaks with ``FI_TCP_IFACE=lo``, so on the host both pick its own interface address. Inside
    this namespace the only addressed non-loopback interface is ours: nothing reaches the host's interfaces.
    """

    name: str
    device: str
    addr: str

    def exec_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]


@contextmanager
def isolated_netns(addr: str = ISOLATED_ADDR, tag: str | None = None) -> Iterator[IsolatedNetns]:
    """A private namespace with ``lo`` and one addressed interface at ``addr``; deleted on exit whatever happens."""
    require_netns_support()
    (ns, _), (dev, _) = free_names(tag)
    ns = ns.replace("-i", "-solo")
    dev = ("wsd" + dev[3:])[:15]
    try:
        run_ip("netns", "add", ns)
        # A veth pair with both ends inside (the dummy driver is often not built): only ``dev`` has an address.
        peer = dev[:-1] + ("p" if dev[-1] != "p" else "q")
        run_ip("-n", ns, "link", "add", dev, "type", "veth", "peer", "name", peer)
        run_ip("-n", ns, "addr", "add", f"{addr}/{PREFIX_LEN}", "dev", dev)
        for link in (dev, peer, "lo"):
            run_ip("-n", ns, "link", "set", link, "up")
        wait_running(ns, dev)
    except BaseException:
        delete_pair((ns,))
        raise
    with deleted_on_exit((ns,)):
        yield IsolatedNetns(ns, dev, addr)


_STALE_NS = re.compile(r"^wsnixl-(\d+)(?:x\d+)?-[it]$")
_STALE_LINK = re.compile(r"^wsv(\d+)(?:x\d+)?[it]$")


def remove_stale() -> list[str]:
    """Delete the lab's namespaces and veths whose creating process is gone (a ``kill -9`` of ``lab nixl --netns``
    leaves them: issue 16 item 8). Names carry the creator's pid (:func:`free_names`); others are left alone.
    Returns what was removed; does nothing without ``ip`` or root."""
    if shutil.which("ip") is None or os.geteuid() != 0:
        return []
    removed: list[str] = []
    dead_ns = [ns for ns in existing_namespaces() if (m := _STALE_NS.match(ns)) and not _alive(int(m.group(1)))]
    if dead_ns:
        delete_pair(tuple(dead_ns))
        removed += [ns for ns in dead_ns if ns not in existing_namespaces()]
    for link in existing_links():
        m = _STALE_LINK.match(link)
        if m and not _alive(int(m.group(1))) and run_ip("link", "del", link, check=False).returncode == 0:
            removed.append(link)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
