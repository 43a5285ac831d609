"""Fast, cached diagnosis of a log file: the same events as :func:`~workshop_lib.logs.parser.classify`, far less work.

Real logs repeat the same message with another timestamp, thread id or rail number. Classification is therefore
cached, in bounded levels, and a line that hits the cache costs a lookup plus counter updates (in C when the native
scanner runs: :mod:`workshop_lib.logs.shapescan`):

1. **Shape** (every line): the line with every digit as ``0``, ids too (0x addresses, uuids:
   :func:`~workshop_lib.logs.shapes.shape_of`). Every rule tests digits only as a class (numbers a signature depends
   on are compared in the rule's ``when``) and reads ids as zeros, so a shape's lines classify alike unless a captured
   value holds a digit or an id (devices, rails, provider; a version is read from its event's first line only), a
   rule compares a number (``returned -61``), the
   libfabric header's provider field holds one, or the line is a prefilter candidate only for some digits (abseil
   ``E0``/``F1`` levels): :func:`~workshop_lib.logs.shapes.exact_spans`, worked out once per shape.
2. **Exact key** (digit-sensitive shapes only): the shape plus the bytes of those spans (for a compared number, only
   which value it equals); the first line of a key is classified in full, and every line with that key shares it.
3. **Outcome**: classifications that give the same event fields share one template
   (:func:`~workshop_lib.logs.templates.template`), so lines that differ in what the accumulator never reads still
   count in bulk.

Per-line state stays exact: line numbers, evidence text (decoded from the line itself, only when kept) and the order
of "first seen" / "last seen" evidence. Per block, a template whose repeats commute (only count, add to a known
error, move "last seen" evidence: :data:`~workshop_lib.logs.templates.BULK_KINDS`) is applied in bulk once every
accumulator has seen it, or after its first occurrence in the block is added in full; its last occurrence is visited
in line order when it moves evidence. UCX_PROTO_INFO table lines repeat cheaply in order (and in bulk when no row can
add a class); generic error lines (tracebacks group by adjacency) are looked up by their text cut at the shape's span;
anything else goes through :meth:`~workshop_lib.logs.accumulator.Accumulator.add` line by line.
``tests/unit/test_logs_fastscan.py``, ``test_logs_shapescan.py`` and ``test_logs_review5.py`` check that the result
equals the uncached path (``diagnose.feed_uncached``) on every fixture, the corpus and fuzzed mixes. Memory: one block
buffer, the caches (bounded: pruned or cleared when full) and capped evidence.

Example:
    >>> import tempfile, os
    >>> from workshop_lib.logs.accumulator import Accumulator
    >>> with tempfile.NamedTemporaryFile("wb", delete=False) as f:
    ...     _ = f.write(b"I1207 19:34:40.1 1 a.cpp:1] HANDSHAKE received from peer with explicit fi_addr 1\\n" * 3)
    >>> acc = Accumulator()
    >>> feed_file(f.name, [acc])
    3
    >>> acc.handshakes, acc.handshake_ev.line
    (3, 1)
    >>> os.unlink(f.name)
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from itertools import accumulate, compress, repeat
from operator import add, is_, not_
from pathlib import Path

from workshop_lib.logs import patterns as P
from workshop_lib.logs.scan import FileScan
from workshop_lib.logs.shapes import NORM, exact_spans, shape_of
from workshop_lib.logs.templates import (
    BULK_KINDS,
    COUNT,
    ERR_KINDS,
    GEN,
    NEG,
    REF_KINDS,
    UCXHDR,
    UCXROW,
    Template,
    apply_bulk,
    bulk_of,
    template,
    text_span,
    visit,
)

CACHE_MAX = 1 << 16  # entries per cache level; a full cache is cleared (constant memory)
ONCE_MAX = 1 << 14  # shapes remembered as seen once (enough to catch the ones that come back within a block)
LINES_MAX = 1 << 18  # lines per native batch (28 bytes of arrays each: bounded memory on a block of empty lines)
REFILL = 1 << 12  # lines without a value handed to Python per batch (C fills in the rest after each batch)
LONG_LINE = 1 << 10  # longer lines are classified each time, never cached (cache keys stay small: bounded memory)
NATIVE_LONG_LINE = 1 << 12  # the same for the C tables, bounded by their bytes instead (ARENA_MAX)
ARENA_MAX = 48 << 20  # bytes of shapes and exact keys the C tables may hold; past it they are cleared
_KEYS = P.SCAN_KEYS_BYTES


# What can make a shape a candidate: the prefilter keys. No rule key holds a digit any more; the abseil level keys do
# (``E1``/``F1``), and their shapes read ``E0``/``F0``, which are keys too.
_SHAPE_KEYS: tuple[bytes, ...] = _KEYS


def _keyed(norms: list[bytes]) -> set[int]:
    """Indexes of the shapes that contain a prefilter key, found with one ``bytes.find`` pass per key over all of
    them joined (so keyless shapes cost no Python work); a shape not listed is keyless for every digit value."""
    buf = b"\n".join(norms) + b"\n"
    offs = list(accumulate(map(add, map(len, norms), repeat(1)), initial=0))
    hit: set[int] = set()
    find = buf.find
    for key in _SHAPE_KEYS:
        p = find(key)
        while p >= 0:
            k = bisect_right(offs, p) - 1
            hit.add(k)
            p = find(key, offs[k + 1])
    return hit


class _Exact:
    """The shape cache's value for a digit-sensitive shape: its lines are looked up by the shape plus the bytes of
    the spans whose digits matter (:func:`~workshop_lib.logs.shapes.exact_spans`); ``None``: by the whole line."""

    __slots__ = ("spans",)

    def __init__(self, spans: tuple[tuple[int, int], ...] | None) -> None:
        self.spans = spans

    def key(self, raw: bytes) -> tuple:
        """The message-cache key: this shape (the object itself: one per cached shape) and the digits that matter."""
        if self.spans is None:
            return (raw,)
        return (self, *[raw[a:b] if vals is None else _which(raw[a:b], vals) for a, b, vals in self.spans])


def _which(x: bytes, vals: tuple[bytes, ...]) -> int:
    """Which of ``vals`` ``x`` equals (-1: none): a compared number counts only through that."""
    return vals.index(x) if x in vals else -1


def _new_shape(norm: bytes, value: Callable[[], object]) -> object:
    """The shape cache's value for a digit-normalised line: ``value()`` (one of its lines classified: ``NEG`` or a
    template) when the digits cannot matter, else an :class:`_Exact` (its lines are looked up by the digits that
    matter)."""
    spans = exact_spans(norm) if b"0" in norm else ()  # no digit at all: the shape is the line itself
    return value() if spans == () else _Exact(spans)


def _resolve(vals: list, norm_lines: list[bytes], block: bytes, starts: list[int], shape: dict, mcache: dict,
             once: set, source: str) -> None:
    """Turn every value of ``vals`` into a template or ``NEG``, in place: a line of a new shape is classified (the
    shape is worked out and cached when it comes back, ``once`` holds those seen once), and digit-sensitive lines (an
    :class:`_Exact` in the shape cache) are looked up by the digits that matter. ``norm_lines`` are digit-normalised
    only (``bytes.translate``); a line that misses and may hold an id is looked up again by its full shape
    (:func:`~workshop_lib.logs.shapes.shape_of`, ids masked), as the C scanner keys it."""
    n = len(vals)
    miss = list(compress(range(n), map(is_, vals, repeat(None))))
    if len(miss) > 64:  # many new shapes (e.g. unique request ids): settle the keyless ones in bulk first
        uniq = list(dict.fromkeys(map(norm_lines.__getitem__, miss)))
        keyed = _keyed(uniq)
        keyless = dict.fromkeys(compress(uniq, map(not_, map(keyed.__contains__, range(len(uniq))))), NEG)
        vals[:] = map(keyless.get, norm_lines, vals)  # not cached: such shapes rarely come back
        miss = list(compress(range(n), map(is_, vals, repeat(None))))
    for i in miss:
        norm = norm_lines[i]
        v = shape.get(norm)
        if v is None and (b"0x" in norm or b"-" in norm):  # a line with ids: cached under its shape with them masked
            norm = shape_of(block[starts[i]:starts[i + 1] - 1])
            v = shape.get(norm)
        if v is None:
            if len(norm) > LONG_LINE:  # never cached: the caches hold at most CACHE_MAX lines of LONG_LINE bytes
                v = template(block[starts[i]:starts[i + 1] - 1], source)
            elif norm in once:  # seen before: work the shape out and cache it
                v = shape[norm] = _new_shape(norm, lambda i=i: template(block[starts[i]:starts[i + 1] - 1], source))
            else:  # first sight (most such shapes never come back: unique ids): classify this line only
                once.add(norm)
                v = template(block[starts[i]:starts[i + 1] - 1], source)
        vals[i] = v
    get = mcache.get
    for i in compress(range(n), map(is_, map(type, vals), repeat(_Exact))):
        key = vals[i].key(block[starts[i]:starts[i + 1] - 1])
        v = get(key)
        if v is None:
            v = mcache[key] = template(block[starts[i]:starts[i + 1] - 1], source)
        vals[i] = v


def feed_file(path: str | Path, accs: Sequence, chunk: int = 8 << 20, max_line: int = 8 << 20,
              scanner: str | None = None) -> int:
    """Feed the events of one file into the accumulators, in line order; returns the file's line count.

    Per block, at C speed: split, digit-normalise, look every shape up, count the values. Python then visits only
    the lines that can change more than a counter: new shapes, digit-sensitive lines (message cache), templates an
    accumulator has not seen yet, generic errors (tracebacks group by adjacency) and, for "last seen" evidence,
    the last occurrence of each template in the block. The C part is :mod:`workshop_lib.logs.shapescan`'s library when
    it can be had (``scanner`` None or ``"native"``), else (or with ``scanner="python"``) Python's own bytes methods;
    both give the same events (``tests/unit/test_logs_shapescan.py``).

    Raises:
        LogParseError: the file is missing, a directory or unreadable.
    """
    lib = None
    if scanner != "python":
        from workshop_lib.logs import shapescan as native

        lib = native.load()
        if lib is None and scanner == "native":
            raise OSError(f"native scanner unavailable: {native.scanner()}")
    if lib is None:
        return _feed_python(path, accs, chunk, max_line)
    return _feed_native(lib, path, accs, chunk, max_line)


def _feed_python(path: str | Path, accs: Sequence, chunk: int, max_line: int) -> int:
    """:func:`feed_file` with Python's bytes methods doing the per-line work."""
    source = str(path)
    scan = FileScan(path, chunk=chunk, max_line=max_line)
    shape: dict[bytes, object] = {}
    once: set[bytes] = set()
    mcache: dict[bytes, object] = {}
    seen: list[set] = [set() for _ in accs]
    base = 0
    for block in scan.chunks(count=False):
        norm_lines = block.translate(NORM).split(b"\n")
        norm_lines.pop()  # the block ends with a newline
        if len(block) > max_line and max(map(len, norm_lines)) > max_line:  # cut over-long lines like FileScan
            block = b"".join(x[:max_line] + b"\n" for x in block.split(b"\n")[:-1])
            norm_lines = [x[:max_line] for x in norm_lines]
        n = len(norm_lines)
        starts = list(accumulate(map(add, map(len, norm_lines), repeat(1)), initial=0))
        if len(shape) > CACHE_MAX:
            shape.clear()
        if len(once) > ONCE_MAX:
            once.clear()
        if len(mcache) > CACHE_MAX:
            mcache.clear()
        vals = list(map(shape.get, norm_lines))
        _resolve(vals, norm_lines, block, starts, shape, mcache, once, source)
        bc = Counter(vals)
        bulk = bulk_of(bc, seen, accs)
        skip = bulk | {NEG}
        last_of = dict(zip(vals, range(n), strict=True)) if bulk else {}  # later indices win: the last occurrence
        last = {t: last_of[t] for t in bulk if t.kind in ERR_KINDS or t.kind in REF_KINDS}
        ref_last = {last[t]: t for t in bulk if t.kind in REF_KINDS}
        mask = list(map(not_, map(skip.__contains__, vals)))
        for i in ref_last:
            mask[i] = True
        visit(accs, seen, {base + i + 1 for i in ref_last},
              ((base + i + 1, vals[i], block[starts[i]:starts[i + 1] - 1], None) for i in compress(range(n), mask)),
              source)
        apply_bulk(accs, bulk, bc, last, base)
        base += n
    return base


