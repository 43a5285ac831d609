"""The compiled per-line scanner (``workshop_lib/logs/native/shapescan.c``) against the pure-Python path.

- Shape ids: two lines share an id exactly when their shapes (``shapes.shape_of``: ids masked, digits as ``0``) are
  equal, on every byte value at every position of a word, the corpus, random bytes and random ids next to every kind
  of neighbour; a mutated copy of the C source (one digit not normalised, one non-digit normalised, an id's boundary
  or length not checked, ESC or non-ASCII lines masked) is compiled and must fail that check.
- Diagnosis: native == Python == the uncached reference on the corpus, odd bytes (CR, NUL, invalid UTF-8, lines
  around 1 KiB and over ``max_line``, no final newline), the benchmark generator's lines and random mixes.
- Fallback: with no compiler the Python path runs and the CLI names it.
"""

from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workshop_lib.logs import shapescan as native
from workshop_lib.logs.diagnose import Accumulator, feed_uncached
from workshop_lib.logs.fastscan import feed_file
from workshop_lib.logs.shapes import NORM, shape_of

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "tests" / "corpus"
POOL = [x for p in sorted(CORPUS.glob("*/*.log")) for x in p.read_bytes().splitlines() if x.strip()]


@pytest.fixture(scope="module")
def lib():  # noqa: ANN201 - a ctypes library
    got = native.load()
    if got is None:
        pytest.skip(f"no native scanner here: {native.scanner()}")
    return got


def _tricky_lines() -> list[bytes]:
    """Each byte value next to a digit and a '0', at every offset of an 8-byte word and across a word's end."""
    out: list[bytes] = []
    for b in range(256):
        if b == 10:
            continue
        for k in range(17):
            pad = b"a" * k
            out += [pad + bytes([b]) + b"x", pad + b"0x", pad + b"7x", pad + bytes([b])]
    rng = random.Random(5)
    out += [bytes(rng.choice(b"0123456789:/ab\x00\r\xff") for _ in range(rng.randrange(40))) for _ in range(3000)]
    return out + _id_lines()


def _id_lines() -> list[bytes]:
    """Ids (0x runs, uuids, near-misses) with every kind of neighbour, at every offset of a 16-byte chunk."""
    rng = random.Random(11)
    hexd = b"0123456789abcdef"

    def run(n: int) -> bytes:
        return bytes(rng.choice(hexd) for _ in range(n))

    def uuid() -> bytes:
        return b"-".join(run(n) for n in (8, 4, 4, 4, 12))

    ids = [b"0x" + run(rng.randrange(1, 14)) for _ in range(40)] + [uuid() for _ in range(40)]
    ids += [b"0x", b"0xg1", b"0X1f", b"0x1F", b"x1f", b"00x1f", uuid()[:-1], uuid() + b"a", uuid().upper(),
            uuid().replace(b"-", b"_", 1), run(8) + b"-" + run(4) + b"-" + run(4) + b"-" + run(4) + b"-" + run(11) + b"g"]
    sides = [b"", b" ", b"'", b"-", b"/", b"=", b"_", b"a", b"g", b"G", b"0", b"9", b"x", b"\x1b", b"\xff", b"\r"]
    out = []
    for _ in range(6000):
        x = rng.choice(ids)
        line = b"a" * rng.randrange(34) + rng.choice(sides) + x + rng.choice(sides) + rng.choice([b"", b" end", uuid()])
        out.append(line)
    out += [b"-".join([uuid(), uuid()]), b"0x1f-" + uuid(), uuid() + b"0x1f", b"z" + uuid(), b"cafe0x12", b"-" * 40,
            b"0-0-0-0-0 " * 8, b"a" * 1000 + b" 0x" + run(20), b"+-----" * 9, b"5x1f", b"a 7x1f 0x2", b"0-a" * 20,
            b"-" + uuid()[1:] + b" 0x1"]
    u = uuid()
    out += [b"a " + near + b" " + u for near in (b"5x1f", b"5x2e", b"0x1f_", b"0x2e_", b"y0x1f", b"y0x2e")]
    swap = bytes.maketrans(b"abcdef", b"fedcba")  # the same line with other hex letters: one shape only for ids
    return out + [x.translate(swap) for x in out]


