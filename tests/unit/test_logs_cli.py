"""``workshop diagnose`` and ``workshop nixlbench`` through the real CLI entry point."""

from __future__ import annotations

import json

from workshop_lib.cli import main
from workshop_lib.logs import CONTRACT_KEYS


def test_diagnose_json_and_exit_codes(fixtures_dir, capsys) -> None:
    assert main(["diagnose", str(fixtures_dir / "logs/17-k8s-oomkilled-worker-64gi.log"), "--json"]) == 3
    out = json.loads(capsys.readouterr().out)
    assert tuple(out)[:len(CONTRACT_KEYS)] == CONTRACT_KEYS and out["verdict"] == "error"
    assert {"versions", "notes", "evidence"} <= set(out)
    assert main(["diagnose", str(fixtures_dir / "logs/20-doc-expected-efa-handshake-and-backend-lines.log")]) == 0
    text = capsys.readouterr().out
    assert "verdict: efa-rdma" in text and "evidence:" in text and "HANDSHAKE received" in text


def test_diagnose_tcp_fallback_exit_code(tmp_path, capsys) -> None:
    p = tmp_path / "lab.log"
    p.write_text("Discovered 1 socket devices (TCP fallback)\n")
    assert main(["diagnose", str(p)]) == 4
    assert "verdict: tcp-fallback" in capsys.readouterr().out


def test_diagnose_several_files(fixtures_dir, capsys) -> None:
    files = [str(fixtures_dir / "logs" / n) for n in ("20-doc-expected-efa-handshake-and-backend-lines.log",
                                                     "02-nixl-libfabric-self-connection-rails-serialized.log")]
    assert main(["diagnose", *files, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["files"]) == set(files) and out["combined"]["handshakes"] == 1
    assert {c["check"]: c["status"] for c in out["checks"]}["EFA handshakes on each side"] == "FAIL"
    main(["diagnose", *files])
    assert "checks across files" in capsys.readouterr().out


def test_missing_file_is_one_line(tmp_path, capsys) -> None:
    assert main(["diagnose", str(tmp_path / "nope.log")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope.log" in err and "Traceback" not in err


def test_nixlbench_cli(fixtures_dir, capsys) -> None:
    f = str(fixtures_dir / "nixlbench/nixlbench-libfabric-efa-pod-a.log")
    assert main(["nixlbench", f, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["config"]["backend"] == "LIBFABRIC" and len(out["rows"]) == 15
    assert main(["nixlbench", f]) == 0
    assert "46.948036" in capsys.readouterr().out
