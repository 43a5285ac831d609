"""lessons.efa_reference: healthy P5 lines the parser reads as what they claim, with sources; thresholds with basis."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import shared_path
from workshop_lib.lessons import efa_reference as ref
from workshop_lib.logs.parser import classify

EXPECTED_EVENTS = ["nixl.plugin_loaded", "nixl.backend_instantiated", "libfabric.provider", "efa.handshake",
                   "efa.peer_host", "nixl.connection_created"]


def test_each_healthy_line_is_read_as_what_it_proves() -> None:
    events = [getattr(classify(h.line), "event", None) for h in ref.HEALTHY_LINES]
    assert events == EXPECTED_EVENTS
    assert classify(ref.HEALTHY_LINES[2].line).provider == "efa"


def test_sources_are_public_urls_or_named_docs() -> None:
    for h in ref.HEALTHY_LINES:
        assert h.source.startswith("https://github.com/"), h
        assert h.kind.startswith(("raw capture", "quoted as expected"))


def test_lines_are_verbatim_from_the_public_sources() -> None:
    logs = shared_path("fixtures", "logs")
    text = "\n".join(p.read_text() for p in logs.glob("*.log"))
    for h in ref.HEALTHY_LINES:
        assert h.line in text, h.line


def test_no_learner_facing_reference_to_shared() -> None:
    pkg = Path(ref.__file__).parent
    for p in pkg.glob("*.py"):
        assert "../shared" not in p.read_text(), p


def test_side_by_side() -> None:
    f = ref.side_by_side({"nixl_backend": "Backend LIBFABRIC was instantiated", "libfabric_provider": "::tcp:"})
    assert f.set_index("finding").loc["handshakes", "this run"] == "(no such line)"
    assert "HANDSHAKE" in f.set_index("finding").loc["handshakes", "healthy P5"]


@pytest.mark.parametrize(("instance", "vram"), [("p5.48xlarge", "4 of 32"), ("p5en.48xlarge", "2 of 16"),
                                                ("p4d.24xlarge", "1 of 4")])
def test_thresholds_follow_the_instance(instance: str, vram: str) -> None:
    t = ref.thresholds(instance).set_index("check")
    assert t.loc["rails carrying VRAM", "value"] == vram
    assert t.loc["EFA handshakes per side", "value"].startswith(">= 8")
    assert all(t["basis"].str.len() > 10)
