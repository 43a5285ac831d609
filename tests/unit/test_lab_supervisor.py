"""The lab supervisor's bookkeeping (issue 16 items 3 and 8): declared state, run pruning, stale namespaces."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from workshop_lib.lab import netns, serving
from workshop_lib.lab.serving import Lab, prune_runs, run_tmpdir


def test_prune_keeps_the_newest_runs_and_never_the_current(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    dirs = []
    for i in range(8):
        d = runs / f"r{i}"
        d.mkdir(parents=True)
        os.utime(d, (time.time() - 100 + i, time.time() - 100 + i))
        dirs.append(d)
    os.utime(dirs[0], (time.time() + 50, time.time() + 50))  # the oldest name is the newest by time
    deleted = prune_runs(runs, keep=5, current=dirs[1])
    left = sorted(p.name for p in runs.iterdir())
    assert len(left) == 5 and "r0" in left and "r1" in left
    assert sorted(p.name for p in deleted) == ["r2", "r3", "r4"]


def test_a_half_started_lab_is_not_healthy(tmp_path: Path) -> None:
    """The state declares five processes but only etcd was recorded (lab up killed half-way): not healthy."""
    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    state = {"run_dir": str(run), "frontend_url": "http://127.0.0.1:1", "model": "m", "engine": "mocker",
             "declared": list(serving.NAMES), "ports": {}, "processes": {}}  # fmt: skip
    (tmp_path / "state.json").write_text(json.dumps(state))
    st = Lab(root=tmp_path).status()
    assert not st.healthy
    assert set(st.processes) == set(serving.NAMES)
    assert all("declared but not started" in p.detail for p in st.processes.values())


def test_tmpdir_is_inside_the_run_and_ipc_sockets_get_a_short_dir_when_needed(tmp_path: Path) -> None:
    short = tmp_path / "r"
    tmp, rpc = run_tmpdir(short)
    assert tmp == short / "tmp" and tmp.is_dir()
    assert rpc == tmp or len(str(short / "tmp")) > serving.MAX_TMPDIR_LEN
    long_run = tmp_path / ("x" * 80) / "runs" / "r"
    tmp, rpc = run_tmpdir(long_run)
    try:
        assert tmp == long_run / "tmp"  # Dynamo's leftovers stay in the run, whatever its length
        assert len(str(rpc)) + 1 + 36 <= 107 and rpc.name.startswith("workshop-lab-") and rpc.is_dir()
    finally:
        shutil.rmtree(rpc, ignore_errors=True)


def _can_netns() -> bool:
    return shutil.which("ip") is not None and os.geteuid() == 0 and subprocess.run(
        ["ip", "netns", "list"], capture_output=True).returncode == 0  # fmt: skip


@pytest.mark.skipif(not _can_netns(), reason="needs root and iproute2 (ip netns)")
def test_stale_namespace_of_a_dead_run_is_removed_and_a_live_one_kept() -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    ns_dead, ns_live = f"wsnixl-{dead.pid}-i", f"wsnixl-{os.getpid()}-t"
    try:
        for ns in (ns_dead, ns_live):
            subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
        removed = netns.remove_stale()
        names = netns.existing_namespaces()
        assert ns_dead in removed and ns_dead not in names
        assert ns_live in names  # its creator (this process) is alive
    finally:
        for ns in (ns_dead, ns_live):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def test_a_process_that_stalls_while_starting_is_restarted_once_and_named(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """An engine worker whose log stops growing for STALL_S while the lab waits on it is stopped and started again,
    once, saying so on stderr and in the state's notes; a second stall is not retried (the wait then times out with
    the log tail, as before); etcd, NATS and the frontend, quiet by nature, are never restarted."""
    from workshop_lib.errors import LabError
    from workshop_lib.lab import supervisor as sv
    from workshop_lib.lab.graphplan import LocalProcess
    from workshop_lib.lab.labstate import StateFile

    monkeypatch.setattr(sv, "STALL_S", 0.5)
    run = tmp_path / "run"
    run.mkdir()
    mark = tmp_path / "second"
    script = f"if [ -e {mark} ]; then echo started again; sleep 30; else touch {mark}; echo first; sleep 30; fi"
    step = LocalProcess("decode", None, ["/bin/sh", "-c", script], {"PATH": os.environ.get("PATH", "")}, None)
    state = {"run_dir": str(run), "processes": {}}
    sup = sv.Supervisor(StateFile(tmp_path), lambda: None)
    sup.steps, sup.quiet, sup.restarted = {}, {}, set()
    quiet_infra = LocalProcess("etcd", None, ["/bin/sh", "-c", "sleep 30"], {"PATH": os.environ.get("PATH", "")}, None)
    try:
        sup.start(quiet_infra, state)  # quiet by nature: never restarted
        sup.start(step, state)
        log = run / "decode.log"
        sup.wait("the second start", lambda: "started again" in log.read_text(), state, time.monotonic() + 20)
        err = capsys.readouterr().err
        assert "decode wrote nothing to its log for 0 s while starting" in err and "restarting it once" in err
        assert any("stalled start" in n for n in state["notes"])
        assert sup.restarted == {"decode"}
        with pytest.raises(LabError, match="timed out waiting for nothing"):  # stalls again: not retried twice
            sup.wait("nothing", lambda: False, state, time.monotonic() + 2)
        assert sup.restarted == {"decode"} and log.read_text().count("started again") == 1
    finally:
        from workshop_lib.lab import procs
        from workshop_lib.lab.labstate import records

        procs.stop(list(records(state).values()), grace=1.0, popens=sup.popens)
