"""Pure parts of the serving lab: command lines, environment, SSE parsing, status formatting (no processes)."""

from __future__ import annotations

import socket
from pathlib import Path

from workshop_lib.bench.client import parse_sse_line, request_body
from workshop_lib.clicmds.lab import format_status
from workshop_lib.lab import procs
from workshop_lib.lab.serving import LabStatus, ProcStatus
from workshop_lib.lab.stack import DEFAULT_PORTS, NAMES, lab_env, plan

BINS = {"etcd": "/usr/bin/etcd", "nats-server": "/v/bin/nats-server", "python": "/v/bin/python"}


def test_plan_follows_the_verified_start_order_and_flags() -> None:
    steps = plan(BINS, DEFAULT_PORTS, Path("/lab/model/m"), Path("/lab/runs/r"), 5.0)
    assert [s[0] for s in steps] == list(NAMES)
    argv = {name: a for name, a, _, _ in steps}
    assert argv["nats"] == [
        "/v/bin/nats-server",
        "-js",
        "-a",
        "127.0.0.1",
        "-p",
        "4222",
        "-sd",
        "/lab/runs/r/nats-data",
    ]
    assert argv["frontend"] == [
        "/v/bin/python",
        "-m",
        "dynamo.frontend",
        "--http-host",
        "127.0.0.1",
        "--http-port",
        "8000",
    ]
    assert argv["prefill"][-3:] == ["--is-prefill-worker", "--bootstrap-ports", "50100"]
    assert argv["decode"][-1] == "--is-decode-worker" and "--speedup-ratio" in argv["decode"]
    assert all("--model-name" not in a for a in argv.values())  # the model id is the directory path
    assert "http://127.0.0.1:2379" in argv["etcd"] and "http://127.0.0.1:2380" in argv["etcd"]
    health = {name: port for name, _, _, port in steps}
    assert health == {"etcd": 2379, "nats": 4222, "frontend": 8000, "prefill": 8081, "decode": 8082}
    extra = {name: e for name, _, e, _ in steps}
    assert extra["prefill"] == {"DYN_SYSTEM_PORT": "8081"} and extra["decode"] == {"DYN_SYSTEM_PORT": "8082"}


def test_env_is_loopback_offline_and_drops_tokens() -> None:
    env = lab_env({**DEFAULT_PORTS, "etcd": 12379, "nats": 14222}, base={"HF_TOKEN": "secret", "PATH": "/bin"})
    assert env["ETCD_ENDPOINTS"] == "http://127.0.0.1:12379" and env["NATS_SERVER"] == "nats://127.0.0.1:14222"
    assert env["DYN_TCP_RPC_HOST"] == env["DYN_SYSTEM_HOST"] == "127.0.0.1"
    assert env["HF_HUB_OFFLINE"] == env["TRANSFORMERS_OFFLINE"] == "1"
    assert env["DYN_LOG"] == "info,dynamo_llm::mocker=debug" and env["NO_COLOR"] == "1"
    assert "HF_TOKEN" not in env and env["PATH"] == "/bin"


def test_sse_parsing_and_request_body() -> None:
    assert parse_sse_line('data: {"choices": []}') == {"choices": []}
    assert parse_sse_line("data: [DONE]") == "[DONE]"
    assert parse_sse_line(": keep-alive") is None and parse_sse_line("data: {broken") is None
    body = request_body("/m", "hi", stream=False, max_tokens=3)
    assert body == {"model": "/m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}


def test_format_status_shows_the_dead_process_log() -> None:
    st = LabStatus(
        True,
        Path("/lab/runs/r"),
        "http://127.0.0.1:8000",
        "/m",
        {
            "frontend": ProcStatus(
                "frontend", 10, 8000, Path("/lab/runs/r/frontend.log"), True, "/v1/models lists", 80.0
            ),
            "decode": ProcStatus("decode", 11, 8082, Path("/lab/runs/r/decode.log"), False, "not running\nboom", None),
        },
    )
    out = format_status(st)
    assert "lab: UNHEALTHY" in out and "RSS 80.0 MB" in out
    assert "log: /lab/runs/r/decode.log" in out and "| boom" in out
    assert st.to_json()["processes"]["decode"]["log"] == "/lab/runs/r/decode.log"


def test_tail_reads_the_last_lines(tmp_path: Path) -> None:
    f = tmp_path / "x.log"
    f.write_text("".join(f"line {i}\n" for i in range(100)))
    assert procs.tail(f, 2) == "line 98\nline 99"
    assert procs.tail(tmp_path / "missing.log") == ""


def test_pick_ports_avoids_a_held_port_and_the_ephemeral_range() -> None:
    low = next(p for p in range(20000, 32000) if procs.port_free(p))
    with socket.socket() as s:
        s.bind(("127.0.0.1", low))
        s.listen(1)
        got = procs.pick_ports({"a": low, "b": low}, max_port={"b": 32767})
    assert low < got["a"] and low < got["b"] <= 32767 and got["a"] != got["b"]
    assert got["a"] not in procs.ephemeral_range() and got["b"] not in procs.ephemeral_range()


def test_spawn_is_recognised_at_once_and_stop_touches_only_its_group(tmp_path: Path) -> None:
    recs, popens = [], {}
    for i in range(5):  # right after fork the command line can read empty: still ours
        rec, p = procs.spawn(f"s{i}", ["sleep", "30"], {"PATH": "/usr/bin:/bin"}, tmp_path / f"s{i}.log")
        assert procs.is_running(rec)
        recs.append(rec)
        popens[rec.name] = p
    other, other_p = procs.spawn("other", ["sleep", "30"], {"PATH": "/usr/bin:/bin"}, tmp_path / "o.log")
    try:
        # A record whose pid was recycled (different start ticks) is not the lab's: nothing is signalled.
        stale = procs.ProcRecord(
            "stale", other.pid, other.pgid, 0.0, other.argv, other.log, None, other.start_ticks + 1
        )
        assert not procs.is_running(stale) and procs.stop([stale], grace=0.5) == []
        assert procs.is_running(other)
        assert procs.stop(recs, grace=2.0, popens=popens) == [r.name for r in recs]
        assert not any(procs.is_running(r) for r in recs) and procs.is_running(other)
    finally:
        procs.stop([other], grace=1.0, popens={"other": other_p})