def _check_partition(lib, lines: list[bytes]) -> None:  # noqa: ANN001
    sids = native.shape_ids(lib, b"".join(x + b"\n" for x in lines))
    assert len(sids) == len(lines)
    by_norm: dict[bytes, int] = {}
    by_sid: dict[int, bytes] = {}
    for line, sid in zip(lines, sids, strict=True):
        norm = shape_of(line)
        if len(line) > 1024:
            assert sid == -1
            continue
        assert by_norm.setdefault(norm, sid) == sid, (line, "same shape, two ids")
        assert by_sid.setdefault(sid, norm) == norm, (line, "one id, two shapes")


def test_shape_ids_are_exactly_the_python_shapes(lib) -> None:  # noqa: ANN001
    _check_partition(lib, _tricky_lines() + POOL + [b"x" * 1024, b"x" * 1025, b"7" * 1025])


def _mutant(tmp_path: Path, old: str, new: str) -> object:
    """The C library built from the source with ``old`` replaced by ``new`` (skips without a compiler)."""
    if native.compiler() is None:
        pytest.skip("no C compiler")
    import ctypes

    src = native.SOURCE.read_text()
    assert old in src
    mutant = tmp_path / "mutant.c"
    mutant.write_text(src.replace(old, new))
    return native.bind(ctypes.CDLL(str(native.build(mutant, tmp_path / "mutant.so"))))


@pytest.mark.parametrize(("old", "new"), [
    ("uint64_t t = x ^ (0x30 * ONES);", "uint64_t t = x ^ (0x32 * ONES);"),  # 8, 9 kept; :, ; normalised
    ("(0x76 * ONES)", "(0x77 * ONES)"),  # '9' no longer normalised (the 8-byte path)
    ("nine = _mm_set1_epi8(9),", "nine = _mm_set1_epi8(8),"),  # '9' no longer normalised (the 16-byte path)
    ("if (j == len || !is_word(sc[j])) {", "if (j == len || 1) {"),  # a 0x run followed by a letter
    ("(i >= 2 && is_word(sc[i - 2]))", "(i >= 2 && 0)"),  # a 0x after a letter (cafe0x12)
    ("if (o == 8 || o == 13 || o == 18 || o == 23) continue;", "if (o == 8 || o == 13 || o == 18) continue;"),
    ("    if (maybe && !bad)\n", "    if (maybe)\n"),  # ids masked in a line with ESC or a non-ASCII byte
    ("if (i < 1 || p[i - 1] != '0' ||", "if (i < 1 || sc[i - 1] != '0' ||"),  # 5x1f taken for an address
    ("c >= 'a' && c <= 'f'); }", "c >= 'a' && c <= 'g'); }"),  # g taken for a hex digit
])
def test_a_mutated_scanner_is_caught(tmp_path: Path, old: str, new: str) -> None:
    lib = _mutant(tmp_path, old, new)
    with pytest.raises(AssertionError):
        _check_partition(lib, _tricky_lines())


def _exact_cases() -> list[tuple[list[bytes], tuple | None]]:
    """Digit-sensitive corpus lines, each with 40 variants of other digits (a few share them), and their spans."""
    from workshop_lib.logs.fastscan import _Exact, _new_shape

    rng = random.Random(9)
    cases, kinds = [], set()
    whole = b"E1207 12:00:00.000 1 a.cpp:1] plain text 42"  # a candidate only for some digits: the whole line
    for line in [whole, *(x for x in POOL if b"returned -" in x or b"Exit Code" in x), *POOL[::7]]:
        if len(line) > 1024 or len(cases) >= 12:
            continue
        st = _new_shape(line.translate(NORM), lambda: None)
        if st.__class__ is not _Exact or st.spans in kinds:
            continue
        kinds.add(st.spans)
        variants = [bytes(rng.choice(b"0123456789"[:rng.choice([2, 10])]) if 48 <= c <= 57 else c for c in line)
                    for _ in range(40)]
        for a, b, vals in st.spans or ():  # a compared number: also the values it is compared with
            variants += [x[:a] + v + x[b:] for x in variants[:6] for v in vals or () if len(v) == b - a]
        cases.append((variants, st.spans))
    return cases


def _check_keys(lib, cases) -> None:  # noqa: ANN001
    from workshop_lib.logs.fastscan import _Exact

    for variants, spans in cases:
        kids = native.exact_key_ids(lib, variants, spans)
        py = [_Exact(spans).key(x)[1:] if spans is not None else (x,) for x in variants]  # the Python key
        by_py: dict[tuple, int] = {}
        by_kid: dict[int, tuple] = {}
        for key, kid in zip(py, kids, strict=True):
            assert kid >= 0
            assert by_py.setdefault(key, kid) == kid, (variants[0], "same digits, two keys")
            assert by_kid.setdefault(kid, key) == key, (variants[0], "one key, other digits")


