"""Issue 18 (records): every figure in README's measured table and in benchmarks/*/RESULTS.md is generated from a
recorded run; the table quotes every run or the median, never the best; a missing record says so."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

from benchmarks import measured

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "benchmarks"


def _bench(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", BENCH / name / "run.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_readme_table_is_generated_from_the_records() -> None:
    text = (REPO / "README.md").read_text()
    assert measured.splice(text, measured.table()) == text, "run `python -m benchmarks.measured`"
    assert measured.main(["--check"]) == 0


def test_check_fails_on_a_typed_number(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    good = measured.splice(f"# x\n\n{measured.BEGIN}\n{measured.END}\n", measured.table())
    readme.write_text(good.replace(measured.NO_RECORD, "505 s, 411 passed", 1) if measured.NO_RECORD in good
                      else good.replace("|", "| 1 |", 3))
    assert measured.main(["--check", "--readme", str(readme)]) == 1
    assert measured.main(["--readme", str(readme)]) == 0 and readme.read_text() == good
    readme.write_text("no markers\n")
    assert measured.main(["--check", "--readme", str(readme)]) == 1


def test_missing_records_say_no_record_yet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(measured, "HERE", tmp_path)
    monkeypatch.setattr(measured, "QUICKSTART", tmp_path / "quickstart" / "results.json")
    for row in measured.ROWS:
        assert row()[1] == measured.NO_RECORD, row.__name__


def _quickstart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rec: dict) -> None:
    path = tmp_path / "quickstart" / "results.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rec))
    monkeypatch.setattr(measured, "QUICKSTART", path)


def test_quickstart_rows_quote_all_runs_or_the_median(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _quickstart(tmp_path, monkeypatch, {
        "make_test": {"runs": [{"wall_s": 505, "passed": 411, "skipped": 7, "failed": 0, "cpus": 2},
                               {"wall_s": 610, "passed": 411, "skipped": 7, "failed": 0, "cpus": 2}]},
        "lab_up": {"runs": [{"engine": "mocker", "ready_s": s, "rss_mb": m}
                            for s, m in ((3.1, 400), (9.9, 423), (4.0, 382), (5.0, 390), (3.5, 401))]}})
    assert measured.make_test_row()[1] == "505 / 610 s (2 runs); 411 passed, 7 skipped, 0 failed (2 cores)"
    lab = measured.lab_up_row()[1]
    assert lab == ("mocker: median 4 s over 5 runs (range 3.1-9.9), peak median 400 MB over 5 runs (range 382-423) "
                   "RSS")
    _quickstart(tmp_path, monkeypatch, {"something_else": 1})
    assert measured.make_test_row()[1] == measured.NO_RECORD


def test_quickstart_benchmark_shape(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The shape benchmarks/quickstart/run.py writes: one run per command, seconds and exit code."""
    _quickstart(tmp_path, monkeypatch, {
        "commit": "abc", "when": "2026-12-07T12:00:00Z", "cpus": 2, "ram_bytes": 1,
        "commands": {"test": {"command": "make test", "exit_code": 0, "seconds": 812.4,
                              "peak_rss_tree_bytes": 900 * 2**20},
                     "run": {"command": "make run", "exit_code": 2, "seconds": 1200.0, "peak_rss_tree_bytes": 0}}})
    assert measured.make_test_row()[1] == "812 s, peak 900 MB RSS; exit code 0 (2 cores)"
    assert measured.make_run_row()[1] == "1200 s; exit code 2 (FAILED) (2 cores)"
    assert measured.lab_up_row()[1] == measured.NO_RECORD
    assert measured._date(json.loads(measured.QUICKSTART.read_text())) == "2026-12-07"


def test_vram_row_quotes_both_runs_not_the_best() -> None:
    row = measured.nixl_vram_row()[1]
    if row == measured.NO_RECORD:
        pytest.skip("benchmarks/nixl_vram/results.json not recorded")
    runs = [json.loads((BENCH / "nixl_vram" / f).read_text()) for f in ("results.json", "results-repeat.json")]
    at64 = [measured._vram_at(r, 64 * measured.MiB) for r in runs]
    assert all(at64)
    assert f"{measured._g(at64[0]['gbps'])} / {measured._g(at64[1]['gbps'])} GB/s" in row


def test_median_or_all() -> None:
    assert measured._median_or_all([2.0, 9.0], "s") == "2 / 9 s (2 runs)"
    assert measured._median_or_all([1.0, 2.0, 3.0, 100.0], "s") == "median 2.5 s over 4 runs (range 1-100)"


def test_benchmark_pages_are_generated_from_their_records() -> None:
    cf = _bench("client_fidelity")
    res = json.loads((BENCH / "client_fidelity" / "results.json").read_text())
    assert cf._notes(res["runs"]) == res["notes"]
    assert cf._markdown(res) == (BENCH / "client_fidelity" / "RESULTS.md").read_text()
    ai = _bench("aiperf_compare")
    assert ai.report() == (BENCH / "aiperf_compare" / "RESULTS.md").read_text()
    vram = BENCH / "nixl_vram"
    from workshop_lib.bench.vram_report import build_report

    md = build_report(json.loads((vram / "results.json").read_text()), plot_path=None,
                      refcopy=json.loads((vram / "refcopy.json").read_text()),
                      repeat=json.loads((vram / "results-repeat.json").read_text()))
    assert md == (vram / "RESULTS.md").read_text()


def _ai_run(tool: str, conc: int, ttft: float, itl: float, tps: float, fe: float, cpu: float) -> dict:
    return {"tool": tool, "concurrency": conc, "requests": 10, "errors": 0, "ttft_p50_ms": ttft, "ttft_p99_ms": ttft,
            "itl_p50_ms": itl, "output_tokens_per_s": tps, "frontend_ttft_mean_ms": fe, "cpu_s": 1.0,
            "cpu_s_per_1000": cpu}


