"""Streaming log parser: one line at a time, constant memory, never raises on bad input.

Every line is decoded with ``errors="replace"``, stripped of ANSI colour, of a ``kubectl logs --prefix``
(``[pod/name/container] ``) or stern-style (``<pod> <container> ``) prefix and of vLLM process tags, then matched
against the known line formats and event rules of :mod:`workshop_lib.logs.patterns`.

Example:
    >>> res = parse_lines(["I1207 19:34:40.291955 1302 libfabric_backend.cpp:601] Successfully created connection "
    ...                    "for agent: target on 1 data rails and 1 control rails", "bash-5.1$ python"])
    >>> res.events.loc[0, ["component", "event", "backend", "peer"]].tolist(), int(res.events.loc[0, "rails"])
    (['nixl', 'nixl.connection_created', 'LIBFABRIC', 'target'], 1)
    >>> res.unrecognised, res.lines
    (1, 2)
"""

from __future__ import annotations

import re
import stat
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from workshop_lib.errors import LogParseError
from workshop_lib.logs import patterns as P

if TYPE_CHECKING:  # pandas is imported only where a DataFrame is built (the CLI's JSON path never needs it)
    import pandas as pd

COLUMNS: tuple[str, ...] = (
    "source", "line", "timestamp", "pod", "container", "component", "level", "event", "backend", "provider",
    "devices", "rails", "peer", "fi_addr", "transport", "error", "code", "text", "detail",
)
COMMENT_PREFIXES = ("# source:", "# ...", "source: http")  # annotation lines of the public excerpts; not log output
TEXT_MAX = 300  # evidence lines are trimmed to this many characters
_INT_COLUMNS = ("line", "devices", "rails", "fi_addr")


@dataclass(slots=True)
class Event:
    """One recognised log line. ``event`` is ``"line"`` for a recognised line without a signature."""

    source: str
    line: int
    text: str
    timestamp: str | None = None
    pod: str | None = None
    container: str | None = None
    component: str | None = None
    level: str | None = None
    event: str = "line"
    backend: str | None = None
    provider: str | None = None
    devices: int | None = None
    rails: int | None = None
    peer: str | None = None
    fi_addr: int | None = None
    transport: str | None = None
    error: str | None = None
    code: str | None = None
    detail: str | None = None  # a version, a plugin directory, a rail index or a metric name the rule captured


@dataclass
class ParseResult:
    """What :func:`parse_lines` found: ``events`` (one row per recognised line), total and unrecognised counts."""

    events: pd.DataFrame
    lines: int
    unrecognised: int
    source: str = "<stream>"


def to_text(raw: str | bytes) -> str:
    """Decode (UTF-8, invalid bytes replaced) and drop the line ending.

    Example:
        >>> to_text(b"caf\\xe9\\r\\n")
        'caf\\ufffd'
    """
    if isinstance(raw, bytes | bytearray | memoryview):
        raw = bytes(raw).decode("utf-8", errors="replace")
    return raw.rstrip("\r\n")


def strip_prefixes(text: str) -> tuple[str, str | None, str | None]:
    """``(message, pod, container)``: ``text`` without ANSI colour, a kubectl/stern prefix and vLLM process tags."""
    msg, _, pod, container = split_prefixes(text)
    return msg, pod, container


def split_prefixes(text: str) -> tuple[str, str, str | None, str | None]:
    """``(message, masked message, pod, container)``: like :func:`strip_prefixes`, plus the message with its ids read
    as zeros (:func:`~workshop_lib.logs.patterns.mask_ids`, same length: the message itself when it has none), which
    is what every format and rule is matched against. The prefixes are found in the masked text too, so an id never
    decides where the message starts.

    Example:
        >>> split_prefixes("[pod/decode-0/main] (EngineCore_DP0 pid=5) agent 0x7f3a ready")
        ('agent 0x7f3a ready', 'agent 0x0000 ready', 'decode-0', 'main')
    """
    if "\x1b" in text:
        text = P.ANSI_RE.sub("", text)
    masked = P.mask_ids(text)
    pod = container = None
    off = 0
    m = P.KUBECTL_PREFIX_RE.match(masked) or P.STERN_PREFIX_RE.match(masked)
    if m:
        off = m.end()
        pod, container = text[m.start("pod"):m.end("pod")], text[m.start("container"):m.end("container")]
    if masked.startswith("(", off):
        m = P.PROC_PREFIX_RE.match(masked[off:])
        if m:
            off += m.end()
    return text[off:], masked[off:], pod, container