def test_exact_keys_are_exactly_the_python_keys(lib) -> None:  # noqa: ANN001
    cases = _exact_cases()
    assert len(cases) >= 3 and any(spans is None for _, spans in cases)
    assert any(vals for _, spans in cases for _, _, vals in spans or ()), "no compared number among the cases"
    _check_keys(lib, cases)


def test_a_mutated_value_compare_is_caught(tmp_path: Path) -> None:
    """The C key of a compared number (``returned -61``): a mutant that ignores which value it equals is caught."""
    lib = _mutant(tmp_path, "kb[kl++] = which;", "kb[kl++] = 0;")
    with pytest.raises(AssertionError):
        _check_keys(lib, _exact_cases())


def test_a_mutated_key_is_caught(tmp_path: Path) -> None:
    """A mutant keying a span by its normalised digits (every value one key) is caught."""
    lib = _mutant(tmp_path, "memcpy(kb + kl, p + a, (size_t)(b - a));",
                  "memcpy(kb + kl, s->scratch + a, (size_t)(b - a));")
    with pytest.raises(AssertionError):
        _check_keys(lib, _exact_cases())


def _diag(path: Path, scanner: str | None, chunk: int = 8 << 20, max_line: int = 8 << 20) -> dict:
    acc = Accumulator()
    if scanner == "reference":
        name, n = feed_uncached(path, [acc])
    else:
        name, n = str(path), feed_file(path, [acc], chunk=chunk, max_line=max_line, scanner=scanner)
    d = acc.diagnosis([name], n)
    return {"contract": d.to_dict(), "evidence": d.evidence, "fields": d.field_evidence, "notes": d.notes,
            "counts": d.event_counts, "lines": d.lines, "versions": d.versions}


def _all_same(path: Path, chunks: tuple[int, ...] = (8 << 20, 4096)) -> None:
    ref = _diag(path, "reference")
    for chunk in chunks:
        assert _diag(path, "native", chunk) == ref, (path.name, chunk)
        assert _diag(path, "python", chunk) == ref, (path.name, chunk)


def test_corpus_native_python_reference_same(lib) -> None:  # noqa: ANN001
    for p in sorted(CORPUS.glob("*/*.log")):
        _all_same(p, (8 << 20, 1024))


def test_odd_bytes_same(lib, tmp_path: Path) -> None:  # noqa: ANN001
    rng = random.Random(11)
    odd = [b"\r", b"\x00", b"\xff\xfe", b"\xc3(", b"\x1b[31m"]
    lines = []
    for _ in range(4000):
        x = rng.choice(POOL)
        r = rng.random()
        if r < 0.2:
            x = x + rng.choice(odd)
        elif r < 0.3:
            x = x + b" pad" * rng.choice([230, 240, 255, 256, 257, 600])  # around LONG_LINE (1 KiB)
        elif r < 0.35:
            x = rng.choice(odd) + x
        lines.append(x)
    p = tmp_path / "odd.log"
    p.write_bytes(b"\n".join(lines))  # no final newline
    _all_same(p)
    for max_line in (64, 1500):  # over-long lines cut like FileScan
        for chunk in (100, 4096):
            assert _diag(p, "native", chunk, max_line) == _diag(p, "python", chunk, max_line), (max_line, chunk)


@pytest.mark.parametrize(("lines_max", "refill"), [(5, 3), (1000, 1)])
def test_small_batches_same(lib, tmp_path: Path, monkeypatch, lines_max: int, refill: int) -> None:  # noqa: ANN001
    """A block with more lines than the arrays hold is done in parts; values are filled in C between batches."""
    from workshop_lib.logs import fastscan

    monkeypatch.setattr(fastscan, "LINES_MAX", lines_max)
    monkeypatch.setattr(fastscan, "REFILL", refill)
    rng = random.Random(4)
    lines = [bytes(rng.choice(b"0123456789") if 48 <= c <= 57 else c for c in rng.choice(POOL)) for _ in range(3000)]
    p = tmp_path / "batches.log"
    p.write_bytes(b"\n".join(lines + [b""] * 50 + lines[:500]) + b"\n")
    _all_same(p)
    _all_same(CORPUS / "lab" / sorted(x.name for x in (CORPUS / "lab").glob("*.log"))[-1])