def test_aiperf_findings_follow_the_measurement() -> None:
    ai = _bench("aiperf_compare")
    runs = [_ai_run("workshop bench serve", 1, 12.0, 3.0, 500.0, 10.0, 100.0),
            _ai_run("aiperf 0.13.0", 1, 30.0, 0.0, 250.0, 10.0, 200.0)]
    text = "\n".join(ai._notes(runs))
    assert "aiperf used 2.0x the kit client's" in text
    assert "aiperf drove 50% of the kit's throughput" in text and "its TTFT p50 was 3.0x" in text
    assert "(+2.00 ms)" in text and "ITL p50 0 at concurrency 1" in text
    for fixed in ("3-5x", "45-48 ms", "4.3-4.7", "48.6 ms", "9.4 ms"):  # the old typed figures
        assert fixed not in text
    cheaper = [_ai_run("workshop bench serve", 1, 12.0, 3.0, 500.0, 10.0, 300.0),
               _ai_run("aiperf 0.13.0", 1, 30.0, 2.0, 250.0, 10.0, 150.0)]
    text = "\n".join(ai._notes(cheaper))
    assert "the kit's client used 2.0x more CPU per request" in text and "ITL p50 0" not in text


def _vram_notes() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_vram_notes", BENCH / "nixl_vram" / "notes.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_vram_notes_are_generated_from_the_records() -> None:
    notes = _vram_notes()
    assert notes.main(["--check"]) == 0, "run `python benchmarks/nixl_vram/notes.py`"


def test_vram_notes_decide_from_the_numbers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    notes = _vram_notes()

    def run(gbps: float, pct: float, mode: str = "one-at-a-time") -> dict:
        return {"backend": "UCX", "op": "READ", "mode": mode,
                "rows": [{"block_size": s, "batch": 1, "gbps": gbps, "pct_of_peer_copy": pct, "verified": True,
                          "transport": "cuda_ipc"} for s in notes.BIG]}

    rec = {"meta": {"nvidia_smi": ["NVIDIA X, 1.0"] * 2, "nixl": "0.9.0"},
           "runs": [run(300.0, 90.0), run(350.0, 95.0, "inflight-4")]}
    (tmp_path / "results.json").write_text(json.dumps(rec))
    monkeypatch.setattr(notes, "HERE", tmp_path)
    text = notes.notes()
    assert "300 GB/s at 64 MiB (90% of the torch peer copy)" in text and "is **met**" in text
    assert "four requests in flight helped READ (350 GB/s" in text
    rec["runs"][0] = run(300.0, 84.9)
    (tmp_path / "results.json").write_text(json.dumps(rec))
    assert "is **not met**" in notes.notes()


def test_quickstart_row_reads_time_download_disk_and_exit(tmp_path, monkeypatch) -> None:
    import json

    import benchmarks.measured as measured

    rec = {"when": "2026-12-07T13:22:00Z", "cpus": 2, "commands": {"test": {
        "exit_code": 1, "seconds": 1800.4, "downloaded_bytes": 5 << 30, "peak_rss_tree_bytes": 900 << 20,
        "disk_bytes": {"total": 12 << 30, "venv": 9 << 30, "lab": 3 << 30}}}}
    (tmp_path / "q.json").write_text(json.dumps(rec))
    monkeypatch.setattr(measured, "QUICKSTART", tmp_path / "q.json")
    what, text, _ = measured.make_test_row()
    assert what.startswith("`make test`")
    assert "1800 s" in text and "900 MB RSS" in text and "5 GiB downloaded" in text
    assert "disk 12.0 GiB (of which .venv 9.0 GiB)" in text and "exit code 1 (FAILED)" in text
    assert measured.make_run_row()[1] == measured.NO_RECORD  # no run recorded: said so, nothing typed


def test_logs_vs_grep_record_is_generated_and_judged_on_the_pod_log(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    lg = _bench("logs_vs_grep")
    res = json.loads((BENCH / "logs_vs_grep" / "results.json").read_text())
    assert lg.render_md(res) == (BENCH / "logs_vs_grep" / "RESULTS.md").read_text()
    assert lg.render_notes(res) == (BENCH / "logs_vs_grep" / "NOTES.md").read_text()
    assert res["goal"]["log"] == "pod"
    goal, stress = lg.verdicts(res)
    assert goal == (res["pod_log"]["ratio_vs_grep"] <= 3 and res["pod_log"]["cpu_ratio_vs_grep"] <= 3)
    monkeypatch.setattr(measured, "HERE", tmp_path)
    (tmp_path / "logs_vs_grep").mkdir()
    # the failure side: the pod log over 3x (wall or CPU) misses the goal whatever the stress log says
    for key in ("ratio_vs_grep", "cpu_ratio_vs_grep"):
        worse = json.loads(json.dumps(res))
        worse["pod_log"][key] = 3.1
        worse["ratio_vs_grep_combined"] = worse["cpu_ratio_vs_grep_combined"] = 1.0
        assert lg.verdicts(worse) == (False, True)
        assert "Goal <= 3x: MISSED" in lg.render_md(worse)
        (tmp_path / "logs_vs_grep" / "results.json").write_text(json.dumps(worse))
        assert "(goal 3x: missed)" in measured.logs_vs_grep_row()[1]
    old = json.loads(json.dumps(res))
    del old["goal"]["log"]  # a record from before: the stress log was judged
    assert lg.verdicts(old) == (stress, stress)
