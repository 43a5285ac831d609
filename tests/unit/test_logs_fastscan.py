"""The cached fast path (``fastscan.feed_file``) gives exactly the diagnosis of the uncached reference path.

Compared in full: the JSON contract, the verdict's evidence line, per-field evidence, notes and event counts. Inputs:
every public fixture, a shuffled interleaving of all of them with digits rewritten (other timestamps, pids, rail and
device counts: the case the caches are built for), tiny blocks (so templates span blocks), and random mixes.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workshop_lib.logs.diagnose import Accumulator, diagnose_files, feed_uncached
from workshop_lib.logs.fastscan import feed_file
from workshop_lib.logs.shapes import message_key, shape_is_safe


def _both(path: Path, chunk: int = 8 << 20) -> tuple[dict, dict]:
    fast, ref = Accumulator(), Accumulator()
    n_fast = feed_file(path, [fast], chunk=chunk)
    name, n_ref = feed_uncached(path, [ref])
    return _view(fast.diagnosis([name], n_fast)), _view(ref.diagnosis([name], n_ref))


def _view(d) -> dict:  # noqa: ANN001 - a Diagnosis
    return {"contract": d.to_dict(), "evidence": d.evidence, "fields": d.field_evidence, "notes": d.notes,
            "counts": d.event_counts, "lines": d.lines}


def _fixture_lines(fixtures_dir: Path) -> list[bytes]:
    out: list[bytes] = []
    for p in sorted([*fixtures_dir.glob("logs/*.log"), *fixtures_dir.glob("nixlbench/*.log")]):
        out += p.read_bytes().splitlines()
    return out


def _redigit(line: bytes, rng: random.Random) -> bytes:
    return re.sub(rb"\d", lambda m: str(rng.randrange(10)).encode(), line)


@pytest.mark.parametrize("chunk", [8 << 20, 512])
def test_every_fixture_same_diagnosis(fixtures_dir: Path, chunk: int) -> None:
    for p in sorted([*fixtures_dir.glob("logs/*.log"), *fixtures_dir.glob("nixlbench/*.log")]):
        fast, ref = _both(p, chunk)
        assert fast == ref, p.name


def test_shuffled_redigited_mix_same_diagnosis(fixtures_dir: Path, tmp_path: Path) -> None:
    rng = random.Random(7)
    lines = _fixture_lines(fixtures_dir)
    mix: list[bytes] = []
    for _ in range(30):  # the same messages again and again with other digits, in another order
        block = [(_redigit(x, rng) if rng.random() < 0.5 else x) for x in lines]
        rng.shuffle(block)
        mix += block
    p = tmp_path / "mix.log"
    p.write_bytes(b"\n".join(mix) + b"\n")
    for chunk in (8 << 20, 4096):
        fast, ref = _both(p, chunk)
        assert fast == ref


def test_interleaved_pods_and_repeats_same_diagnosis(fixtures_dir: Path, tmp_path: Path) -> None:
    lines = _fixture_lines(fixtures_dir)
    pods = [b"[pod/prefill-0/main] ", b"[pod/decode-7/main] ", b""]
    p = tmp_path / "pods.log"
    p.write_bytes(b"".join(pods[i % 3] + x + b"\n" for i, x in enumerate(lines * 5)))
    fast, ref = _both(p, 2048)
    assert fast == ref


def test_two_files_and_combined_match_reference(fixtures_dir: Path) -> None:
    paths = sorted(fixtures_dir.glob("logs/*.log"))[:4]
    md = diagnose_files(paths)
    ref = Accumulator()
    total = 0
    for p in paths:
        total += feed_uncached(p, [ref])[1]
    assert md.combined.to_dict() == ref.diagnosis([str(p) for p in paths], total).to_dict()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=300), st.integers(0, 2**32))
def test_random_mixes_same_diagnosis(fixtures_dir: Path, tmp_path_factory, picks: list[int], seed: int) -> None:
    lines = _fixture_lines(fixtures_dir)
    rng = random.Random(seed)
    chosen = [_redigit(lines[i % len(lines)], rng) if rng.random() < 0.3 else lines[i % len(lines)] for i in picks]
    p = tmp_path_factory.mktemp("mix") / "r.log"
    p.write_bytes(b"\n".join(chosen))
    fast, ref = _both(p, rng.choice([64, 1024, 8 << 20]))
    assert fast == ref


def test_shape_safety_and_message_key() -> None:
    assert shape_is_safe(b"I0000 00:00:00.000000 0 a.cpp:0] HANDSHAKE received from peer with explicit fi_addr 0")
    assert not shape_is_safe(b"  Exit Code:    000")  # 137 or not decides OOMKilled
    assert not shape_is_safe(b"libfabric:0:psm0:core:f():0<info> x")  # the provider field has a digit
    assert not shape_is_safe(b"E0000 00:00:00.0 0 a.cpp:0] plain text")  # only E0/E1 make it a candidate
    key, cut = message_key(b"[1746690477.974497] [llm206:611  :0]     ucp_context.c:1268 UCX  WARN  x")
    assert key.startswith(b"[1000000000.000000] [llm000:000  :0]") and cut == 36
    assert message_key(b"Backend UCX was instantiated") == (b"Backend UCX was instantiated", 0)


def test_unique_request_lines_mixed_in_same_diagnosis(fixtures_dir: Path, tmp_path: Path) -> None:
    """Lines whose text differs beyond digits (request uuids) miss the shape cache and are settled in bulk."""
    rng = random.Random(3)
    lines = _fixture_lines(fixtures_dir)
    out = []
    for k in range(6000):
        if k % 20 == 0:
            out.append(lines[rng.randrange(len(lines))])
        else:
            rid = "".join(rng.choice("abcdefghijklmnop") for _ in range(24))
            out.append(f"INFO 11-25 02:39:44 [logger.py:42] Received request cmpl-{rid}: temperature=0.7".encode())
    p = tmp_path / "uniq.log"
    p.write_bytes(b"\n".join(out) + b"\n")
    for chunk in (8 << 20, 16384):
        fast, ref = _both(p, chunk)
        assert fast == ref


CORPUS = Path(__file__).resolve().parents[1] / "corpus"


def _redraw(line: bytes, rng: random.Random) -> bytes:
    """Every digit and hex letter of addresses/uuids drawn again, as the benchmark's big log does."""
    line = re.sub(rb"0x[0-9a-f]+|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
                  lambda m: bytes(rng.choice(b"0123456789abcdef") if c not in b"x-" else c for c in m.group()), line)
    return re.sub(rb"\d", lambda m: str(rng.randrange(10)).encode(), line)