def test_benchmark_generator_lines_same(lib, tmp_path: Path) -> None:  # noqa: ANN001
    # Loaded under its own name: a plain `import run` returns whichever benchmarks' run.py another test imported first.
    spec = importlib.util.spec_from_file_location("_logs_vs_grep_run", REPO / "benchmarks" / "logs_vs_grep" / "run.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    p = tmp_path / "bench.log"
    bench.build_log(p, 2)
    _all_same(p)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(0, 100_000), min_size=1, max_size=400), st.integers(0, 2**32))
def test_random_mixes_same(lib, tmp_path_factory, picks: list[int], seed: int) -> None:  # noqa: ANN001
    rng = random.Random(seed)
    lines = []
    for i in picks:
        x = POOL[i % len(POOL)]
        if rng.random() < 0.5:
            x = bytes(rng.choice(b"0123456789") if 48 <= c <= 57 else c for c in x)
        lines.append(x)
    p = tmp_path_factory.mktemp("mix") / "r.log"
    p.write_bytes(b"\n".join(lines) + rng.choice([b"", b"\n"]))
    chunk = rng.choice([64, 1024, 8 << 20])
    ref = _diag(p, "reference")
    assert _diag(p, "native", chunk) == ref
    assert _diag(p, "python", chunk) == ref


def test_no_compiler_runs_python_and_says_so(monkeypatch, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    from workshop_lib import cli

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    monkeypatch.setattr(native, "_state", {})
    assert native.load() is None
    assert native.scanner().startswith("python (") and "no-such-cc" in native.scanner()
    log = CORPUS / "lab" / sorted(x.name for x in (CORPUS / "lab").glob("*.log"))[0]
    with pytest.raises(OSError, match="native scanner unavailable"):
        feed_file(log, [Accumulator()], scanner="native")
    cli.main(["diagnose", str(log), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert out["scanner"].startswith("python (")
    cli.main(["diagnose", str(log)])
    assert "scanner: python (" in capsys.readouterr().out


def test_cli_names_the_native_scanner(lib, capsys) -> None:  # noqa: ANN001
    from workshop_lib import cli

    log = sorted((CORPUS / "lab").glob("*.log"))[0]
    cli.main(["diagnose", str(log), "--json"])
    assert json.loads(capsys.readouterr().out)["scanner"] == native.NATIVE


def test_compiled_once_into_the_cache_not_the_source_tree(lib) -> None:  # noqa: ANN001
    path = native.library_path()
    assert path.exists() and REPO not in path.parents
    assert native.build() == path  # already there: not compiled again


@pytest.mark.parametrize("scanner", ["native", "python"])
def test_lines_after_an_over_long_line_ending_on_a_read_boundary_are_read(tmp_path: Path, scanner: str) -> None:
    """FileScan once took the empty rest of a read after a skipped over-long tail for the end of the file."""
    if scanner == "native" and native.load() is None:
        pytest.skip(f"no native scanner here: {native.scanner()}")
    p = tmp_path / "boundary.log"
    p.write_bytes(b"x" * 199 + b"\nBackend UCX was instantiated\n")  # the newline is the 200th byte: 2 reads of 100
    acc = Accumulator()
    assert feed_file(p, [acc], chunk=100, max_line=64, scanner=scanner) == 2
    assert acc.diagnosis([str(p)], 2).nixl_backend == "UCX"


def test_rule_filter_keeps_every_rule_whose_key_is_in_the_line(lib) -> None:  # noqa: ANN001
    """The C key search hands classify a superset of the rules it would try (every rule whose key is anywhere in
    the line, in priority order), so a line classifies the same with and without it: checked on every corpus line,
    and on each rule key alone and at the very end of a line."""
    from workshop_lib.logs import patterns as P
    from workshop_lib.logs.parser import classify, to_text

    rules_in = native.rule_filter(lib)
    assert rules_in is not None
    order = {id(r): i for i, r in enumerate(P.RULES_BY_PRIORITY)}
    lines = [*POOL, *(k.encode() for k in P.RULE_KEYS), *(b"x " + k.encode() for k in P.RULE_KEYS)]
    for raw in [*lines, b"no key here", b"ERROR"]:
        got = rules_in(raw)
        assert (got is None) == (not P.has_key(to_text(raw))), raw
        got = got or ()
        assert [order[id(r)] for r in got] == sorted(order[id(r)] for r in got)
        assert {id(r) for r in P.RULES_BY_PRIORITY if r.key.encode() in raw} <= {id(r) for r in got}, raw
        assert classify(raw, 1, "s", prefiltered=True, rules=got) == classify(raw, 1, "s", prefiltered=True), raw
