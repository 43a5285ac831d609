"""aiperf interop: the command builder, and reading real aiperf 0.13.0 output produced against the kit's local lab.

``data/aiperf/dynamo-chat-c2``: aiperf 0.13.0 against the local lab's Dynamo 0.9.0 frontend (mocker prefill/decode),
chat, streaming, concurrency 2, 12 requests, ISL 64 / OSL 16. ``data/aiperf/testserver-fault500``: aiperf against the
kit's test server answering HTTP 500 (all requests failed, so aiperf wrote only the per-request file).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from workshop_lib.bench import aiperf
from workshop_lib.bench.stats import METRICS, STAT_KEYS
from workshop_lib.cli import main
from workshop_lib.errors import ConfigError

DATA = Path(__file__).parent / "data" / "aiperf"
RUN = DATA / "dynamo-chat-c2"


def test_command_matches_documented_flags():
    cmd = aiperf.aiperf_command("http://fe:8000", "Qwen/Qwen3-0.6B", 10, 200, 512, 128, "completions", "/out/c10",
                                tokenizer="Qwen/Qwen3-0.6B", warmup=5)
    assert cmd[:2] == ["aiperf", "profile"]
    flags = dict(zip(cmd[2::2], cmd[3::2], strict=False))
    assert cmd.count("--streaming") == 1
    args = " ".join(cmd)
    for expected in ("--model Qwen/Qwen3-0.6B", "--url http://fe:8000", "--endpoint-type completions",
                     "--concurrency 10", "--request-count 200", "--isl 512", "--osl 128", "--artifact-dir /out/c10",
                     "--tokenizer Qwen/Qwen3-0.6B", "--warmup-request-count 5", "--use-server-token-count"):
        assert expected in args
    assert flags["--model"] == "Qwen/Qwen3-0.6B"
    with pytest.raises(ConfigError):
        aiperf.aiperf_command("http://fe:8000", "m", 0, 10, 512, 128)
    with pytest.raises(ConfigError):
        aiperf.aiperf_command("http://fe:8000", "m", 1, 10, 512, 128, endpoint="embeddings")


def test_env_drops_offline_variables():
    env = aiperf.aiperf_env({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PATH": "/bin"})
    assert env == {"PATH": "/bin"}


def test_read_summary_json_real_lab_run():
    row = aiperf.read_summary(RUN)
    assert (row["concurrency"], row["requests"], row["errors"]) == (2, 12, 0)
    assert row["ttft_p50_ms"] == pytest.approx(47.209, abs=1e-3)
    assert row["ttft_mean_ms"] == pytest.approx(53.603, abs=1e-3)
    assert row["itl_p50_ms"] == pytest.approx(3.482, abs=1e-3)
    assert row["e2e_p99_ms"] == pytest.approx(184.432, abs=1e-3)
    assert row["output_tokens_per_s"] == pytest.approx(217.49, abs=0.01)
    assert row["requests_per_s"] == pytest.approx(12.857, abs=1e-3)
    # same columns as SweepResult.to_frame()
    for metric in METRICS:
        if metric != "gap":
            assert all(f"{metric}_{k}_ms" in row for k in STAT_KEYS)


def test_csv_agrees_with_json():
    j = aiperf.read_summary(RUN / aiperf.SUMMARY_JSON)
    c = aiperf.read_summary(RUN / aiperf.SUMMARY_CSV)
    assert c["requests"] == 12
    for col in ("ttft_p50_ms", "ttft_p90_ms", "itl_mean_ms", "e2e_p50_ms", "output_tokens_per_s"):
        assert c[col] == pytest.approx(j[col], abs=0.01), col


def test_per_request_rows_recompute_the_summary():
    df = aiperf.read_requests(RUN)
    assert len(df) == 12 and df["error"].isna().all()
    assert (df["server_output_tokens"] == 16).all()  # the mocker generated 16 ...
    assert df["output_tokens"].between(16, 18).all() and df["output_tokens"].max() > 16  # ... aiperf re-tokenized
    s = aiperf.summary_from_requests(df, concurrency=2)
    j = aiperf.read_summary(RUN)
    assert s["ttft_p50_ms"] == pytest.approx(j["ttft_p50_ms"], abs=1e-3)
    assert s["ttft_p99_ms"] == pytest.approx(j["ttft_p99_ms"], abs=1e-3)


def test_failed_requests_carry_the_error():
    df = aiperf.read_requests(DATA / "testserver-fault500")
    assert len(df) == 6 and df["error"].str.startswith("500 Internal Server Error").all()
    assert math.isnan(df["ttft_ms"].iloc[0])
    with pytest.raises(ConfigError, match="no such"):
        aiperf.read_summary(DATA / "testserver-fault500" / "missing")
    with pytest.raises(ConfigError):  # no summary files: all requests failed
        aiperf.read_summary(DATA / "testserver-fault500")


def test_bad_files_raise_config_error(tmp_path):
    (tmp_path / aiperf.SUMMARY_JSON).write_text("{}")
    with pytest.raises(ConfigError, match="time_to_first_token"):
        aiperf.read_summary(tmp_path)
    (tmp_path / aiperf.REQUESTS_JSONL).write_text('{"metrics": {}}\nnot json\n')
    with pytest.raises(ConfigError, match=":2"):
        aiperf.read_requests(tmp_path)


def test_cli_reads_and_prints(capsys):
    assert main(["bench", "aiperf", str(RUN)]) == 0
    out = capsys.readouterr().out
    assert "ttft_p50_ms" in out and "47.209" in out
    assert main(["bench", "aiperf-cmd", "--url", "http://fe:8000", "--model", "m", "--concurrency", "1,5"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and "--concurrency 5" in lines[1] and "--artifact-dir aiperf-out/c5" in lines[1]
