"""PASS/WARN/FAIL verification tables: every workshop step ends in one.

A :class:`CheckTable` collects rows of *check, status, found, expected, evidence, fix*. In a notebook it renders as
a coloured pandas table (``_repr_html_``); headless (``str``/``print``) it is plain text; :attr:`CheckTable.ok` is
True when no row FAILed, and :meth:`CheckTable.verdict` sums the table up in one word for the run summary: the
worst row wins (FAIL > WARN > EXPECTED > PASS), INFO rows do not judge, and a table without any judged row says
``NO EVIDENCE`` (never PASS). ``EXPECTED`` marks a lesson outcome of the local lab (e.g. the TCP fallback without EFA):
shown as expected-on-local, neither a PASS nor a failure of the kit.

Example:
    >>> t = CheckTable("NIXL backend")
    >>> t.expect("backend", "LIBFABRIC", "LIBFABRIC", evidence="Backend LIBFABRIC was instantiated")
    Check(check='backend', status='PASS', found='LIBFABRIC', expected='LIBFABRIC', evidence='Backend LIBFABRIC was instantiated', fix='')
    >>> t.require("provider", "tcp", "efa", fix="run on a P5 node with the EFA device plugin", warn=True).status
    'WARN'
    >>> t.ok, t.verdict()
    (True, 'WARN')
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from workshop_lib import table
from workshop_lib.table import cell, clip

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from pandas.io.formats.style import Styler

PASS, WARN, FAIL, INFO, EXPECTED = "PASS", "WARN", "FAIL", "INFO", "EXPECTED"
NO_EVIDENCE = "NO EVIDENCE"  # the verdict of a table with no judged row (empty or INFO only): never a PASS
STATUSES = (PASS, WARN, FAIL, INFO, EXPECTED)
VERDICTS = (PASS, EXPECTED, WARN, FAIL, NO_EVIDENCE)
COLUMNS = ("check", "status", "found", "expected", "evidence", "fix")
# The worst row wins: FAIL over WARN over EXPECTED over PASS; INFO rows do not judge.
_RANK = {INFO: 0, PASS: 1, EXPECTED: 2, WARN: 3, FAIL: 4}
EXPECTED_NOTE = "expected on local"  # how an EXPECTED row reads: a lesson outcome of the local lab, not the kit failing
EVIDENCE_WIDTH = 160  # characters of an evidence line kept (log lines can be very long)


@dataclass(frozen=True, slots=True)
class Check:
    """One row of a verification table."""

    check: str
    status: str
    found: str
    expected: str
    evidence: str = ""
    fix: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status {self.status!r} is not one of {STATUSES}")


@dataclass(repr=False)
class CheckTable:
    """An ordered list of :class:`Check` rows with a title.

    Args:
        title: shown above the table.
        rows: initial rows.
    """

    title: str = ""
    rows: list[Check] = field(default_factory=list)

    # ---------------------------------------------------------------- building
    def add(
        self, check: str, status: str, found: Any = "", expected: Any = "", evidence: Any = "", fix: str = ""
    ) -> Check:
        """Append a row with an explicit status; the fix is kept only for WARN/FAIL rows (and EXPECTED's reason)."""
        status = status.upper()
        row = Check(
            check=check,
            status=status,
            found=cell(found),
            expected=cell(expected),
            evidence=clip(cell(evidence), EVIDENCE_WIDTH),
            fix=fix if status in (WARN, FAIL, EXPECTED) else "",
        )
        self.rows.append(row)
        return row

    def require(
        self, check: str, found: Any, expected: Any, *, evidence: Any = "", fix: str = "", warn: bool = False
    ) -> Check:
        """PASS when ``found == expected`` (as text, case-insensitive), else FAIL (or WARN with ``warn=True``)."""
        ok = cell(found).strip().lower() == cell(expected).strip().lower()
        return self.add(check, PASS if ok else (WARN if warn else FAIL), found, expected, evidence, fix)

    expect = require

    def check_true(
        self, check: str, ok: bool, found: Any, expected: Any, *, evidence: Any = "", fix: str = "", warn: bool = False
    ) -> Check:
        """PASS when ``ok``, else FAIL (or WARN with ``warn=True``)."""
        return self.add(check, PASS if ok else (WARN if warn else FAIL), found, expected, evidence, fix)

    def at_least(
        self, check: str, found: float | int | None, minimum: float | int, *, evidence: Any = "", fix: str = "",
        warn: bool = False, unit: str = "",
    ) -> Check:
        """PASS when ``found >= minimum`` (None counts as missing: FAIL/WARN)."""
        ok = found is not None and found >= minimum
        shown = "missing" if found is None else f"{cell(found)}{unit}"
        return self.add(check, PASS if ok else (WARN if warn else FAIL), shown, f">= {cell(minimum)}{unit}", evidence, fix)

    def expected_here(self, check: str, found: Any, expected: Any, *, why: str, evidence: Any = "") -> Check:
        """An EXPECTED row: the outcome the lesson predicts on this target (e.g. ``tcp-fallback`` with no EFA), which
        would be a failure elsewhere. ``why`` says why it is expected here; it is shown in the fix column.

        >>> CheckTable().expected_here("provider", "sockets", "efa", why="no EFA on this machine").status
        'EXPECTED'
        """
        return self.add(check, EXPECTED, found, expected, evidence, f"{EXPECTED_NOTE}: {why}")

    def info(self, check: str, found: Any, evidence: Any = "", expected: Any = "") -> Check:
        """A row that informs without judging (INFO never fails a table)."""
        return self.add(check, INFO, found, expected, evidence)

    def extend(self, other: CheckTable | Iterable[Check]) -> CheckTable:
        """Append the rows of another table (or any iterable of checks); returns self."""
        self.rows.extend(other.rows if isinstance(other, CheckTable) else other)
        return self

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, Any]], title: str = "") -> CheckTable:
        """Build from mappings with the :data:`COLUMNS` keys (e.g. another module's check rows).

        >>> CheckTable.from_rows([{"check": "etcd", "status": "pass", "found": "up"}]).rows[0].status
        'PASS'
        """
        t = cls(title)
        for r in rows:
            t.add(str(r.get("check", "")), str(r.get("status", INFO)), r.get("found", ""), r.get("expected", ""),
                  r.get("evidence", ""), str(r.get("fix", "") or ""))
        return t

    # ---------------------------------------------------------------- reading
    @property
    def ok(self) -> bool:
        """True when no row FAILed (WARN and INFO do not fail a table)."""
        return all(r.status != FAIL for r in self.rows)

    def counts(self) -> dict[str, int]:
        """Rows per status, e.g. ``{'PASS': 3, 'WARN': 1, 'FAIL': 0, 'INFO': 0}``."""
        return {s: sum(r.status == s for r in self.rows) for s in STATUSES}

    def verdict(self) -> str:
        """The worst judged row's status; ``NO EVIDENCE`` for an empty or INFO-only table.

        >>> CheckTable().verdict()
        'NO EVIDENCE'
        """
        return verdict_of(r.status for r in self.rows)

    @property
    def judged(self) -> bool:
        """True when at least one row is judged (not INFO)."""
        return any(r.status != INFO for r in self.rows)

    def failed(self) -> list[Check]:
        """The FAIL rows."""
        return [r for r in self.rows if r.status == FAIL]

    def __getitem__(self, check: str) -> Check:
        """The first row named ``check``.

        Raises:
            KeyError: no such row.
        """
        for r in self.rows:
            if r.check == check:
                return r
        raise KeyError(check)

    def __len__(self) -> int:
        return len(self.rows)

    def to_records(self) -> list[dict[str, str]]:
        """Rows as plain dicts (for :func:`workshop_lib.record.record`)."""
        return [asdict(r) for r in self.rows]

    def to_frame(self, columns: Iterable[str] = COLUMNS) -> pd.DataFrame:
        """Rows as a DataFrame with the :data:`COLUMNS` columns (or the ``columns`` given)."""
        return table.frame(self.rows, list(columns))

    def caption(self) -> str:
        """``title: VERDICT (3 pass, 1 warn, 0 fail)``; empty without a title."""
        return f"{self.title}: {self.verdict()} ({_count_text(self.counts())})" if self.title else ""

    def styled(self) -> Styler:
        """A pandas Styler (:func:`workshop_lib.table.styled`): status cells coloured, evidence monospace, no index."""
        return table.styled(self.to_frame(), caption=self.caption())

    def to_text(self, width: int = table.WIDTH) -> str:
        """A plain-text table for terminals and logs (:func:`workshop_lib.table.text`); long cells clipped to ``width``."""
        return table.text(self.rows, COLUMNS, title=f"{self.title}: {self.verdict()}" if self.title else "", width=width)

    def to_json(self) -> str:
        """The rows as JSON (:func:`workshop_lib.table.to_json`)."""
        return table.to_json(self.rows, COLUMNS)

    def render(self, fmt: str = "text") -> str:
        """The table as ``text``, ``html`` or ``json`` (:data:`workshop_lib.table.FORMATS`)."""
        if fmt == "html":
            return self._repr_html_()
        return self.to_json() if fmt == "json" else table.render(self.rows, COLUMNS, fmt, title=(
            f"{self.title}: {self.verdict()}" if self.title else ""))

    def __str__(self) -> str:
        return self.to_text()

    __repr__ = __str__  # the plain-text fallback of a notebook output is the table, not the dataclass

    def _repr_html_(self) -> str:
        return self.styled().to_html()


