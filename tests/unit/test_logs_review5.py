"""Review 5 of the diagnose fast path: cases the other fast-path tests do not reach, each against the reference.

- Two accumulators fed at once that start from different states (``diagnose_files`` feeds ``[own, combined]`` and
  ``combined`` already holds the files before): one error table full, the other empty, so bulk ERR repeats are
  counted for one and dropped for the other, and a generic error's text key finds an entry in one only.
- The shape table pruned and cleared (``ss_prune``/``ss_clear``, ``CACHE_MAX`` made small) in the middle of a file.
- Fuzzed (bounded): generic errors (tracebacks by adjacency, text keys cut at the shape's span) behind pod, stern and
  process prefixes, with trailing whitespace, digits before and after character 80, mixed with mutated corpus lines
  and exact repeats (templates new in a block with repeats in bulk), tiny blocks, both scanners, two accumulators.

- The holes the review found, each fixed and held here: a UCX_PROTO_INFO table's header and rows repeated (a row
  counts for the operation of the header before it), vLLM metric values (the largest is kept), ANSI colour inside a
  rule's key (the C key search sees raw bytes), a block cut for over-long lines and split for having more lines
  than the arrays hold (the C refill read the freed copy), and unique provider names (bounded now).

Compared in full: counters, handshakes, every error entry (key, count, last line, evidence line and text), dropped
errors, the "last seen" provider order and the diagnosis.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workshop_lib.logs import shapescan as native
from workshop_lib.logs.accumulator import MAX_ERRORS
from workshop_lib.logs.diagnose import Accumulator, feed_uncached
from workshop_lib.logs.fastscan import feed_file

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
POOL = [x for p in sorted(CORPUS.glob("*/*.log")) for x in p.read_bytes().splitlines() if x.strip()]
SCANNERS = ["python", *(["native"] if native.load() is not None else [])]


def _state(acc: Accumulator, name: str) -> dict:
    d = acc.diagnosis([name], 0)
    return {"counts": dict(acc.counts), "handshakes": acc.handshakes, "dropped": acc.errors_dropped,
            "errors": [(k, e.count, e.last_line, e.ev.line, e.ev.text) for k, e in acc.errors.items()],
            "no_hmem": getattr(acc.no_hmem, "line", None),
            "weak": [(p, e.line) for p, e in acc.provider_weak.items()], "contract": d.to_dict(),
            "evidence": d.evidence, "fields": d.field_evidence, "notes": d.notes}


def _prefill(n: int) -> bytes:
    """A previous file with ``n`` distinct generic errors (not adjacent: each its own entry)."""
    return b"".join(b"ERROR 12-07 10:00:00 [p.py:1] earlier failure %s\nnoise\n" % (bytes([65 + i % 26]) * (1 + i // 26))
                    for i in range(n))


def _same(tmp: Path, lines: list[bytes], pre: int, scanner: str, chunks: tuple[int, ...]) -> None:
    p, prev = tmp / "f.log", tmp / "prev.log"
    p.write_bytes(b"\n".join(lines) + b"\n")
    prev.write_bytes(_prefill(pre))
    r1, r2 = Accumulator(), Accumulator()
    feed_uncached(prev, [r2])
    feed_uncached(p, [r1, r2])
    want = (_state(r1, str(p)), _state(r2, str(p)))
    for chunk in chunks:
        f1, f2 = Accumulator(), Accumulator()
        feed_uncached(prev, [f2])
        feed_file(p, [f1, f2], chunk=chunk, scanner=scanner)
        assert (_state(f1, str(p)), _state(f2, str(p))) == want, (scanner, chunk)


@pytest.mark.parametrize("scanner", SCANNERS)
def test_two_accumulators_one_with_a_full_error_table(tmp_path: Path, scanner: str) -> None:
    pad = b"." * 70  # the digits after it are past character 80: not part of the error table's key
    lines = []
    for k in range(4):  # the same errors again in later blocks: repeats in bulk, and by text key
        lines += [b"ERROR 12-07 10:00:00 [x.py:1] the same failure %s %d  " % (pad, k), b"x",  # GEN: one key
                  b"ERROR 12-07 10:00:01 [x.py:1] failure %d" % (k % 2), b"x",  # two keys, each twice
                  b"ERROR 12-07 10:00:01 [x.py:1] new failure %d" % k, b"x"]  # a new key each time (dropped)
        lines += [b"libfabric:1:2::efa:core:f():3<warn> EFA internal error: (4111)"] * 3  # ERREF
        lines += [b"libfabric:1:2::tcp:core:fi_av_insert():3<warn> fi_av_insert failed"] * 2  # ERR
        lines += [b"I1207 19:34:40.%d 1 a.cpp:1] Handshake stored: peer='p'" % k] * 2 + [b"between"]
    for pre in (0, MAX_ERRORS - 3, MAX_ERRORS):
        _same(tmp_path, lines, pre, scanner, (8 << 20, 90, 300))


@pytest.mark.skipif("native" not in SCANNERS, reason="no native scanner")
def test_shape_table_pruned_and_cleared_mid_file(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """Many shapes seen once (unique ids) between repeated signature lines: the C table is pruned (shapes without a
    value forgotten, the rest renumbered) and cleared; the Python state follows the new ids."""
    from workshop_lib.logs import fastscan

    lib = native.load()
    calls = {"ss_prune": 0, "ss_clear": 0}
    for fn in calls:
        real = getattr(lib, fn)
        monkeypatch.setattr(lib, fn, lambda *a, _r=real, _n=fn: (calls.__setitem__(_n, calls[_n] + 1), _r(*a))[1])
    monkeypatch.setattr(fastscan, "CACHE_MAX", 64)
    monkeypatch.setattr(fastscan, "LINES_MAX", 97)
    rng = random.Random(5)
    lines = []
    for k in range(2500):
        if k % 3:
            lines.append(b"request %s done" % bytes(rng.choice(b"abcdefghij") for _ in range(12)))  # unique shapes
        else:
            x = rng.choice(POOL)
            lines.append(bytes(rng.choice(b"0123456789") if 48 <= c <= 57 else c for c in x))
    _same(tmp_path, lines, 10, "native", (8 << 20, 4096))
    assert calls["ss_prune"] and calls["ss_clear"], calls


_HEADS = [b"", b"[pod/decode-0/main] ", b"my-pod-7f9c4 main ", b"(EngineCore_DP0 pid=594) ", b"[pod/a/b] (x pid=3) "]
_TAILS = [b"", b" ", b"\t", b"\x0c", b"  \t\x0b", b"\r", b"\x1c"]


def _generic(rng: random.Random) -> bytes:
    pad = b"x" * rng.choice([0, 10, 40, 55, 60, 70, 75, 90])  # digits land before or after character 80
    d = b"%d" % rng.choice([1, 2, 10, 99])
    msg = rng.choice([b"ERROR 12-07 10:00:0%d [x.py:1] boom " % rng.randrange(3) + pad + b" n=" + d,
                      b"E1207 10:00:00.1 %d a.cpp:1] bad thing " % rng.randrange(3) + pad + d,
                      b"RuntimeError: failed " + d + pad, b"Traceback (most recent call last):",
                      b"2025-05-08 00:47:57,1%d - m - ERROR - oops " % rng.randrange(9) + pad + d])
    return rng.choice(_HEADS) + msg + rng.choice(_TAILS)


def _mutate(line: bytes, how: int, rng: random.Random) -> bytes:
    if how == 0:
        return bytes(rng.choice(b"0123456789") if 48 <= c <= 57 else c for c in line)
    if how == 1:
        return line[: max(1, len(line) // 2)]
    if how == 2:
        return line + b"\xff\xc3"
    if how == 3:
        return b"\x1b[31m" + line + b"\x1b[0m"
    if how == 4:
        return line + b" pad" * 260  # a long line (> LONG_LINE): classified each time
    return line


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 10**6), st.integers(0, 7), st.integers(1, 3),
                          st.booleans()), min_size=5, max_size=150),
       st.integers(0, 2**32), st.sampled_from([0, MAX_ERRORS - 3, MAX_ERRORS]), st.sampled_from([48, 200, 1500]))
def test_fuzz_generic_errors_and_repeats_two_accumulators(tmp_path_factory, items, seed: int, pre: int,
                                                          chunk: int) -> None:
    """Bounded fuzz: a few generic errors (digits re-drawn: the same key or not) and mutated corpus lines, repeated
    in a row (new templates with repeats in one block; adjacent generic errors are one traceback) or with a line
    between (the text-key path, also once the table is full), tiny blocks, two accumulators."""
    rng = random.Random(seed)
    gens = [_generic(rng) for _ in range(5)]
    lines = []
    for kind, pick, how, rep, apart in items:
        if kind < 2:
            x = _mutate(gens[pick % len(gens)], 0 if how < 4 else 5, rng)
        else:
            x = _mutate(POOL[pick % len(POOL)], how, rng) if kind < 4 else b"between"
        lines += [x, b"between"] * rep if apart else [x] * rep
    tmp = tmp_path_factory.mktemp("r5")
    for scanner in SCANNERS:
        _same(tmp, lines, pre, scanner, (8 << 20, chunk))


def _check(tmp_path: Path, lines: list[bytes], scanners: list[str], **kw: int) -> None:
    p = tmp_path / "h.log"
    p.write_bytes(b"\n".join(lines) + b"\n")
    ref = Accumulator()
    feed_uncached(p, [ref])  # its lines are all shorter than any max_line used here, but "x" * 300 (no key)
    want = {**_state(ref, str(p)), "ucx": sorted(ref.ucx), "ucx_rma": sorted(ref.ucx_rma), "metrics": ref.metrics}
    for scanner in scanners:
        for chunk in (8 << 20, 64):
            fast = Accumulator()
            feed_file(p, [fast], chunk=kw.get("chunk", chunk), scanner=scanner,
                      **({"max_line": kw["max_line"]} if "max_line" in kw else {}))
            got = {**_state(fast, str(p)), "ucx": sorted(fast.ucx), "ucx_rma": sorted(fast.ucx_rma),
                   "metrics": fast.metrics}
            assert got == want, (scanner, chunk)


_H = b"[1796644226.594392] [vm:25242:0]   | ucp_context_0 self cfg#0 | "
_AM = _H + b"active message by ucp_am_send* from host memory    |"
_RMA = _H + b"remote memory write by ucp_put* from host memory to host    |"
_ROW_RC = b"[1796644226.594395] [vm:25242:0]   |                   0..inf | zero-copy      | rc_mlx5/mlx5_0:1 |"
_ROW_TCP = b"[1796644226.594395] [vm:25242:0]   |                8185..inf | zero-copy      | tcp/eth0 |"


def test_ucx_proto_table_headers_and_rows_repeated(tmp_path: Path) -> None:
    """A row's transport counts for the operation its header names: repeated headers are applied in order (they
    once counted in bulk, and a tcp row under "active message" was taken for the RMA path: tcp-fallback)."""
    _check(tmp_path, [_AM, _ROW_RC, _AM, _ROW_RC, _RMA, _AM, _ROW_TCP], SCANNERS)


@pytest.mark.skipif("native" not in SCANNERS, reason="no native scanner")
def test_ucx_table_repeats_across_blocks_in_bulk_only_when_nothing_can_change(tmp_path: Path) -> None:
    """Blocks of repeated UCX tables: a block counts its table lines in bulk only when no row can add a class; a
    block with a row of a new class (tcp under the "remote memory" header) applies its headers in order."""
    seen_once = [_AM, _ROW_RC, _RMA, _ROW_RC] * 40  # rc known for both operations
    late_tcp = [_AM, _ROW_RC, _RMA, _ROW_TCP, _AM, _ROW_TCP]  # tcp first under RMA, then under active messages
    tcp_known_for_am_only = [_AM, _ROW_TCP, *seen_once, _RMA, _ROW_TCP]  # a seen row that still adds tcp to RMA
    for lines in (seen_once + late_tcp, seen_once + late_tcp[::-1], seen_once + [_AM] * 30 + [_ROW_TCP],
                  tcp_known_for_am_only):
        _check(tmp_path, lines, ["native"], chunk=1024)


def test_vllm_metric_keeps_the_largest_value(tmp_path: Path) -> None:
    _check(tmp_path, [b"vllm:nixl_num_failed_transfers_total %d.0" % v for v in (0, 3, 5, 1)], SCANNERS)


def test_ansi_colour_inside_a_rule_key(tmp_path: Path) -> None:
    _check(tmp_path, [b"\x1b[1mBackend\x1b[0m UCX was instantiated",
                      b"I1207 19:34:40.1 1 a.cpp:1] Disc\x1b[0movered 2 EFA devices; UCX",
                      b"2026-11-27T02:28:17.776046Z ERROR dynamo_runtime: Could not connect to \x1b[1metcd\x1b[0m"],
           SCANNERS)


@pytest.mark.skipif("native" not in SCANNERS, reason="no native scanner")
def test_block_cut_for_long_lines_and_split_for_many_lines(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """A line over max_line makes the block a new bytes object, and more lines than the arrays hold split it: the C
    refill must read the split block, not the freed one (found with AddressSanitizer)."""
    from workshop_lib.logs import fastscan

    monkeypatch.setattr(fastscan, "LINES_MAX", 50)
    monkeypatch.setattr(fastscan, "REFILL", 2)
    lines = [b"x" * 300] + [b"I1207 19:34:40.1 1 a.cpp:1] Discovered %d EFA devices" % (i % 7) for i in range(400)]
    _check(tmp_path, lines, ["native"], max_line=200, chunk=1 << 20)


def test_unique_provider_names_stay_bounded(tmp_path: Path) -> None:
    """Every line naming another provider: the "last seen" table and the rejected set stop growing at MAX_SET (the
    same on every path), so memory stays bounded on any input."""
    from workshop_lib.logs.accumulator import MAX_SET

    n = MAX_SET + 300
    lines = [b"libfabric:1:2::prov%d:core:f():3<info> Supported: FI_EP_MSG" % i for i in range(n)]
    lines += [b"libfabric:1:2::core:core:fi_getinfo_():3<info> fi_getinfo: provider p%d returned -61 (x)" % i
              for i in range(n)]
    _check(tmp_path, lines, SCANNERS)
    acc = Accumulator()
    p = tmp_path / "h.log"
    feed_file(p, [acc])
    assert len(acc.provider_weak) == MAX_SET and len(acc.rejected) == MAX_SET