class _Once:
    """A native shape seen once, with the value its line got (kept when the shape turns out safe)."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value


def _feed_native(lib: object, path: str | Path, accs: Sequence, chunk: int, max_line: int) -> int:
    """:func:`feed_file` with ``native/shapescan.c`` doing the per-line work: shape ids (byte-exact), the values
    Python decided per shape, counts, last occurrences and the lines to visit."""
    import ctypes

    from workshop_lib.logs import shapescan as native

    source = str(path)
    scan = FileScan(path, chunk=chunk, max_line=max_line)
    find = native.rule_filter(lib)  # the C key search: the prefilter and each new line's candidate rules
    ctx = lib.ss_new(NATIVE_LONG_LINE)
    if not ctx:
        raise MemoryError("shapescan: ss_new failed")
    vobjs: list = []  # value id -> template or NEG
    vid_of: dict[object, int] = {}
    sstate: dict[int, object] = {}  # shape id -> _Once, an _Exact, or its value
    tspans: dict[int, tuple[int, int] | None] = {}  # shape id -> where its lines' error-table text is
    mcache: dict[tuple, object] = {}
    seen: list[set] = [set() for _ in accs]
    cap = LINES_MAX
    starts, sids, kids, vids, idx = [(t * (cap + 2))() for t in (ctypes.c_int64, *[ctypes.c_int32] * 3, ctypes.c_int64)]
    base = 0

    def vid(v: object) -> int:  # the value's id (a new one for a new value)
        if (x := vid_of.get(v)) is None:
            x = vid_of[v] = len(vobjs)
            vobjs.append(v)
        return x

    chunks = scan.views()  # no copy per block: views into one reused buffer (each read before the next)
    pending: list = []  # the rest of a block with more lines than LINES_MAX
    try:
        while True:
            block = pending.pop() if pending else next(chunks, None)
            if block is None:
                break
            if not block:  # FileScan yields an empty block while a line is longer than its chunk
                continue
            if lib.ss_count(ctx) > CACHE_MAX and len(vobjs) <= CACHE_MAX:  # mostly shapes seen once (unique ids):
                m = (ctypes.c_int32 * lib.ss_count(ctx))()  # forget those, keep the ones with a value
                if lib.ss_prune(ctx, m) < 0:
                    raise MemoryError("shapescan: out of memory")
                sstate = {m[k]: v for k, v in sstate.items() if m[k] >= 0}
                tspans.clear()
            if max(lib.ss_count(ctx) * 2, lib.ss_keys(ctx), len(vobjs)) > CACHE_MAX or lib.ss_bytes(ctx) > ARENA_MAX:
                if lib.ss_clear(ctx):
                    raise MemoryError("shapescan: out of memory")
                sstate.clear()
                tspans.clear()
                vobjs.clear()
                vid_of.clear()
            if len(mcache) > CACHE_MAX:
                mcache.clear()
            while True:
                addr = _address(block)
                n = lib.ss_scan(ctx, addr, len(block), starts, sids, kids, vids, cap)
                if n < 0:
                    raise MemoryError("shapescan: out of memory")
                if starts[n + 1] <= max_line:
                    break
                block = b"".join(x[:max_line] + b"\n" for x in bytes(block).split(b"\n")[:-1])  # cut like FileScan
            if starts[n] < len(block):  # more lines than the arrays hold (bounded memory): these now, the rest next
                pending.append(block[starts[n]:])
                block = block[:starts[n]]
                addr = _address(block)  # a bytes block was copied: the old address is freed
            pos = 0
            while True:  # the lines without a value, a batch at a time: C fills in what Python just decided
                m = lib.ss_refill(ctx, addr, starts, sids, kids, vids, pos, n, idx, REFILL)
                if m < 0:
                    raise MemoryError("shapescan: out of memory")
                if m == 0:
                    break
                todo = idx[:m]
                pos = todo[-1] + 1
                for i in todo:
                    raw = bytes(block[starts[i]:starts[i + 1] - 1])
                    s = sids[i]
                    st = sstate.get(s) if s >= 0 else None
                    if s < 0:  # a long line: classified each time
                        v = template(raw, source, find)
                    elif st is None:  # first sight (most such shapes never come back: unique ids): this line only
                        v = template(raw, source, find)
                        sstate[s] = _Once(v)
                    else:
                        if st.__class__ is _Once:  # seen before: work the shape out (a safe shape keeps its value)
                            st = sstate[s] = _new_shape(shape_of(raw), lambda st=st: st.value)
                            if st.__class__ is not _Exact:
                                lib.ss_set(ctx, s, vid(st))
                            elif st.spans is None:  # keyed by the whole line
                                lib.ss_spans(ctx, s, None, -1, None, 0)
                            else:  # keyed by its spans: their bytes, or which listed value they equal
                                triples, blob = native.span_args(st.spans)
                                lib.ss_spans(ctx, s, triples, len(st.spans), blob, len(blob))
                        if st.__class__ is _Exact:
                            if st.spans is None and len(raw) > LONG_LINE:  # keyed by a long line: not kept
                                v = template(raw, source, find)
                            else:
                                key = st.key(raw)
                                v = mcache.get(key)
                                if v is None:
                                    v = mcache[key] = template(raw, source, find)
                            if kids[i] >= 0:  # C keys this line's digits: later lines with them get v there
                                lib.ss_setk(ctx, kids[i], vid(v))
                        else:
                            v = st
                    vids[i] = vid(v)
            nv = len(vobjs)
            count, first_at, last_at = [(ctypes.c_int64 * nv)() for _ in range(3)]
            touched = (ctypes.c_int32 * nv)()
            nt = lib.ss_tally(vids, n, nv, count, first_at, last_at, touched)
            if nt < 0:
                raise RuntimeError("shapescan: a line without a value")
            tv = {vobjs[x]: x for x in touched[:nt]}
            bc = {t: count[x] for t, x in tv.items()}
            bulk = bulk_of(bc, seen, accs)
            # New in this block, but a repeat only counts or moves evidence: the first occurrence is added in full,
            # the others in bulk after it (and the last one's "last seen" evidence in line order).
            fresh = {t for t, x in tv.items() if t.__class__ is Template and t.kind in BULK_KINDS
                     and t not in bulk and count[x] > 1}
            table = _table_bulk(tv, seen, accs)  # UCX_PROTO_INFO lines that can change nothing here
            skip = bulk | fresh | table | {NEG}
            last = {t: last_at[tv[t]] for t in (*bulk, *fresh) if t.kind != COUNT}
            refs_only = {last[t] for t in (*bulk, *fresh) if t.kind in REF_KINDS}
            flag = bytearray(nv)
            for t, x in tv.items():
                if t not in skip:
                    flag[x] = 1
            k = lib.ss_select(vids, n, (ctypes.c_char * max(nv, 1)).from_buffer(flag), idx)
            order = idx[:k]
            if refs_only or fresh:
                order = sorted([*order, *refs_only, *(first_at[tv[t]] for t in fresh)])
            visit(accs, seen, {base + i + 1 for i in refs_only}, _lines(block, starts, sids, vids, vobjs, order, base,
                                                                        tspans), source)
            apply_bulk(accs, fresh, {t: bc[t] - 1 for t in fresh}, last, base)
            apply_bulk(accs, table, bc, last, base)
            headers = [t for t in table if t.kind == UCXHDR]
            if headers:  # the rows after this block carry the last header's operation
                op = max(headers, key=lambda t: last_at[tv[t]]).op
                for acc in accs:
                    acc.ucx_table_header(source, op)
            apply_bulk(accs, bulk, bc, last, base)
            base += n
    finally:
        lib.ss_free(ctx)
    return base


def _table_bulk(tv: dict, seen: list[set], accs: Sequence) -> set:
    """The UCX_PROTO_INFO templates of a block whose lines only count: rows whose classes every accumulator holds
    for both operations, and, when every row is such, the headers (all seen before; then only the last header's
    operation matters, set after the block)."""
    rows, headers = [], []
    for t in tv:
        if t.__class__ is Template and t.kind in (UCXROW, UCXHDR):
            (rows if t.kind == UCXROW else headers).append(t)
    quiet = {t for t in rows if all(t in s for s in seen) and all(a.ucx_knows(t.classes) for a in accs)}
    if len(quiet) == len(rows) and headers and all(t in s for t in headers for s in seen):
        quiet.update(headers)
    return quiet


def _lines(block: memoryview | bytes, starts, sids, vids, vobjs: list, order: list[int], base: int,  # noqa: ANN001
           tspans: dict) -> Iterator[tuple[int, object, bytes, tuple | None]]:
    """The visited lines for :func:`~workshop_lib.logs.templates.visit`: a generic error's text key is cut from its
    bytes at its shape's span (:func:`~workshop_lib.logs.templates.text_span`, worked out once per shape)."""
    for i in order:
        v = vobjs[vids[i]]
        raw = bytes(block[starts[i]:starts[i + 1] - 1])
        tk = None
        if v.__class__ is Template and v.kind == GEN and (s := sids[i]) >= 0:
            sp = tspans.get(s, False)
            if sp is False:
                sp = tspans[s] = text_span(raw)
            if sp is not None:
                tk = ("GENERIC_ERROR", raw[sp[0]:sp[1]].decode("ascii"))
        yield base + i + 1, v, raw, tk


def _address(block: memoryview | bytes) -> int:
    """The address of a block's first byte for the C scanner (a view into FileScan's buffer, or bytes)."""
    import ctypes

    if isinstance(block, memoryview):
        return ctypes.addressof(ctypes.c_char.from_buffer(block))
    return ctypes.cast(ctypes.c_char_p(block), ctypes.c_void_p).value or 0


