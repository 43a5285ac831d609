"""The serving lab's two "nodes": the prefill and the decode worker each in its own network namespace (root only).

Layout (one /24 per lab, ``10.200.<16+i>.0/24``, so two labs on one machine do not collide)::

    root namespace: etcd, NATS (and the frontend's outgoing calls) on the bridge wslabbr<i>, 10.200.<16+i>.254
        |-- veth wsl<i>pr ======== wsl<i>p  in namespace wslab<i>-p: the prefill worker, 10.200.<16+i>.1
        '-- veth wsl<i>dr ======== wsl<i>d  in namespace wslab<i>-d: the decode worker,  10.200.<16+i>.2

Each worker namespace has exactly one interface besides ``lo``, so every byte the workers exchange (the NIXL side
channel and the UCX/LIBFABRIC transfer of the KV cache) crosses two veths and the bridge, as it would cross the
network between two nodes; etcd and NATS in the root namespace are reachable from both at the bridge address, with
no routing or forwarding (one L2 segment). Nothing is routed outside: no default route, no NAT.

Example:
    >>> net = plan_lab_net(0)
    >>> net.addr("prefill"), net.addr("decode"), net.bridge_addr, net.namespace("decode")
    ('10.200.16.1', '10.200.16.2', '10.200.16.254', 'wslab0-d')
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from workshop_lib.errors import LabError
from workshop_lib.lab.netns import (
    PREFIX_LEN,
    delete_pair,
    existing_links,
    existing_namespaces,
    require_netns_support,
    run_ip,
    wait_running,
)

ROLES = ("prefill", "decode")
SUBNET_BASE = 16  # 10.200.16.0/24 for the first lab; the NIXL pair uses 10.200.0.0/24 and 10.200.1.0/24
MAX_LABS = 64
# A lab namespace with no process in it is stale only after this long (a lab being created has none for a moment).
STALE_AFTER_S = 60.0
_LAB_NS = re.compile(r"^wslab(\d+)-[pd]$")
_LAB_BRIDGE = re.compile(r"^wslabbr(\d+)$")
_LAB_PEER = re.compile(r"^wsl(\d+)([pd])r$")
_NETNS_DIR = Path("/run/netns")


@dataclass(frozen=True, slots=True)
class LabNet:
    """Names and addresses of one lab's network (see the module docstring)."""

    index: int
    bridge: str
    bridge_addr: str
    prefix_len: int = PREFIX_LEN

    def namespace(self, role: str) -> str:
        return f"wslab{self.index}-{_short(role)}"

    def device(self, role: str) -> str:
        """The veth end inside the role's namespace (the workers' only interface)."""
        return f"wsl{self.index}{_short(role)}"

    def peer(self, role: str) -> str:
        """The veth end in the root namespace, a port of the bridge."""
        return f"wsl{self.index}{_short(role)}r"

    def addr(self, role: str) -> str:
        net = ipaddress.ip_network(f"{self.bridge_addr}/{self.prefix_len}", strict=False)
        return str(net.network_address + 1 + ROLES.index(role))

    def exec_prefix(self, role: str) -> list[str]:
        """The command prefix that runs a program inside the role's namespace."""
        return ["ip", "netns", "exec", self.namespace(role)]

    def describe(self) -> str:
        return (f"bridge {self.bridge} {self.bridge_addr}/{self.prefix_len} (etcd, NATS); "
                + "; ".join(f"{r} in {self.namespace(r)} at {self.addr(r)} (veth {self.device(r)})" for r in ROLES))

    def to_json(self) -> dict:
        d = asdict(self)
        d["namespaces"] = {r: self.namespace(r) for r in ROLES}
        d["devices"] = {r: self.device(r) for r in ROLES}
        d["addrs"] = {r: self.addr(r) for r in ROLES}
        return d

    @classmethod
    def from_json(cls, d: dict) -> LabNet:
        return cls(int(d["index"]), str(d["bridge"]), str(d["bridge_addr"]), int(d.get("prefix_len", PREFIX_LEN)))


