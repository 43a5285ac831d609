"""Templates: one classified outcome shared by every line that gets it, and what a repeat of it changes.

The fast scan (:mod:`workshop_lib.logs.fastscan`) classifies a line once per shape or exact key and hands the
accumulators a :class:`LazyEvent` (the shared :class:`Template` plus this line's number and bytes). A template's
``kind`` says what a repeat does, so repeats that only count or move "last seen" evidence are applied in bulk
(:func:`bulk_of`, :func:`apply_bulk`) and the rest line by line in order (:func:`visit`); every path gives exactly what
:meth:`~workshop_lib.logs.accumulator.Accumulator.add` gives line by line (``tests/unit/test_logs_fastscan.py``).

Example:
    >>> t = template(b"HANDSHAKE received from peer with explicit fi_addr 7", "x")
    >>> t.kind == REF, t.handshake, template(b"nothing to see", "x") is NEG
    (True, True, True)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

from workshop_lib.logs import patterns as P
from workshop_lib.logs.accumulator import (
    EXPLICIT_BACKEND,
    HANDSHAKE_EVENTS,
    HELD_CODES,
    MAX_ERRORS,
    STRONG_PROVIDER,
    only_notes_a_plugin,
    tl_classes,
    ucx_table_op,
)
from workshop_lib.logs.parser import TEXT_MAX, Event, classify, strip_prefixes, to_text

CACHE_MAX = 1 << 16  # distinct outcomes kept (a full table is cleared: constant memory)
SEEN_MAX = 1 << 16  # templates an accumulator is known to have seen
NEG = object()  # no key or no event
_COPIED = ("event", "code", "detail", "backend", "provider", "component", "devices", "rails", "transport", "level")
_KEYS = P.SCAN_KEYS_BYTES


class LazyEvent:
    """An :class:`Event` made of a cached template plus this line's number and bytes (text decoded on demand).

    The fields the accumulator reads are copied from the template (plain slot reads); any other comes from it."""

    __slots__ = ("tpl", "line", "raw", "source", "_text", *_COPIED)

    def __init__(self, tpl: Event, line: int, raw: bytes, source: str) -> None:
        self.tpl, self.line, self.raw, self.source, self._text = tpl, line, raw, source, None
        (self.event, self.code, self.detail, self.backend, self.provider, self.component, self.devices, self.rails,
         self.transport, self.level) = (tpl.event, tpl.code, tpl.detail, tpl.backend, tpl.provider, tpl.component,
                                        tpl.devices, tpl.rails, tpl.transport, tpl.level)

    @property
    def text(self) -> str:
        if self._text is None:
            msg, _, _ = strip_prefixes(to_text(self.raw))
            self._text = msg.strip()[:TEXT_MAX]
        return self._text

    def __getattr__(self, name: str) -> object:
        return getattr(self.tpl, name)


COUNT, REF, ERR, GEN, FULL, ERREF, UCXHDR, UCXROW = range(8)  # what a repeat of a template does (see Template)
BULK_KINDS = (COUNT, REF, ERR, ERREF)  # repeats that commute: applied in bulk once every accumulator has seen one
ERR_KINDS = (ERR, ERREF)
REF_KINDS = (REF, ERREF)


class Template:
    """A cached outcome: the template event and what a repeat occurrence changes in an accumulator.

    ``kind`` COUNT: only the event counter (every other effect of :meth:`Accumulator.add` keeps the first
    occurrence; a code held until the provider is known, ``NO_GPUDIRECT_RAIL``, keeps its first line too); REF: also
    the "last seen" evidence (explicit backend, provider) and the handshake count; ERR: a known failure code's count
    and last line; ERREF: both (an EFA abort naming its provider); GEN: a generic error line that may continue the
    previous one (a traceback); UCXHDR/UCXROW: a UCX_PROTO_INFO table line (a header sets the operation, a row adds
    its transport classes; one that also names a backend or provider is FULL); FULL: anything else, replayed through
    ``add``.
    """

    __slots__ = ("ev", "kind", "event", "explicit", "strong", "weak", "handshake", "backend", "provider", "code",
                 "op", "classes")

    def __init__(self, ev: Event) -> None:
        e = ev.event
        self.ev, self.event, self.code = ev, (None if e == "line" else e), ev.code
        notes = not only_notes_a_plugin(ev)  # add stops before the backend and provider for such a line
        self.explicit = bool(notes and e in EXPLICIT_BACKEND and ev.backend)
        self.strong = bool(notes and e in STRONG_PROVIDER and ev.provider
                           and not (e == "nixl.efa_devices" and not ev.devices))
        self.weak = bool(notes and not self.strong and ev.provider and ev.component == "libfabric" and e not in (
            "libfabric.provider_rejected", "libfabric.efa_caps_unsupported", "benign"))
        self.handshake = e in HANDSHAKE_EVENTS
        self.backend = ev.backend.upper() if ev.backend else None
        self.provider = ev.provider
        ref = self.explicit or self.strong or self.weak or self.handshake
        # A UCX_PROTO_INFO table's header sets the operation the rows after it carry; a row's transport classes
        # count for that operation (first evidence per class): in line order, cheaply. "|", "cfg#" and the
        # operation's words are in every line of a shape or in none.
        table = e == "ucx.transport" and "|" in ev.text
        self.op = ucx_table_op(ev.text) if table else None
        self.classes = tl_classes(ev.transport) if table else ()
        if table and not ref:
            self.kind = UCXHDR if "cfg#" in ev.text else UCXROW
        elif table:  # a table line that also names a backend or provider (behind a libfabric header): replayed
            self.kind = FULL
        elif e == "nixl.efa_devices" or e == "vllm.metric" or (ev.code == "GENERIC_ERROR" and ref):
            self.kind = FULL  # a metric's value is read from the line (the largest is kept)
        elif ev.code == "GENERIC_ERROR":
            self.kind = GEN
        elif ev.code and ev.code not in HELD_CODES:
            self.kind = ERREF if ref else ERR
        else:
            self.kind = REF if ref else COUNT


def repeat_cheaply(t: Template, acc: object, no: int, raw: bytes, source: str, text_key: tuple | None = None) -> bool:
    """Apply a repeat occurrence of ``t`` to ``acc`` the cheap way; False when it needs the full ``add``.

    ``text_key``: for a generic error, the error table's key for this line (``("GENERIC_ERROR", its text[:80])``),
    when the caller knows it without decoding the line (:func:`text_span`)."""
    kind = t.kind
    if kind == ERR or kind == ERREF:
        entry = acc.errors.get((t.code, ""))
        if entry is None:
            return False
        entry.count += 1
        entry.last_line = no
        acc.last_generic = None
    if kind == REF or kind == ERREF:
        set_refs(t, acc, LazyEvent(t.ev, no, raw, source))
        if t.handshake:
            acc.handshakes += 1
    elif kind == UCXHDR:
        acc.ucx_table_header(source, t.op)
    elif kind == UCXROW:
        acc.ucx_table_row(source, t.classes, lambda: LazyEvent(t.ev, no, raw, source))
    elif kind == GEN:
        last = acc.last_generic
        if last is not None and last.last_line + 1 == no and last.ev.source == source:  # one traceback
            last.count += 1
            last.last_line = no
        else:  # what Accumulator._add_error does with a new generic error, without building the event
            if text_key is None:
                return False
            entry = acc.errors.get(text_key)
            if entry is not None:
                entry.count += 1
                entry.last_line = no
            elif len(acc.errors) < MAX_ERRORS:
                return False  # a new entry keeps this line as its evidence: the full add
            else:
                acc.errors_dropped += 1
            acc.last_generic = entry
    elif kind == FULL:
        return False
    if t.event:
        acc.counts[t.event] += 1
    return True


KEY_RE = re.compile(b"|".join(re.escape(k) for k in sorted(_KEYS, key=len, reverse=True)))


def template(raw: bytes, source: str, find: Callable[[bytes], tuple | None] | None = None) -> object:
    """Classify one line in full: a :class:`Template`, or ``NEG`` when it has no key or no event.

    ``find``: the C key search (:func:`workshop_lib.logs.shapescan.rule_filter`) when the native scanner runs: the
    prefilter and the rules a line's keys allow (the same events, fewer key tests in Python)."""
    if find is None:
        if KEY_RE.search(raw) is None:
            return NEG
        rules = None
    elif (rules := find(raw)) is None:  # no prefilter key in the line
        return NEG
    elif b"\x1b" in raw:  # ANSI colour inside a key hides it from the byte search; classify strips colour first
        rules = None
    ev = classify(raw, 0, source, prefiltered=True, rules=rules)
    if ev is None:
        return NEG
    if ev.detail is not None or ev.event == "ucx.transport" or ev.code == "GENERIC_ERROR":
        return Template(ev)  # what the accumulator does with these reads the line's text: never shared
    key = (ev.event, ev.code, ev.detail, ev.backend, ev.provider, ev.component, ev.devices, ev.rails, ev.level,
           ev.transport)
    t = _INTERNED.get(key)
    if t is None:
        if len(_INTERNED) > CACHE_MAX:
            _INTERNED.clear()
        t = _INTERNED[key] = Template(ev)
    return t