def _fill(ev: Event, rule: P.Rule, m: re.Match[str], raw: str | None) -> None:
    """Fill ``ev`` from a rule's match on the masked message: strings as written (``raw``, or the match's own text
    when the message had no id), numbers from the match (an id reads as zeros there, so they always parse)."""
    groups = m.groupdict()
    if raw is not None:
        text = {k: (raw[m.start(k):m.end(k)] if v is not None else None) for k, v in groups.items()}
    else:
        text = groups
    for col, val in rule.sets.items():
        setattr(ev, col, val)
    for col in ("backend", "provider", "peer", "error"):
        if text.get(col):
            setattr(ev, col, text[col])
    if text.get("peer2") and not ev.peer:
        ev.peer = text["peer2"]
    detail = text.get("detail") or text.get("detail2")
    if detail:
        ev.detail = detail[:TEXT_MAX]
    for col in ("devices", "rails", "fi_addr"):
        if groups.get(col):
            setattr(ev, col, int(groups[col]))  # type: ignore[arg-type]


def _ucx_transports(msg: str) -> str | None:
    tls = sorted({m["tl"] for m in P.UCX_TL_RE.finditer(msg)})
    return ",".join(tls) or None


def classify(raw: str | bytes, line_no: int = 0, source: str = "<stream>", prefiltered: bool = False,
             rules: Sequence[P.Rule] | None = None) -> Event | None:
    """Turn one line into an :class:`Event`, or ``None`` when no format or signature recognises it.

    ``rules``: the rules worth trying, in priority order, when the caller knows a superset of those whose key is in
    the line (the fast scan's C key search); default all of them.

    Example:
        >>> classify("HANDSHAKE received from peer with explicit fi_addr 33").fi_addr
        33
        >>> classify("just some text") is None
        True
    """
    text = to_text(raw)
    if not text.strip() or text.startswith(COMMENT_PREFIXES):
        return None
    msg, mmsg, pod, container = split_prefixes(text)
    ev = Event(source=source, line=line_no, text=msg.strip()[:TEXT_MAX], pod=pod, container=container)
    recognised = False
    for fmt in P.FORMATS:
        m = fmt.regex.match(mmsg)
        if m:
            recognised = True
            gd = m.groupdict()
            ev.component = fmt.component
            if gd.get("ts") is not None:
                ev.timestamp = msg[m.start("ts"):m.end("ts")]
            lvl = gd.get("lvl")
            ev.level = P.LEVELS.get(lvl.upper(), lvl.upper()) if lvl else None
            if fmt.name == "libfabric":
                prov = msg[m.start("prov"):m.end("prov")]
                if prov not in P.LAYERED_PROVIDERS:
                    ev.provider = prov
            a, b = m.span("msg")
            msg, mmsg = (msg[a:b], mmsg[a:b]) if a >= 0 else ("", "")
            break
    if not prefiltered and not P.has_key(text):
        return ev if recognised else None
    fmt_level = ev.level
    raw = None if mmsg is msg else msg  # the message as written, when ids were masked
    matched = _apply_rules(ev, mmsg, P.RULES_BY_PRIORITY if rules is None else rules, raw)
    if ev.code == "NIXL_BACKEND_CREATE_FAILED" and fmt_level == "INFO":
        _optional_plugin(ev, mmsg, msg)
    if ev.component == "ucx" or "cfg#" in mmsg:
        tls = _ucx_transports(mmsg)
        if tls and ev.event in ("line", "ucx.transport"):
            ev.event, ev.transport, ev.component = "ucx.transport", tls, "ucx"
            matched = True
    if not ev.code and (ev.level in P.ERROR_LEVELS or ev.component == "libfabric") and P.is_benign(mmsg, raw):
        ev.event = "benign" if ev.event == "line" else ev.event
    elif not ev.code and ev.level in P.ERROR_LEVELS:
        ev.code, ev.event, matched = "GENERIC_ERROR", "error", True
        ev.error = ev.error or msg.strip()[:TEXT_MAX]
    elif not ev.code and fmt_is_exception(ev, mmsg):
        ev.code, ev.event, ev.level, matched = "GENERIC_ERROR", "error", "ERROR", True
    return ev if (recognised or matched) else None


PLUGIN_NAME_RE = re.compile(r"libplugin_(\w+)\.so|plugin '(\w+)'")


def _optional_plugin(ev: Event, msg: str, raw: str) -> None:
    """NIXL 0.9.0 tries every plugin it ships and logs, at INFO, those that cannot load here (GDS without cuFile,
    GPUNETIO without DOCA...). That is only a failure when the plugin is the backend the agent uses: the diagnosis
    decides once it knows the backend, so the line becomes ``nixl.plugin_load_failed`` instead of an error.
    ``msg`` is the masked message, ``raw`` the same as written (the plugin's name is read there)."""
    m = PLUGIN_NAME_RE.search(msg)
    if m and "ailed to load plugin" in msg:
        g = 1 if m.group(1) is not None else 2
        ev.event, ev.code, ev.level, ev.error = "nixl.plugin_load_failed", None, "INFO", None
        ev.backend = raw[m.start(g):m.end(g)].upper()


def fmt_is_exception(ev: Event, msg: str) -> bool:
    """True for a Python exception line (``RuntimeError: ...``) that no rule explained."""
    return ev.component == "python" and ev.level is None and (": " in msg) and msg.split(":", 1)[0].endswith(
        ("Error", "Exception"))


