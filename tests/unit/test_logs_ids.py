"""Ids (0x addresses, uuids) are read as zeros by every rule, so lines that differ only in ids share one shape.

- ``patterns.mask_ids`` is exactly ``ID_RE`` (its fast candidate search finds every id the regex finds).
- ``classify``: an id never changes which rule matches; what a rule captures and the evidence are as written.
- The C scanner gives lines that differ only in ids one shape; the diagnosis is the same on the native, pure-Python
  and uncached paths for logs made of such lines, ids inside captured values included.
- No prefilter key can overlap an id (checked when ``logs/shapes.py`` loads); the check itself refuses a key that
  could (the failure side).
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from workshop_lib.logs import patterns as P
from workshop_lib.logs import shapescan as native
from workshop_lib.logs.parser import classify
from workshop_lib.logs.shapes import can_overlap_id, shape_of

REPO = Path(__file__).resolve().parents[2]
POOL = [x for p in sorted((REPO / "tests" / "corpus").glob("*/*.log")) for x in p.read_bytes().splitlines() if x.strip()]
_HEX = re.compile(rb"0x[0-9a-f]+|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _redraw(line: bytes, rng: random.Random) -> bytes:
    """``line`` with the hex digits of every 0x address and uuid drawn again (the 0x and the dashes kept)."""
    def one(m: re.Match) -> bytes:
        x = m.group()
        head = 2 if x.startswith(b"0x") else 0
        return x[:head] + bytes(rng.choice(b"0123456789abcdef") if c != 45 else c for c in x[head:])
    return _HEX.sub(one, line)


def test_mask_ids_is_exactly_the_id_regex() -> None:
    rng = random.Random(3)
    zero = str.maketrans("123456789abcdef", "0" * 15)
    lines = [x.decode("latin-1") for x in POOL]
    lines += ["".join(rng.choice("0x-af9 _g'") for _ in range(rng.randrange(80))) for _ in range(20000)]
    lines += ["a-" + "0123abcd-ef01-2345-6789-abcdef012345" * 2, "0x" * 30, "-0000-0000-0000-" * 5]
    for x in lines:
        if x.isascii():
            assert P.mask_ids(x) == P.ID_RE.sub(lambda m: m.group().translate(zero), x), x


def test_an_id_never_decides_the_rule_and_values_stay_as_written() -> None:
    a = "I1207 19:34:40.1 1 nixl_agent.cpp:866] createXferReq: metadata for remote agent " \
        "'def7d2f1-d482-4cd2-b6de-f238da5a9c70' not found"
    b = a.replace("def7d2f1-d482-4cd2-b6de-f238da5a9c70", "0123abcd-0000-4fff-8aaa-000000000001")
    ea, eb = classify(a), classify(b)
    assert (ea.event, ea.code, ea.component, ea.level) == (eb.event, eb.code, eb.component, eb.level)
    assert ea.code is not None and "def7d2f1-d482" in ea.text and "0123abcd-0000" in eb.text
    plug = classify("2025-12-07 19:34:32 NIXL INFO    logging.py:82 Loading plugins from: /opt/nixl-0x1f2e/lib")
    assert plug.event == "nixl.plugin_dir" and plug.detail == "/opt/nixl-0x1f2e/lib"  # captured as written
    ucx = classify("[1745499308.855116] [9fd0c21b0f7c:760  :0]      ucp_worker.c:2903 UCX  WARN  worker 0x754a6ee0: "
                   "10 pending operations were not flushed")
    assert ucx.component == "ucx" and "0x754a6ee0" in ucx.text


def test_lines_that_differ_only_in_ids_share_one_shape(tmp_path: Path) -> None:
    lib = native.load()
    if lib is None:
        pytest.skip(f"no native scanner here: {native.scanner()}")
    rng = random.Random(7)
    with_ids = [x for x in POOL if _HEX.search(x) and len(x) <= 1024]
    collapsed = 0
    for line in with_ids:
        variants = [line] + [_redraw(line, rng) for _ in range(5)]
        sids = native.shape_ids(lib, b"".join(v + b"\n" for v in variants))
        assert len({shape_of(v) for v in variants}) == len(set(sids)), line
        collapsed += len(set(sids)) == 1 < len(set(variants))
    assert collapsed >= 15, collapsed  # the corpus lines with ids: each one shape, whatever the ids


def test_diagnosis_is_the_same_on_every_path_for_lines_with_ids(tmp_path: Path) -> None:
    from tests.unit.test_logs_shapescan import _all_same

    if native.load() is None:
        pytest.skip(f"no native scanner here: {native.scanner()}")
    rng = random.Random(8)
    captured = [  # an id inside a value a rule captures: read as written, so such lines are keyed by it
        b"2025-12-07 19:34:32 NIXL INFO    logging.py:82 Loading plugins from: /opt/nixl-0x1f2e/lib",
        b"I1207 19:34:40.1 1 a.cpp:1] NIXL version: 0.9.0-0xabc",
        b"libfabric:25331:1796644227::tcp:ep_ctrl:xnet_process_connreq():451<info> connreq for 0x556890171340",
    ]
    # A stern-style pod prefix ending in a uuid: its last group reads as digits (masked), so the prefix is found
    # whatever the uuid's letters (read as written, an all-digit last group would end a pod name and a lettered
    # one would not: the message, and so the error, would depend on the id).
    stern = b"decode-1234abcd-0000-4000-8000-%s main ERROR 11-19 10:12:21 [x.py:1] KV transfer failed"
    lines = [_redraw(rng.choice(POOL + captured * 40), rng) for _ in range(6000)]
    lines += [stern % x for x in (b"123456789012", b"12345678901a", b"abcdefabcdef", b"000000000000")] * 3
    p = tmp_path / "ids.log"
    p.write_bytes(b"\n".join(lines) + b"\n")
    _all_same(p)


def test_a_key_that_could_overlap_an_id_is_refused() -> None:
    assert [k for k in (*P.PREFILTER_KEYS, *P.RULE_KEYS) if can_overlap_id(k)] == []
    for key in ("ed:", "0x1", " cafe", "-abcd-", "d]"):  # an id could end or start inside each
        assert can_overlap_id(key), key
    for key in ("failed", "Backend ", "not found", "0x", "fi_addr"):
        assert not can_overlap_id(key), key


def test_a_last_line_without_newline_gets_the_same_shape() -> None:
    lib = native.load()
    if lib is None:
        pytest.skip(f"no native scanner here: {native.scanner()}")
    u = b"def7d2f1-d482-4cd2-b6de-f238da5a9c70"
    for line in (b"b 0x2e", b"agent " + u, b"x" * 20 + b" 0x1f", b"y" * 15 + b"0x", b"z" * 40 + b" " + u):
        other = _redraw(line, random.Random(1))
        sids = native.shape_ids(lib, line + b"\n" + other)  # the last line has no newline: nothing past it is read
        assert (sids[0] == sids[1]) == (shape_of(line) == shape_of(other)), line
