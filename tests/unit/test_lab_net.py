"""The lab's two "nodes" (``lab up --netns``): names and addresses, the plan's substitutions, the launcher prefix,
and (as root) the network itself: made, counted, removed, and cleaned up when left behind."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from workshop_lib.errors import LabError
from workshop_lib.lab import labnet, procs
from workshop_lib.lab.graph import DEFAULT_PORTS, WORKER_HOST_ENV, plan_graph, render_lab_dgd

KW = dict(lab_dir=Path("/lab"), ports=DEFAULT_PORTS, python="/venv/bin/python", model_dir=Path("/lab/model/m"),
          run_dir=Path("/lab/runs/r"), lib_env={}, base_env={"PATH": "/bin"}, cores=[0, 1])  # fmt: skip


def _root() -> bool:
    return os.geteuid() == 0 and shutil.which("ip") is not None


def test_lab_network_names_fit_interface_names_and_do_not_overlap_the_pairs() -> None:
    for i in (0, 7, labnet.MAX_LABS - 1):
        net = labnet.plan_lab_net(i)
        devs = [net.bridge] + [f(r) for r in labnet.ROLES for f in (net.device, net.peer)]
        assert all(len(d) <= 15 for d in devs) and len(set(devs)) == len(devs)
        assert [net.addr("prefill"), net.addr("decode")] == [f"10.200.{16 + i}.1", f"10.200.{16 + i}.2"]
        assert not net.bridge_addr.startswith(("10.200.0.", "10.200.1."))  # the NIXL pair's subnets
    assert labnet.LabNet.from_json(labnet.plan_lab_net(3).to_json()) == labnet.plan_lab_net(3)
    with pytest.raises(LabError, match="netns index"):
        labnet.plan_lab_net(labnet.MAX_LABS)


@pytest.mark.parametrize("backend", ["UCX", "LIBFABRIC"])
def test_netns_plan_puts_each_worker_in_its_namespace_with_its_own_address(backend: str) -> None:
    net = labnet.plan_lab_net(2)
    plan = plan_graph(render_lab_dgd(backend), engine="vllm", net=net, **KW)
    assert plan.net == net
    for role in ("etcd", "nats"):
        p = plan.process(role)
        assert p.netns is None and p.host == net.bridge_addr
    assert f"http://{net.bridge_addr}:{DEFAULT_PORTS['etcd']}" in plan.process("etcd").arg("--advertise-client-urls")
    assert plan.process("nats").arg("-a") == net.bridge_addr
    assert plan.process("frontend").netns is None and plan.process("frontend").arg("--http-host") == "127.0.0.1"
    for role in ("prefill", "decode"):
        p = plan.process(role)
        assert p.netns == net.namespace(role) and p.exec_prefix == ["ip", "netns", "exec", net.namespace(role)]
        assert p.host == net.addr(role) != "127.0.0.1"
        assert {k: p.env[k] for k in WORKER_HOST_ENV} == {k: net.addr(role) for k in WORKER_HOST_ENV}
        assert p.env["ETCD_ENDPOINTS"] == f"http://{net.bridge_addr}:{DEFAULT_PORTS['etcd']}"
        assert p.env["NATS_SERVER"] == f"nats://{net.bridge_addr}:{DEFAULT_PORTS['nats']}"
        assert p.metrics_url == f"http://{net.addr(role)}:{DEFAULT_PORTS[f'{role}_system']}/metrics"
        assert p.env.get("UCX_TLS") == ("tcp" if backend == "UCX" else None)
    subs = {(s.service, s.field): s for s in plan.substitutions}
    assert subs[("PrefillWorker", "env VLLM_NIXL_SIDE_CHANNEL_HOST")].local == net.addr("prefill")
    assert subs[("(cluster)", "nodes")].local.endswith(net.namespace("decode"))
    assert f"network: {net.describe()}" in plan.table()
    lines = plan.command_lines(base_env={}).splitlines()
    assert any(ln.startswith(f"ip netns exec {net.namespace('decode')} env ") for ln in lines)
    js = plan.to_json()
    assert js["net"]["addrs"] == {"prefill": net.addr("prefill"), "decode": net.addr("decode")}
    assert js["processes"]["decode"]["netns"] == net.namespace("decode")


def test_loopback_plan_has_no_namespace_and_says_so() -> None:
    plan = plan_graph(render_lab_dgd("UCX"), engine="vllm", **KW)
    assert plan.net is None and all(p.netns is None and p.exec_prefix == [] for p in plan.processes)
    assert "network: loopback" in plan.table()
    assert "UCX_TLS" not in plan.process("decode").env


def test_netns_refuses_the_mocker_naming_the_fix() -> None:
    with pytest.raises(LabError, match=r"--netns: engine mocker moves no KV bytes.*--engine vllm --netns"):
        plan_graph(render_lab_dgd("UCX"), engine="mocker", netns=True, **KW)


def test_a_launcher_prefix_keeps_the_pid_and_the_record_recognises_it(tmp_path: Path) -> None:
    # `env` execs its command in place, as `ip netns exec NS` does.
    rec, popen = procs.spawn("s", ["sleep", "30"], dict(os.environ), tmp_path / "s.log", prefix=["env"])
    try:
        assert rec.prefix == ["env"] and rec.argv == ["sleep", "30"]
        assert procs.ProcRecord.from_json(rec.to_json()) == rec
        deadline = time.monotonic() + 10
        while procs.leader(rec) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert procs.is_running(rec) and procs.leader(rec).pid == popen.pid  # type: ignore[union-attr]
    finally:
        procs.stop([rec], grace=2.0, popens={"s": popen})
    assert not procs.is_running(rec)


@pytest.mark.skipif(not _root(), reason="needs root and iproute2 (ip netns)")
def test_lab_network_is_made_counted_and_removed() -> None:
    net = labnet.choose_lab_net()
    try:
        labnet.create_lab_net(net)
        labnet.create_lab_net(net)  # idempotent
        with pytest.raises(LabError, match="netns add"):  # a second lab starting at once must not share it
            labnet.create_lab_net(net, fresh=True)
        assert {net.namespace(r) for r in labnet.ROLES} <= labnet.existing_namespaces()
        assert net.bridge in labnet.existing_links()
        for role in labnet.ROLES:
            out = subprocess.run([*net.exec_prefix(role), "ip", "-o", "-4", "addr"], capture_output=True, text=True,
                                 check=True).stdout  # fmt: skip
            assert f"{net.addr(role)}/{net.prefix_len}" in out and out.count("inet ") == 2  # lo + the veth only
        before = labnet.counters(net)
        # One TCP exchange from the prefill namespace to the decode one must cross both veths.
        srv = subprocess.Popen([*net.exec_prefix("decode"), "python3", "-c",
                                f"import socket;s=socket.socket();s.bind(('{net.addr('decode')}',7777));s.listen();"
                                "c,_=s.accept();n=0\nwhile (b:=c.recv(65536)): n+=len(b)\nprint(n)"],
                               stdout=subprocess.PIPE, text=True)  # fmt: skip
        time.sleep(0.5)
        subprocess.run([*net.exec_prefix("prefill"), "python3", "-c",
                        f"import socket,time\nfor i in range(50):\n try: s=socket.create_connection(('{net.addr('decode')}',"
                        "7777),timeout=2); break\n except OSError: time.sleep(0.1)\ns.sendall(b'x'*200000);s.close()"],
                       check=True, timeout=30)  # fmt: skip
        assert srv.communicate(timeout=30)[0].strip() == "200000"
        after = labnet.counters(net)
        assert after["prefill"]["tx_bytes"] - before["prefill"]["tx_bytes"] >= 200000
        assert after["decode"]["rx_bytes"] - before["decode"]["rx_bytes"] >= 200000
        everything = labnet.existing_namespaces() | labnet.existing_links()
        assert labnet.remove_stale(min_age_s=0, keep=everything) == []
    finally:
        assert labnet.delete_lab_net(net) == []
    links = labnet.existing_links()
    assert net.bridge not in links and not {net.peer(r) for r in labnet.ROLES} & links


@pytest.mark.skipif(not _root(), reason="needs root and iproute2 (ip netns)")
def test_a_killed_labs_namespaces_are_removed_by_the_next_lab_command() -> None:
    net = labnet.choose_lab_net()
    labnet.create_lab_net(net)
    ours = {net.bridge, *(f(r) for r in labnet.ROLES for f in (net.namespace, net.peer))}
    others = (labnet.existing_namespaces() | labnet.existing_links()) - ours  # never touch another lab's network
    try:
        assert not ours & set(labnet.remove_stale(keep=others))  # fresh (younger than STALE_AFTER_S): left alone
        removed = labnet.remove_stale(keep=others, min_age_s=0)
        assert set(removed) >= {net.namespace("prefill"), net.namespace("decode"), net.bridge}
        assert not {net.namespace(r) for r in labnet.ROLES} & labnet.existing_namespaces()
        assert net.bridge not in labnet.existing_links()
    finally:
        labnet.delete_lab_net(net)


def test_lab_up_netns_without_root_is_refused_naming_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from workshop_lib.errors import LabUnsupported
    from workshop_lib.lab.serving import Lab

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(LabUnsupported, match=r"--netns: two network namespaces need root.*drop --netns"):
        Lab(root=tmp_path).up(engine="vllm", netns=True, progress=False)
    assert not (tmp_path / "state.json").exists()  # nothing was started or recorded


def test_a_lab_that_loses_every_race_for_a_network_does_not_record_the_winners(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`_new_net` gives up after 5 collisions; the names another lab took must not stay in this lab's state, or the
    clean-up of the failed start (`lab down`) would delete the other lab's namespaces."""
    from workshop_lib.lab import serving

    net = labnet.plan_lab_net(0)

    def collide(n: labnet.LabNet, fresh: bool = False) -> labnet.LabNet:
        raise LabError("ip netns add", "File exists", "another lab")

    monkeypatch.setattr(labnet, "choose_lab_net", lambda: net)
    monkeypatch.setattr(labnet, "create_lab_net", collide)
    monkeypatch.setattr(labnet, "existing_namespaces", lambda: {net.namespace(r) for r in labnet.ROLES})
    lab = serving.Lab(tmp_path / "lab")
    state: dict = {"processes": {}}
    with pytest.raises(LabError, match="File exists"):
        lab._new_net(state)
    assert "net" not in state and "net" not in (lab._load() or {})


def test_a_veth_the_kernel_removed_meanwhile_is_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Deleting a namespace removes its veth asynchronously: a link listed a moment ago and gone when `ip link del`
    runs is what was wanted (this raced in a full test run); a link that is still there after a failed delete is an
    error naming it."""
    net = labnet.plan_lab_net(7)
    gone = net.peer(labnet.ROLES[0])
    present = {gone, net.bridge}
    monkeypatch.setattr(labnet, "delete_pair", lambda names: [])
    monkeypatch.setattr(labnet, "existing_links", lambda: set(present))

    def fake_ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        dev = args[-1]
        present.discard(gone)  # the kernel finished removing the veth just before this delete
        if dev == gone:
            return subprocess.CompletedProcess(args, 1, "", f'Cannot find device "{dev}"')
        return subprocess.CompletedProcess(args, 1, "", "RTNETLINK answers: Operation not permitted")

    monkeypatch.setattr(labnet, "run_ip", fake_ip)
    assert labnet.delete_lab_net(net) == [f"ip link del {net.bridge}: RTNETLINK answers: Operation not permitted"]