# One template per distinct outcome: lines that differ only in what the accumulator never reads (a timestamp in the
# message, an address, another error number of the same code) share it, so "seen" and the bulk counts apply to them.
# The key holds every event field the accumulator reads; the line's number and text come from the line itself (a
# LazyEvent), and events whose effect reads the text (versions and paths, metric values, UCX tables, generic errors
# keyed by their text) are never shared.
_INTERNED: dict[tuple, Template] = {}


def bulk_of(bc: dict, seen: list[set], accs: Sequence) -> set:
    """The templates whose repeats in this block are applied in bulk (every accumulator has seen them)."""
    if len(accs) == 1:  # the common case, without the generators
        s0, errs = seen[0], accs[0].errors
        return {t for t in bc if t.__class__ is Template and t.kind in BULK_KINDS and t in s0
                and (t.kind not in ERR_KINDS or (t.code, "") in errs)}
    return {t for t in bc if t.__class__ is Template and t.kind in BULK_KINDS
            and all(t in s for s in seen)
            and (t.kind not in ERR_KINDS or all((t.code, "") in a.errors for a in accs))}


def visit(accs: Sequence, seen: list[set], refs_only: set[int],
          lines: Iterable[tuple[int, object, bytes, tuple | None]], source: str) -> None:
    """Apply the visited lines ``(line number, template, bytes, text key)`` in order: the line numbers in
    ``refs_only`` (the last occurrence of a REF template whose repeats count in bulk) set the "last seen" evidence
    only; anything else is a cheap repeat (a generic error's text key, when known, saves decoding the line) or a full
    ``add``."""
    for no, v, raw, tk in lines:
        if no in refs_only:  # the last occurrence of a bulk REF template: the "last seen" evidence only
            for acc in accs:
                set_refs(v, acc, LazyEvent(v.ev, no, raw, source))
            continue
        for j, acc in enumerate(accs):
            s = seen[j]
            if v in s and repeat_cheaply(v, acc, no, raw, source, tk):
                continue
            if len(s) > SEEN_MAX:
                s.clear()
            s.add(v)
            acc.add(LazyEvent(v.ev, no, raw, source))