def _short(role: str) -> str:
    if role not in ROLES:
        raise LabError("netns role", f"{role!r} is not a worker role", f"use one of {', '.join(ROLES)}")
    return role[0]


def plan_lab_net(index: int = 0) -> LabNet:
    """The names and addresses of lab network ``index`` (pure)."""
    if not 0 <= index < MAX_LABS:
        raise LabError("netns index", f"{index} is outside 0..{MAX_LABS - 1}", "delete stale wslab* namespaces")
    return LabNet(index, f"wslabbr{index}", f"10.200.{SUBNET_BASE + index}.254")


def _root_addrs() -> set[str]:
    out = run_ip("-j", "addr", "show", check=False).stdout or "[]"
    try:
        return {a.get("local", "") for link in json.loads(out) for a in link.get("addr_info", [])}
    except ValueError:
        return set()


def host_address() -> str | None:
    """The root namespace's address on its default route (``ip route get``: a lookup, no packet is sent), None
    without one. Dynamo 0.9.0's TCP response-stream server (in the frontend) advertises this address
    (``local_ip_address``, no setting), so each worker namespace gets a host route to it through the bridge."""
    res = run_ip("-j", "route", "get", "1.1.1.1", check=False)
    try:
        src = json.loads(res.stdout or "[]")[0].get("prefsrc")
    except (ValueError, IndexError, AttributeError):
        return None
    return str(src) if src else None


def choose_lab_net() -> LabNet:
    """The first lab network whose names and subnet nobody uses on this machine."""
    namespaces, links, addrs = existing_namespaces(), existing_links(), _root_addrs()
    for i in range(MAX_LABS):
        net = plan_lab_net(i)
        subnet = ipaddress.ip_network(f"{net.bridge_addr}/{net.prefix_len}", strict=False)
        names = {net.namespace(r) for r in ROLES}
        devs = {net.bridge} | {net.peer(r) for r in ROLES}
        if names & namespaces or devs & links or any(a and ipaddress.ip_address(a) in subnet for a in addrs
                                                       if ":" not in a):
            continue
        return net
    raise LabError("--netns", f"all {MAX_LABS} lab networks (wslab*) are in use", "ip netns list; `workshop lab down`")


def create_lab_net(net: LabNet, fresh: bool = False) -> LabNet:
    """Make ``net`` exist (idempotent: pieces already there are kept, missing ones added); on failure remove what
    this call made and raise. ``fresh``: the namespaces must be new (``ip netns add`` fails on an existing one, so
    two labs starting at once never share a network: the loser raises and picks another)."""
    require_netns_support()
    made_bridge = False
    made_ns: list[str] = []
    try:
        for role in ROLES:  # namespaces first: a bridge without them is what remove_stale deletes
            if fresh or net.namespace(role) not in existing_namespaces():
                run_ip("netns", "add", net.namespace(role))
                made_ns.append(net.namespace(role))
        if net.bridge not in existing_links():
            run_ip("link", "add", net.bridge, "type", "bridge")
            made_bridge = True
            run_ip("addr", "add", f"{net.bridge_addr}/{net.prefix_len}", "dev", net.bridge)
        run_ip("link", "set", net.bridge, "up")
        for role in ROLES:
            ns, dev, peer = net.namespace(role), net.device(role), net.peer(role)
            if dev not in _links_in(ns):
                if peer in existing_links():
                    run_ip("link", "del", peer, check=False)
                run_ip("link", "add", peer, "type", "veth", "peer", "name", dev, "netns", ns)
                run_ip("-n", ns, "addr", "add", f"{net.addr(role)}/{net.prefix_len}", "dev", dev)
            run_ip("link", "set", peer, "master", net.bridge)
            run_ip("link", "set", peer, "up")
            run_ip("-n", ns, "link", "set", dev, "up")
            run_ip("-n", ns, "link", "set", "lo", "up")
        for role in ROLES:
            wait_running(net.namespace(role), net.device(role))
        host = host_address()
        if host and ipaddress.ip_address(host) not in ipaddress.ip_network(f"{net.bridge_addr}/{net.prefix_len}",
                                                                            strict=False):
            for role in ROLES:  # only the host's own address: nothing beyond the root namespace is reachable
                run_ip("-n", net.namespace(role), "route", "replace", f"{host}/32", "via", net.bridge_addr)
    except BaseException:
        delete_pair(tuple(made_ns))
        if made_bridge:
            run_ip("link", "del", net.bridge, check=False)
        raise
    return net


