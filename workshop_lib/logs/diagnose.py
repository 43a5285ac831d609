"""Diagnose log files: feed their events into accumulators (fast cached scan, or the uncached reference path), one
diagnosis per file, per pod and combined.

Example:
    >>> from workshop_lib.logs.parser import parse_lines
    >>> d = diagnose(parse_lines(["Discovered 1 socket devices (TCP fallback)",
    ...                           "Using simplified topology for sockets devices"]))
    >>> d.verdict, d.libfabric_provider, d.efa_devices
    ('tcp-fallback', 'sockets', 0)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from workshop_lib.logs.accumulator import Accumulator
from workshop_lib.logs.fastscan import feed_file
from workshop_lib.logs.parser import COLUMNS, Event, ParseResult, classify
from workshop_lib.logs.result import CONTRACT_KEYS, VERDICTS, Diagnosis, MultiDiagnosis, combine, cross_checks
from workshop_lib.logs.scan import FileScan

__all__ = ["CONTRACT_KEYS", "VERDICTS", "Accumulator", "Diagnosis", "MultiDiagnosis", "combine", "cross_checks",
           "diagnose", "diagnose_files", "expand_paths", "feed", "feed_uncached"]


def _events_of(res: ParseResult) -> Iterable[Event]:
    import pandas as pd

    for rec in res.events.to_dict("records"):
        clean = {k: (None if (v is None or v is pd.NA or (isinstance(v, float) and v != v)) else v)
                 for k, v in rec.items() if k in COLUMNS}
        for k in ("line", "devices", "rails", "fi_addr"):
            if clean.get(k) is not None:
                clean[k] = int(clean[k])
        clean["line"] = clean.get("line") or 0
        clean["text"] = clean.get("text") or ""
        clean["event"] = clean.get("event") or "line"
        yield Event(**clean)


def feed(source: str | Path | ParseResult, accs: Sequence[Accumulator]) -> tuple[str, int]:
    if isinstance(source, ParseResult):
        for ev in _events_of(source):
            for a in accs:
                a.add(ev)
        return source.source, source.lines
    return str(source), feed_file(source, accs)


def feed_uncached(source: str | Path, accs: Sequence[Accumulator]) -> tuple[str, int]:
    """The reference path: every candidate line classified in full (no caches). Tests compare it with :func:`feed`."""
    name = str(source)
    scan = FileScan(source)
    for no, raw in scan:
        ev = classify(raw, no, name, prefiltered=True)
        if ev is not None:
            for a in accs:
                a.add(ev)
    return name, scan.lines


def diagnose(*sources: str | Path | ParseResult) -> Diagnosis:
    """One diagnosis over all sources together (files are scanned fast; ParseResults reuse their events).

    Raises:
        LogParseError: a file is missing, a directory or unreadable.
    """
    acc = Accumulator()
    names, total = [], 0
    for s in sources:
        name, n = feed(s, [acc])
        names.append(name)
        total += n
    return acc.diagnosis(names, total)


MAX_PODS = 256  # pods kept apart in one prefixed file (more are counted in the combined view only)


def _has_pod_prefix(path: str | Path) -> bool:
    """True when the file's first 256 KiB has ``kubectl logs --prefix`` lines (``[pod/NAME/CONTAINER] ``)."""
    try:
        with open(path, "rb") as f:
            head = f.read(256 << 10)
    except OSError:
        return False
    return head.startswith(b"[pod/") or b"\n[pod/" in head


def _feed_pods(path: str | Path, combined: Accumulator | None) -> tuple[str, int, dict[str, Accumulator]]:
    """Classify a prefixed file line by line (exact; the template cache cannot tell pods apart) into one accumulator
    per pod, and into ``combined``."""
    name = str(path)
    pods: dict[str, Accumulator] = {}
    scan = FileScan(path)
    for no, raw in scan:
        ev = classify(raw, no, name, prefiltered=True)
        if ev is None:
            continue
        key = ev.pod or Path(name).name
        acc = pods.get(key)
        if acc is None and len(pods) < MAX_PODS:
            acc = pods[key] = Accumulator()
        if acc is not None:
            acc.add(ev)
        if combined is not None:
            combined.add(ev)
    return name, scan.lines, pods


def expand_paths(paths: Sequence[str | Path]) -> list[Path]:
    """Files as given; a directory gives its regular files (sorted, hidden files skipped, not recursive).

    Raises:
        LogParseError: a directory with no files in it.
    """
    from workshop_lib.errors import LogParseError

    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files = sorted(x for x in p.iterdir() if not x.name.startswith(".") and x.is_file())
            if not files:
                raise LogParseError(str(p), "directory has no log files", "save logs into it: kubectl logs POD > DIR/POD.log")
            out.extend(files)
        else:
            out.append(p)
    return out


def diagnose_files(paths: Sequence[str | Path]) -> MultiDiagnosis:
    """Diagnose each file (directories expand to their files), each pod, and all of them together, then check the
    sides against each other. The combined verdict is :func:`combine` of the pods when there are several."""
    from workshop_lib.logs.parser import check_readable

    files = expand_paths(paths)
    for p in files:
        check_readable(p)  # before anything opens it: a FIFO would block, /dev/zero never ends
    combined = Accumulator()
    per: dict[str, Diagnosis] = {}
    pods: dict[str, Diagnosis] = {}
    total = 0
    for p in files:
        if _has_pod_prefix(p):
            name, n, accs = _feed_pods(p, combined)
            own = Accumulator()  # the file's own view: re-read through the pods' events would double memory; rescan
            feed(p, [own])
            for pod, acc in accs.items():
                pods[pod if pod not in pods else f"{Path(name).name}:{pod}"] = acc.diagnosis([name], n)
        else:
            own = Accumulator()
            name, n = feed(p, [own] if len(files) == 1 else [own, combined])
            if len(files) == 1:
                combined = own  # one file: the combined view is that file's
        per[name] = own.diagnosis([name], n)
        if not _has_pod_prefix(p):
            pods[Path(name).name if Path(name).name not in pods else name] = per[name]
        total += n
    comb = combined.diagnosis(list(per), total)
    if len(pods) > 1:
        worst = combine(list(pods.values()))
        if worst and worst != comb.verdict:
            comb.notes.append(f"combined verdict from the pods ({worst}); all lines together read {comb.verdict}")
            comb.verdict = worst
    return MultiDiagnosis(per, comb, cross_checks(per if len(per) > 1 or not pods else pods), pods)