@pytest.mark.parametrize("seed", [1, 2])
def test_corpus_redrawn_like_the_benchmark_same_diagnosis(tmp_path: Path, seed: int) -> None:
    """In the repo (no ../shared needed): the corpus's lines drawn at random with every digit re-drawn, so version,
    provider (``sm2`` -> ``sm7``), error code (``-61`` -> ``-37``), rail and device values all vary."""
    rng = random.Random(seed)
    pool = [x for p in sorted(CORPUS.glob("*/*.log")) for x in p.read_bytes().splitlines() if x.strip()]
    lines = [_redraw(rng.choice(pool), rng) if rng.random() < 0.9 else rng.choice(pool) for _ in range(20000)]
    p = tmp_path / "redrawn.log"
    p.write_bytes(b"\n".join(lines) + b"\n")
    for chunk in (8 << 20, 65536):
        fast, ref = _both(p, chunk)
        assert fast == ref


def test_every_rule_matches_a_line_and_its_shape_at_the_same_place() -> None:
    """The shape test's premise, on every corpus line: each probe is its rule's own regex (no literal digit in it)
    and finds the same matches, with the same group spans, in a line's message and in its shape."""
    from workshop_lib.logs import patterns as P
    from workshop_lib.logs.parser import strip_prefixes, to_text
    from workshop_lib.logs.shapes import NORM, PROBES

    rules = [*P.RULES_BY_PRIORITY, *(None for _ in P.BENIGN_RULES), None]
    checked = 0
    for p in sorted(CORPUS.glob("*/*.log")):
        for raw in p.read_bytes().splitlines():
            msg = strip_prefixes(to_text(raw))[0]
            norm = strip_prefixes(to_text(raw.translate(NORM)))[0]
            for rule, probe in zip(rules, PROBES, strict=True):
                assert rule is None or probe.regex is rule.regex
                got = [(m.span(), m.regs) for m in probe.regex.finditer(msg)]
                assert got == [(m.span(), m.regs) for m in probe.regex.finditer(norm)], (probe.regex.pattern, raw)
                checked += bool(got)
    assert checked > 300