def _links_in(ns: str) -> set[str]:
    res = run_ip("-n", ns, "-o", "link", "show", check=False)
    return {p[1].strip().split("@", 1)[0] for line in res.stdout.splitlines() if len(p := line.split(":", 2)) >= 2}


def delete_lab_net(net: LabNet) -> list[str]:
    """Kill what still runs in the two namespaces, delete them (their veths go with them) and the bridge.
    Returns errors (empty when all went)."""
    errors = delete_pair(tuple(net.namespace(r) for r in ROLES))
    # A deleted namespace can linger in the kernel (and its veth with it) while something still references it: the
    # root-side ends are deleted explicitly, which removes both ends.
    links = existing_links()
    for dev in [net.peer(r) for r in ROLES] + [net.bridge]:
        if dev in links:
            res = run_ip("link", "del", dev, check=False)
            if res.returncode != 0 and dev in existing_links():  # gone meanwhile (the kernel removes a veth
                errors.append(f"ip link del {dev}: {res.stderr.strip()}")  # with its namespace, asynchronously): fine
    return errors


def link_bytes(net: LabNet, role: str) -> dict[str, int]:
    """The byte and packet counters of the role's veth, read inside its namespace (``ip -s link``)."""
    res = run_ip("-n", net.namespace(role), "-j", "-s", "link", "show", "dev", net.device(role))
    try:
        stats = json.loads(res.stdout)[0]["stats64"]
    except (ValueError, IndexError, KeyError) as exc:
        raise LabError(f"ip -s link {net.device(role)}", f"unreadable counters ({exc})", "check iproute2") from exc
    return {"rx_bytes": int(stats["rx"]["bytes"]), "tx_bytes": int(stats["tx"]["bytes"]),
            "rx_packets": int(stats["rx"]["packets"]), "tx_packets": int(stats["tx"]["packets"])}


def counters(net: LabNet) -> dict[str, dict[str, int]]:
    """Every worker's veth counters: ``{role: {rx_bytes, tx_bytes, rx_packets, tx_packets}}``."""
    return {role: link_bytes(net, role) for role in ROLES}


def remove_stale(keep: set[str] | frozenset[str] = frozenset(), min_age_s: float = STALE_AFTER_S) -> list[str]:
    """Delete lab namespaces (``wslab<i>-p|d``) with no process in them for at least ``min_age_s`` seconds, unless
    named in ``keep``, then lab bridges left with neither namespace. A lab whose worker was killed re-creates its
    namespace at the next ``lab up``. Does nothing without root and ``ip``. Returns what was removed."""
    import shutil

    if shutil.which("ip") is None or os.geteuid() != 0:
        return []
    removed: list[str] = []
    now = time.time()
    for ns in sorted(existing_namespaces()):
        if not _LAB_NS.match(ns) or ns in keep:
            continue
        try:
            age = now - (_NETNS_DIR / ns).stat().st_mtime
        except OSError:
            age = min_age_s
        if age >= min_age_s and not run_ip("netns", "pids", ns, check=False).stdout.split():
            if not delete_pair((ns,)):
                removed.append(ns)
    namespaces = existing_namespaces()
    for link in sorted(existing_links()):
        m = _LAB_PEER.match(link)
        if m and link not in keep and f"wslab{m.group(1)}-{m.group(2)}" not in namespaces:
            if run_ip("link", "del", link, check=False).returncode == 0:
                removed.append(link)
    for link in sorted(existing_links()):
        m = _LAB_BRIDGE.match(link)
        if not m or link in keep:
            continue
        net = plan_lab_net(int(m.group(1)))
        if not any(net.namespace(r) in namespaces for r in ROLES):
            if run_ip("link", "del", link, check=False).returncode == 0:
                removed.append(link)
    return removed