def text_span(raw: bytes) -> tuple[int, int] | None:
    """Where a line's error-table text (``Event.text[:80]``: the message after the pod and process prefixes,
    stripped) sits in its bytes; None when that is not a plain byte span (not ASCII, or ANSI colour). Prefixes and
    whitespace are tested without looking at digits, so every line of one shape has the same span.

    Example:
        >>> raw = b"[pod/decode-0/main] ERROR 12-07 10:00:01 [x.py:1] boom  "
        >>> a, b = text_span(raw)
        >>> raw[a:b]
        b'ERROR 12-07 10:00:01 [x.py:1] boom'
    """
    if not raw.isascii() or b"\x1b" in raw:
        return None
    text = to_text(raw)
    msg, _, _ = strip_prefixes(text)
    a = len(text) - len(msg) + len(msg) - len(msg.lstrip())
    return a, a + min(len(msg.strip()), 80)


def apply_bulk(accs: Sequence, bulk: set, bc: dict, last: dict, base: int) -> None:
    """Add each bulk template's count for the block (its last line for ERR) to every accumulator."""
    for t in bulk:
        k = bc[t]
        for acc in accs:
            if t.event:
                acc.counts[t.event] += k
            if t.kind in ERR_KINDS:
                entry = acc.errors.get((t.code, ""))
                if entry is None:  # the error table was full when the first one came: each repeat is dropped too
                    acc.errors_dropped += k
                    continue
                entry.count += k
                entry.last_line = max(entry.last_line, base + last[t] + 1)
            elif t.handshake:
                acc.handshakes += k


def set_refs(t: Template, acc: object, ref: LazyEvent) -> None:
    if t.explicit:
        acc.backend_explicit = (t.backend, ref)
    if t.strong:
        acc.provider_strong = (t.provider, ref)
    elif t.weak:
        acc.note_weak_provider(t.provider, ref)