def _count_text(c: dict[str, int]) -> str:
    """``3 pass, 1 warn, 0 fail`` (plus ``N expected on local`` when any)."""
    text = f"{c[PASS]} pass, {c[WARN]} warn, {c[FAIL]} fail"
    return text + (f", {c[EXPECTED]} {EXPECTED_NOTE}" if c.get(EXPECTED) else "")


def verdict_of(statuses: Iterable[str]) -> str:
    """The verdict of rows with these statuses: the worst judged one; ``NO EVIDENCE`` when none is judged.

    >>> verdict_of(["PASS", "EXPECTED", "INFO"]), verdict_of(["INFO"]), verdict_of(["PASS", "FAIL", "WARN"])
    ('EXPECTED', 'NO EVIDENCE', 'FAIL')
    """
    worst = max((_RANK[str(s).upper()] for s in statuses), default=_RANK[INFO])
    return NO_EVIDENCE if worst == _RANK[INFO] else {1: PASS, 2: EXPECTED, 3: WARN, 4: FAIL}[worst]


def disagreements(records: Mapping[str, Any]) -> list[str]:
    """Every recorded verdict that does not follow from its recorded rows (``verdict_<name>`` beside
    ``checks_<name>``), and every ``checks_<name>`` recorded without its verdict; empty when all agree.

    A notebook test calls it on a run's records to hold each section verdict to its check rows (no PASS over a
    FAIL row, no PASS over an empty table).

    >>> disagreements({"verdict_x": "PASS", "checks_x": [{"check": "a", "status": "FAIL"}]})
    ["verdict_x is 'PASS' but its rows say 'FAIL' (FAIL: a)"]
    >>> disagreements({"verdict_x": "FAIL", "checks_x": [{"check": "a", "status": "FAIL"}]})
    []
    """
    out = []
    for key in sorted(k for k in records if k.startswith("checks_")):
        name = key[len("checks_"):]
        rows = records[key] or []
        want = verdict_of(r.get("status", INFO) for r in rows)
        got = records.get(f"verdict_{name}")
        if got is None:
            out.append(f"{key} recorded without verdict_{name}")
        elif got != want:
            bad = ", ".join(r.get("check", "?") for r in rows if r.get("status") == want)
            out.append(f"verdict_{name} is {got!r} but its rows say {want!r}" + (f" ({want}: {bad})" if bad else ""))
    return out


def assert_agree(records: Mapping[str, Any], *, allow_no_evidence: bool = False) -> None:
    """Raise AssertionError (listing each disagreement) unless every recorded verdict follows from its rows; with
    ``allow_no_evidence`` False, a ``NO EVIDENCE`` verdict is an error too (a notebook that judged nothing)."""
    bad = disagreements(records)
    if not allow_no_evidence:
        bad += [f"{k} is NO EVIDENCE" for k, v in records.items() if k.startswith("verdict_") and v == NO_EVIDENCE]
    if bad:
        raise AssertionError("; ".join(bad))