def test_a_literal_digit_in_a_rule_is_refused() -> None:
    """A rule that tests a literal number (``returned -61``) would break the shape cache: loading refuses it and
    says how to write it instead."""
    import re

    from workshop_lib.logs.shapes import _probe

    with pytest.raises(AssertionError, match="when"):
        _probe("returned -", re.compile(r"returned -61"), ())
    with pytest.raises(AssertionError, match="when"):
        _probe("returned -", re.compile(r"returned (?!61\b)-\d+"), ())
    assert _probe("returned -", re.compile(r"returned -(?P<errno>\d\d)"), (), (("errno", True, frozenset({"61"})),))


_POOL = [x for p in sorted(CORPUS.glob("*/*.log")) for x in p.read_bytes().splitlines() if x.strip()]


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.tuples(st.integers(0, len(_POOL) - 1), st.integers(0, 6), st.binary(max_size=12)),
                min_size=1, max_size=200), st.integers(0, 2**32), st.sampled_from([64, 1024, 8 << 20]))
def test_mutated_corpus_same_diagnosis(tmp_path_factory, items, seed: int, chunk: int) -> None:
    """Fuzzed (bounded): corpus lines re-drawn, truncated, with invalid UTF-8, ANSI colour, pod prefixes or junk give
    the fast path exactly the reference path's diagnosis."""
    rng = random.Random(seed)
    out = []
    for i, how, junk in items:
        line = _POOL[i]
        out.append([_redraw(line, rng), line[: max(1, len(line) // 2)], line + b"\xff\xc3" + junk,
                    b"\x1b[31m" + line + b"\x1b[0m", b"[pod/decode-" + str(how).encode() + b"/main] " + line,
                    junk, line][how])
    p = tmp_path_factory.mktemp("fz") / "m.log"
    p.write_bytes(b"\n".join(out))
    fast, ref = _both(p, chunk)
    assert fast == ref


def test_the_fast_path_keys_on_every_event_field_the_accumulator_reads() -> None:
    """The shape cache and the shared templates assume the accumulator reads only these Event fields (the line's
    number, source and text come from the line itself). A new field read there must be added to the template key
    (templates.template) and, if a rule captures it, to patterns.VALUE_GROUPS."""
    from workshop_lib.logs import accumulator

    src = Path(accumulator.__file__).read_text()
    read = set(re.findall(r"\bev\.([a-z_]+)", src))
    assert read <= {"backend", "code", "component", "detail", "devices", "event", "level", "line", "provider", "rails",
                    "source", "text", "transport"}, read


def _acc_state(acc: Accumulator) -> dict:
    return {"handshakes": acc.handshakes, "dropped": acc.errors_dropped, "counts": dict(acc.counts),
            "errors": {k: (e.count, e.last_line) for k, e in acc.errors.items()},
            "weak": [(p, e.line) for p, e in acc.provider_weak.items()], "no_hmem": getattr(acc.no_hmem, "line", None)}


@pytest.mark.parametrize("scanner", ["native", "python"])
def test_repeats_in_bulk_keep_every_effect(tmp_path: Path, scanner: str) -> None:
    """Repeats the fast path applies in bulk, each against the reference: NIXL 1.x handshakes (``Handshake stored``
    counts as a handshake: the bulk path once counted only the first), an EFA abort naming its provider (an error
    and "last seen" evidence at once), a held code (``NO_GPUDIRECT_RAIL``), and error repeats after the error table
    is full (each one dropped and counted as dropped)."""
    from workshop_lib.logs import shapescan as native
    from workshop_lib.logs.accumulator import MAX_ERRORS

    if scanner == "native" and native.load() is None:
        pytest.skip("no C compiler")
    lines = [f"I1207 19:34:40.{i} 1 a.cpp:1] Handshake stored: peer='p{i}'" for i in range(5)]
    lines += ["libfabric:1:2::efa:core:f():3<warn> EFA internal error: (4111)"] * 3
    lines += ["libfabric:1:2::tcp:core:f():3<info> Supported: FI_EP_MSG"] * 3
    lines += [f"I1207 19:34:40.{i} 1 a.cpp:1] Using provider without FI_HMEM support for rail 0" for i in range(4)]
    for i in range(MAX_ERRORS + 5):  # not adjacent (adjacent ones are one traceback): the table fills up
        lines += [f"ERROR 12-07 10:00:0{i % 10} [x.py:1] distinct failure number {i} here", "between"]
    lines += ["libfabric:1:2::tcp:core:fi_av_insert():3<warn> fi_av_insert failed"] * 4
    lines += ["  Reason:  OOMKilled", "x", "  Reason:  OOMKilled"]
    p = tmp_path / "repeats.log"
    p.write_bytes(("\n".join(lines) + "\n").encode())
    for chunk in (8 << 20, 256):
        fast, ref = Accumulator(), Accumulator()
        feed_file(p, [fast], chunk=chunk, scanner=scanner)
        feed_uncached(p, [ref])
        assert _acc_state(fast) == _acc_state(ref), chunk
        assert ref.handshakes == 5 and ref.errors_dropped > 0


@pytest.mark.parametrize("scanner", ["native", "python"])
def test_a_version_is_read_from_its_first_line_on_every_path(tmp_path: Path, scanner: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Versions do not key a line (FIRST_DETAIL_ONLY): later lines of a shape share the first line's template, which
    is right only while the accumulator keeps the first version. Read the last one instead and the paths must part."""
    from workshop_lib.logs import accumulator, shapescan

    if scanner == "native" and shapescan.load() is None:
        pytest.skip(f"no native scanner here: {shapescan.scanner()}")
    lines = [b"I1207 19:34:40.1 1 nixl_log.cpp:1] NIXL version: %d.%d.%d" % (i % 7, i % 5, i) for i in range(300)]
    lines += [b"[1746690477.974497] [h:611  :0]     ucp_context.c:1268 UCX  INFO  Version 1.%d.0 (loaded from /lib%d/x.so)"
              % (i, i) for i in range(300)]
    p = tmp_path / "versions.log"
    p.write_bytes(b"\n".join(lines) + b"\n")

    def report(feed) -> dict:  # noqa: ANN001
        acc = Accumulator()
        n = feed(p, [acc])
        return acc.diagnosis([str(p)], n if isinstance(n, int) else n[1]).versions

    fast = report(lambda path, accs: feed_file(path, accs, scanner=scanner))
    assert fast == report(feed_uncached)
    assert fast["versions"] == {"nixl": "0.0.0", "ucx": "1.0.0"} and fast["loaded_from"]["ucx"] == "/lib0/x.so"
    original = accumulator.Accumulator._add_detail

    def last_wins(self, e: str, ev) -> None:  # noqa: ANN001 - the rule changed on purpose
        self.versions.pop(accumulator._VERSION_EVENTS.get(e), None)
        original(self, e, ev)

    monkeypatch.setattr(accumulator.Accumulator, "_add_detail", last_wins)
    assert report(lambda path, accs: feed_file(path, accs, scanner=scanner)) != report(feed_uncached)
