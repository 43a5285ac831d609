"""Section 3's cross-node graph on the local target: the verdict row for where the real workers ran (two network
namespaces, or a named loopback fallback), and the fallbacks LocalTarget chooses without starting anything."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from workshop_lib.sections import s03_cross_node
from workshop_lib.sections.common import Context, start
from workshop_lib.targets.local import LocalTarget

ROW = "KV cache crossed the veth between the two namespaces (real prefill and decode workers)"
FALLBACK = "cross-node graph: where the workers ran"
GOOD = {"mode": "netns", "why": "two network namespaces", "crossed": True, "nixl_bytes": 32768, "nixl_failed": 0,
        "prefill_tx_bytes": 35146, "decode_rx_bytes": 37570, "namespaces": {"prefill": "wslab0-p", "decode": "wslab0-d"}}


class _Local(LocalTarget):
    def __init__(self, cfg: Any, engine: str, netns: bool = True) -> None:
        super().__init__(cfg, netns=netns)
        self._status = SimpleNamespace(running=True, engine=engine)


def _ctx(tmp: Path, graph: dict[str, Any] | None, engine: str = "vllm") -> Context:
    ctx = start({"TARGET": "local", "WORK_DIR": str(tmp)}, "03")
    ctx.state["target"] = _Local(ctx.cfg, engine)
    ctx.state["graph"] = graph
    return ctx


def _rows(ctx: Context) -> dict[str, Any]:
    return {r.check: r for r in s03_cross_node.verify(ctx).rows}


def test_kv_bytes_on_both_veths_pass_with_the_counters_as_evidence(tmp_path: Path) -> None:
    row = _rows(_ctx(tmp_path, GOOD))[ROW]
    assert row.status == "PASS" and "35146" in str(row.evidence) and "wslab0-d" in str(row.evidence)


@pytest.mark.parametrize("broken", [{"crossed": False, "prefill_tx_bytes": 0}, {"crossed": False, "nixl_failed": 1}])
def test_kv_that_did_not_cross_fails(tmp_path: Path, broken: dict[str, Any]) -> None:
    assert _rows(_ctx(tmp_path, {**GOOD, **broken}))[ROW].status == "FAIL"


def test_loopback_fallback_is_a_named_warning_never_a_pass(tmp_path: Path) -> None:
    row = _rows(_ctx(tmp_path, {"mode": "loopback", "why": "network namespaces need root", "reason": "not-root"}))[
        FALLBACK]
    assert row.status == "WARN" and "network namespaces need root" in str(row.found)


def test_the_mocker_fallback_is_expected(tmp_path: Path) -> None:
    rows = _rows(_ctx(tmp_path, {"mode": "loopback", "why": "engine mocker moves no KV bytes", "reason": "mocker"},
                      engine="mocker"))
    assert rows[FALLBACK].status == "EXPECTED" and ROW not in rows


def test_the_fallback_is_judged_by_its_reason_code_not_its_wording(tmp_path: Path) -> None:
    """Not root, with a reason sentence that happens to say "mocker": still a WARN (the code decides, not the prose)."""
    row = _rows(_ctx(tmp_path, {"mode": "loopback", "why": "not the mocker: namespaces need root",
                                "reason": "not-root"}))[FALLBACK]
    assert row.status == "WARN"


def test_local_target_names_its_fallback_without_starting_a_lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = start({"TARGET": "local", "WORK_DIR": str(tmp_path)}, "03")
    assert _Local(ctx.cfg, "vllm", netns=False).cross_node_graph({})["why"].startswith("NETNS is off")
    assert _Local(ctx.cfg, "vllm", netns=False).cross_node_graph({})["reason"] == "netns-off"
    assert "mocker" in _Local(ctx.cfg, "mocker").cross_node_graph({})["why"]
    assert _Local(ctx.cfg, "mocker").cross_node_graph({})["reason"] == "mocker"
    from workshop_lib.lab import netns

    monkeypatch.setattr(netns, "can_isolate", lambda: False)
    got = _Local(ctx.cfg, "vllm").cross_node_graph({})
    assert got["mode"] == "loopback" and "need root" in got["why"] and got["reason"] == "not-root"
