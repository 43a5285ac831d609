"""Line shapes: when can two lines that differ only in their digits share one classification?

A line's *shape* is the line with every digit replaced by ``0``, and in a plain-ASCII line without ANSI colour the hex
digits of every id (a 0x address, a uuid: :data:`~workshop_lib.logs.patterns.ID_RE`) too (:func:`shape_of`; the C
scanner computes the same). Rules read ids as zeros (:func:`~workshop_lib.logs.patterns.mask_ids`), so an id never
decides which rule matches or where; no prefilter key can overlap an id (:func:`can_overlap_id`, checked when this
module loads). The fast scanner
(:mod:`workshop_lib.logs.fastscan`) classifies a shape once and reuses the answer for every line of that shape when
:func:`shape_is_safe` says the digits cannot change the outcome. That is decided exactly, per shape, from the rules
themselves (new rules are covered without a list to keep up to date):

- Every line format, prefix and rule regex tests digits only as a class (``\\d``, ``\\w``, ``[^|]``...), never as a
  literal: a number a signature depends on is captured and compared in the rule's ``when`` (``returned -61`` is
  ``returned -(?P<errno>\\d\\d)`` with ``errno`` = 61). :func:`generalize` (each literal digit to ``\\d``, digit
  lookarounds dropped) must leave every regex unchanged; this module checks that when it loads. Such a regex takes
  the same path on every line of a shape, so running it on the shape tells where it matches on all of them.
- A shape is unsafe when a rule that can match it captures a value (devices, rails, provider, backend, rail index,
  metric...) at a place holding a digit or an id (read as written), when a rule's condition compares a captured
  number, when the libfabric header's provider or level field holds a digit (``sm2`` and ``sm7`` are other
  providers), when a plugin name holds one, or when the line is a prefilter candidate only for some digits (its only
  keys are ``E0``/``E1``/``F0``/``F1``). A version or the plugin directory does not count: the accumulator reads it
  from the first line of its event only, and a shape's first line is classified in full.

The lines of an unsafe shape are looked up by the shape plus the digits of the spans that matter
(:func:`exact_spans`): a value's bytes, or for a compared number only which of the rule's values it equals.
:func:`message_key` splits a line into its header and message (the header digit-normalised).

Example:
    >>> shape_is_safe(b"I0000 00:00:00.000000 0 a.cpp:0] HANDSHAKE received from peer with explicit fi_addr 0")
    True
    >>> shape_is_safe(b"I0000 00:00:00.000000 0 a.cpp:0] Discovered 0 EFA devices")
    False
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from workshop_lib.logs import patterns as P
from workshop_lib.logs.accumulator import FIRST_DETAIL_ONLY
from workshop_lib.logs.parser import PLUGIN_NAME_RE, split_prefixes, to_text

DIGITS = bytes(range(48, 58))
NORM = bytes.maketrans(DIGITS, b"0" * 10)  # every digit to "0": a line's shape


def generalize(pattern: str) -> str:
    """``pattern`` with each literal digit as ``\\d`` and each lookaround that holds a digit dropped (a superset).

    Character classes, ``{m,n}`` quantifiers and group names are kept as written.

    Example:
        >>> generalize(r"Exit Code:\\s+137\\b"), generalize(r"returned (?P<e>-(?!61\\b)\\d+)")
        ('Exit Code:\\\\s+\\\\d\\\\d\\\\d\\\\b', 'returned (?P<e>-\\\\d+)')
    """
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            k = 4 if pattern[i + 1:i + 2] == "x" else 2  # \x1b: its hex digits are not text
            out.append(pattern[i:i + k])
            i += k
        elif pattern.startswith(("(?P<", "(?P="), i):
            j = pattern.index(">" if pattern[i + 3] == "<" else ")", i)
            out.append(pattern[i:j + 1])
            i = j + 1
        elif pattern.startswith(("(?!", "(?=", "(?<!", "(?<="), i):
            j = _group_end(pattern, i)
            body = pattern[i:j + 1]
            if not re.search(r"[0-9]|\\d", re.sub(r"\{\d+(?:,\d*)?\}", "", body)):
                out.append(body)
            i = j + 1
        elif c == "{":
            j = pattern.index("}", i)
            out.append(pattern[i:j + 1])
            i = j + 1
        elif c == "[":
            j = i + 1 + (pattern[i + 1] == "^")
            j += pattern[j] == "]"
            while pattern[j] != "]":
                j += 2 if pattern[j] == "\\" else 1
            out.append(pattern[i:j + 1])
            i = j + 1
        else:
            out.append(r"\d" if c.isdigit() else c)
            i += 1
    return "".join(out)


def _group_end(pattern: str, i: int) -> int:
    depth, j = 0, i
    while True:
        if pattern[j] == "\\":
            j += 2
            continue
        depth += {"(": 1, ")": -1}.get(pattern[j], 0)
        if depth == 0:
            return j
        j += 1


Span = tuple[int, int, tuple[bytes, ...] | None]  # (start, end, None: its bytes count | the values that count)


@dataclass(frozen=True)
class Probe:
    """A rule seen from a shape: its key (digit-normalised), regex, the value groups whose digits matter, and the
    groups a condition compares with literal values (``Rule.when``: only which value, or none, counts)."""

    key: str
    regex: re.Pattern[str]
    groups: tuple[str | int, ...]
    preds: tuple[tuple[str, tuple[bytes, ...]], ...] = ()


def _probe(key: str, rx: re.Pattern[str], groups: tuple[str | int, ...], when: tuple = ()) -> Probe:
    if generalize(rx.pattern) != rx.pattern:
        raise AssertionError(f"a rule tests a literal digit (capture it and put the value in `when`): {rx.pattern}")
    preds = tuple((g, tuple(sorted(v.encode() for v in values))) for g, _, values in when)
    return Probe(key.translate(str.maketrans("123456789", "0" * 9)), rx, groups, preds)


def _value_groups(rule: P.Rule) -> tuple[str, ...]:
    """The groups of ``rule`` whose value the accumulator reads from every line (a version or the plugin directory
    is read from the first line of its event only: :data:`~workshop_lib.logs.accumulator.FIRST_DETAIL_ONLY`)."""
    groups = set(rule.regex.groupindex) & P.VALUE_GROUPS
    if rule.event in FIRST_DETAIL_ONLY:
        groups -= {"detail", "detail2"}
    return tuple(sorted(groups))


PROBES: tuple[Probe, ...] = (
    *(_probe(r.key, r.regex, _value_groups(r), r.when) for r in P.RULES_BY_PRIORITY),
    *(_probe("", rx, (), when) for rx, when in P.BENIGN_RULES),
    _probe("", PLUGIN_NAME_RE, (1, 2)),
)
_FORMATS = tuple((f.name, f.regex) for f in P.FORMATS)
for _name, _rx in (*((f.name, f.regex) for f in P.FORMATS), *((r.pattern, r) for r in (
        P.KUBECTL_PREFIX_RE, P.STERN_PREFIX_RE, P.PROC_PREFIX_RE, P.ANSI_RE, P.UCX_TL_RE))):
    assert generalize(_rx.pattern) == _rx.pattern, f"a line format or prefix regex tests a literal digit: {_name}"

_DIGIT_KEYS = tuple(sorted({k.translate(NORM) for k in P.SCAN_KEYS_BYTES if re.search(rb"\d", k)}))
FREE_KEY_RE = re.compile(b"|".join(re.escape(k) for k in P.SCAN_KEYS_BYTES if not re.search(rb"\d", k)))


_HEXCHARS = frozenset("0123456789abcdef")
_WORD = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")


def can_overlap_id(s: str) -> bool:
    """True when an occurrence of ``s`` in a line could cover a character of an id
    (:data:`~workshop_lib.logs.patterns.ID_RE`: hex digits with no word character beside them, after ``0x`` or in a
    uuid). A character of ``s`` can lie in an id only if it is a hex digit whose neighbours in ``s`` can be an id's
    neighbours too (a hex digit of the id, a non-word character, or the ``x`` of ``0x`` before it); worked out to a
    fixed point, so ``"failed"`` cannot (``i``, ``l``) and ``"ed:"`` can (an id ending in ``ed``).

    Example:
        >>> [can_overlap_id(s) for s in ("not found", "remote memory", "ed:", "0x", "0x1")]
        [False, False, True, False, True]
    """
    live = [c in _HEXCHARS for c in s]
    changed = True
    while changed:
        changed = False
        for i in range(len(s)):
            if not live[i]:
                continue
            left = i == 0 or s[i - 1] not in _WORD or s[i - 1] == "x" or live[i - 1]
            right = i == len(s) - 1 or s[i + 1] not in _WORD or live[i + 1]
            if not (left and right):
                live[i] = False
                changed = True
    return any(live)


# The prefilter runs on the line as written, the rules (their key tests too) on the masked one: the same answer only
# when no key can touch an id. Nor can the words a template reads from a line's text (accumulator.ucx_table_op,
# Template: "|", "cfg#"; Accumulator.add: "rma(").
for _k in (*P.PREFILTER_KEYS, *P.RULE_KEYS, "|", "cfg#", "remote memory", "rma("):
    assert not can_overlap_id(_k), f"a prefilter key or text test could overlap an id (make it longer): {_k!r}"


def shape_of(line: bytes) -> bytes:
    """A line's shape, as ``native/shapescan.c`` gives it: the ids of a plain-ASCII line without ANSI colour masked
    (:func:`~workshop_lib.logs.patterns.mask_ids`), then every digit as ``0``.

    Example:
        >>> shape_of(b"buffer=0x7ff5d87f size=33554432")
        b'buffer=0x00000000 size=00000000'
    """
    if (b"0x" in line or b"-" in line) and line.isascii() and b"\x1b" not in line:
        line = P.mask_ids(line.decode("ascii")).encode("ascii")
    return line.translate(NORM)


def candidate_anyway(norm: bytes) -> bool:
    """False when lines of this shape may or may not pass the prefilter depending on their digits (the only keys
    in it have a digit: the abseil levels ``E0``/``E1``/``F0``/``F1``)."""
    if not any(k in norm for k in _DIGIT_KEYS):
        return True
    return FREE_KEY_RE.search(norm) is not None


def shape_is_safe(norm: bytes) -> bool:
    """True when every line with this digit-normalised shape classifies the same way (see the module docstring)."""
    return exact_spans(norm) == ()


def exact_spans(norm: bytes) -> tuple[Span, ...] | None:
    """The spans of a shape whose digits can change how its lines classify; the digits elsewhere cannot.

    ``()``: none (the shape is safe). ``None``: not worked out (not ASCII, ANSI colour, or a prefilter candidate only
    for some digits): the whole line counts. Otherwise ``(start, end, values)`` spans: with ``values`` None the
    bytes count (the libfabric header's provider and level fields, and each value a rule captures where it holds a
    digit); with ``values`` only which of them the bytes equal, or none (a number a rule's ``when`` compares:
    ``returned -61``, ``Exit Code: 137``). Sound because every regex tests digits only as a class (checked when this
    module loads): it takes the same path on every line of a shape, so its matches and groups sit at the same places.

    Example:
        >>> exact_spans(b"Discovered 0 EFA devices"), exact_spans(b"  Exit Code:    000")
        (((11, 12, None),), ((16, 19, (b'137',)),))
    """
    if not candidate_anyway(norm):
        return None
    if not norm.isascii() or b"\x1b" in norm:
        return () if _safe_text(to_text(norm)) else None
    text = to_text(norm)
    _, msg, _, _ = split_prefixes(text)  # ids read as zeros, as classify reads them
    off = len(text) - len(msg)
    spans: set[Span] = set()
    for name, fmt in _FORMATS:
        m = fmt.match(msg)
        if m:
            if name == "libfabric":
                spans.update((off + m.start(g), off + m.end(g), None) for g in ("prov", "lvl") if "0" in m[g])
            off += m.start("msg")
            msg = m["msg"] or ""
            break
    for pr in PROBES:
        if pr.key in msg:
            for m in pr.regex.finditer(msg) if pr.preds else filter(None, (pr.regex.search(msg),)):
                spans.update((off + m.start(g), off + m.end(g), None) for g in pr.groups if "0" in (m.group(g) or ""))
                spans.update((off + m.start(g), off + m.end(g), vals) for g, vals in pr.preds if m.group(g) is not None)
    return tuple(sorted(spans, key=lambda x: (x[0], x[1], x[2] or ())))


def _safe_text(text: str) -> bool:
    """The plain safety test (no spans) for a line whose byte offsets do not map to text offsets."""
    _, msg, _, _ = split_prefixes(text)
    for name, fmt in _FORMATS:
        m = fmt.match(msg)
        if m:
            if name == "libfabric" and ("0" in m["prov"] or "0" in m["lvl"]):
                return False
            msg = m["msg"] or ""
            break
    for pr in PROBES:
        if pr.key in msg:
            for m in pr.regex.finditer(msg) if pr.preds else filter(None, (pr.regex.search(msg),)):
                if any("0" in (m.group(g) or "") for g in pr.groups) or any(m.group(g) is not None for g, _ in pr.preds):
                    return False
    return True


def message_key(line: bytes) -> tuple[bytes, int]:
    """``(key, cut)``: the header ``line[:cut]`` digit-normalised, the message after it exact.

    Example:
        >>> message_key(b"I1207 19:34:40.291955 1302 b.cpp:601] Serialized 1 data rail endpoints")[0]
        b'I1000 00:00:00.000000 0000 b.cpp:000] Serialized 1 data rail endpoints'
    """
    c0 = line[:1]
    cut = 0
    if c0 == b"[" and line.startswith(b"[pod/"):
        cut = line.find(b"] ") + 2
        c0 = line[cut:cut + 1]
    if c0 == b"(":  # vLLM process tag: (EngineCore_DP0 pid=594)
        end = line.find(b") ", cut)
        if end > 0:
            cut = end + 2
            c0 = line[cut:cut + 1]
    if c0 in b"IWEFD" and c0 and line[cut + 1:cut + 2].isdigit():  # abseil
        end = line.find(b"]", cut)
        cut = end + 1 if end > 0 else cut
    elif c0 == b"[" and line[cut + 1:cut + 2].isdigit():  # UCX / SGLang / TRT-LLM bracketed timestamp
        end = line.find(b"]", cut)
        if end > 0:
            cut = end + 1
            if line.startswith(b" [", cut):
                end = line.find(b"]", cut)
                cut = end + 1 if end > 0 else cut
    elif line.startswith(b"libfabric:", cut):
        p1 = line.find(b":", cut + 10)
        p2 = line.find(b":", p1 + 1) if p1 > 0 else -1
        cut = p2 + 2 if p2 > 0 and line.startswith(b"::", p2) else (p1 + 1 if p1 > 0 else cut)
    elif c0.isdigit():  # leading timestamp (NIXL Python, Rust tracing, Python logging, nixlbench rows)
        cut = len(line) - len(line[cut:].lstrip(b"0123456789-:.,TZ+ "))
    elif c0.isalpha():  # vLLM: INFO 11-25 02:39:44 [file.py:800]
        sp = line.find(b" ", cut, cut + 10)
        if sp > 0 and line[sp + 1:sp + 2].isdigit():
            end = line.find(b"]", sp)
            cut = end + 1 if end > 0 else cut
    if cut <= 0:
        return line, 0
    return line[:2] + line[2:cut].translate(NORM) + line[cut:], cut