def _apply_rules(ev: Event, msg: str, rules: Sequence[P.Rule], raw: str | None = None) -> bool:
    """Failure signatures first (the first one wins), then the first descriptive rule. ``msg`` is the masked message;
    ``raw`` the same as written when it differs (what a rule captures is read there)."""
    for rule in rules:
        if rule.key not in msg:
            continue
        m = P.first_match(rule.regex, rule.when, msg, raw)
        if not m:
            continue
        _fill(ev, rule, m, raw)
        ev.event = rule.event
        if not ev.component or ev.component == "python":
            ev.component = rule.component
        if rule.code:
            ev.code = rule.code
            ev.error = ev.error or (m.group(0) if raw is None else raw[m.start():m.end()])[:TEXT_MAX]
            ev.level = rule.level or ev.level
        elif rule.level and not ev.level:
            ev.level = rule.level
        return True
    return False


def iter_events(lines: Iterable[str | bytes], source: str = "<stream>") -> Iterator[Event | int]:
    """Yield an :class:`Event` per recognised line and ``0`` per unrecognised non-blank line (for counting)."""
    for no, raw in enumerate(lines, start=1):
        try:
            ev = classify(raw, no, source)
        except Exception:  # noqa: BLE001 - a parser must never stop on one odd line
            ev = None
        if ev is not None:
            yield ev
        elif to_text(raw).strip():
            yield 0


def events_frame(events: Iterable[Event]) -> pd.DataFrame:
    """A DataFrame with the stable :data:`COLUMNS` (nullable integers for counts)."""
    import pandas as pd

    df = pd.DataFrame([asdict(e) for e in events], columns=list(COLUMNS))
    for col in _INT_COLUMNS:
        df[col] = df[col].astype("Int64")
    return df


def parse_lines(lines: Iterable[str | bytes], source: str = "<stream>") -> ParseResult:
    """Parse an iterable of lines (str or bytes) into a :class:`ParseResult`.

    Example:
        >>> parse_lines([b"Backend UCX was instantiated\\n", b"\\xff\\xfe garbage"]).events["backend"].tolist()
        ['UCX']
    """
    evs: list[Event] = []
    total = unrec = 0
    for item in iter_events(_counting(lines), source):
        if isinstance(item, Event):
            evs.append(item)
        else:
            unrec += 1
    total = _counting.last  # type: ignore[attr-defined]
    return ParseResult(events_frame(evs), total, unrec, source)


def _counting(lines: Iterable[str | bytes]) -> Iterator[str | bytes]:
    _counting.last = 0  # type: ignore[attr-defined]
    for n, line in enumerate(lines, start=1):
        _counting.last = n  # type: ignore[attr-defined]
        yield line


def read_lines(path: str | Path, max_line: int = 8 << 20) -> Iterator[bytes]:
    """Yield a file's lines as bytes; a line longer than ``max_line`` keeps its first ``max_line`` bytes only."""
    p = Path(path)
    check_readable(p)
    try:
        with p.open("rb") as f:
            while True:
                line = f.readline(max_line)
                if not line:
                    return
                if len(line) == max_line and not line.endswith(b"\n"):
                    rest = f.readline(max_line)  # skip the remainder of an over-long line, in bounded pieces
                    while rest and not rest.endswith(b"\n"):
                        rest = f.readline(max_line)
                yield line
    except OSError as exc:
        raise LogParseError(str(p), f"cannot read: {exc.strerror or exc}", "check the path and permissions") from exc


def check_readable(p: Path) -> None:
    """Raise :class:`LogParseError` naming the file when it is missing, a directory or unreadable."""
    try:
        st = p.stat()
    except FileNotFoundError:
        raise LogParseError(str(p), "no such file", "check the path (kubectl logs POD > FILE writes one)") from None
    except OSError as exc:
        raise LogParseError(str(p), f"cannot stat: {exc.strerror or exc}", "check the path and permissions") from exc
    if stat.S_ISDIR(st.st_mode):
        raise LogParseError(str(p), "is a directory, not a log file", "pass the log files inside it")
    if not stat.S_ISREG(st.st_mode):  # /dev/zero never ends and a FIFO blocks on open: refuse both before reading
        kind = "a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode) else "a device or socket"
        raise LogParseError(str(p), f"is {kind}, not a regular file",
                            "save the log to a file first (kubectl logs POD > FILE) and pass that file")
    try:
        with p.open("rb"):
            pass
    except OSError as exc:
        raise LogParseError(str(p), f"cannot open: {exc.strerror or exc}", "check the file's permissions") from exc


def parse_file(path: str | Path) -> ParseResult:
    """Parse a log file (read in binary, decoded with replacement).

    Raises:
        LogParseError: the file is missing, a directory or unreadable.
    """
    return parse_lines(read_lines(path), source=str(path))
