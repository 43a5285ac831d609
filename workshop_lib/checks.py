"""PASS/WARN/FAIL verification tables: every workshop step ends in one.

A :class:`CheckTable` collects rows of *check, status, found, expected, evidence, fix*. In a notebook it renders as
a coloured pandas table (``_repr_html_``); headless (``str``/``print``) it is plain text; :attr:`CheckTable.ok` is
True when no row FAILed, and :meth:`CheckTable.verdict` sums the table up in one word for the run summary.

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

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from pandas.io.formats.style import Styler

PASS, WARN, FAIL, INFO = "PASS", "WARN", "FAIL", "INFO"
STATUSES = (PASS, WARN, FAIL, INFO)
COLUMNS = ("check", "status", "found", "expected", "evidence", "fix")
_COLOURS = {PASS: "#d4edda", WARN: "#fff3cd", FAIL: "#f8d7da", INFO: "#e2e3e5"}
_RANK = {INFO: 0, PASS: 1, WARN: 2, FAIL: 3}
EVIDENCE_WIDTH = 160  # characters of an evidence line kept (log lines can be very long)


def _text(value: Any) -> str:
    """A table cell as text: None -> '', lists joined with ', ', floats without noise."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple, set)):
        return ", ".join(_text(v) for v in value)
    return str(value)


def _clip(text: str, width: int = EVIDENCE_WIDTH) -> str:
    """One line, at most ``width`` characters (``...`` marks a cut).

    >>> _clip("a\\nb", 10)
    'a b'
    >>> _clip("x" * 12, 8)
    'xxxxx...'
    """
    one = " ".join(text.split())
    return one if len(one) <= width else one[: width - 3] + "..."


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
        """Append a row with an explicit status; the fix is kept only for WARN/FAIL rows."""
        status = status.upper()
        row = Check(
            check=check,
            status=status,
            found=_text(found),
            expected=_text(expected),
            evidence=_clip(_text(evidence)),
            fix=fix if status in (WARN, FAIL) else "",
        )
        self.rows.append(row)
        return row

    def require(
        self, check: str, found: Any, expected: Any, *, evidence: Any = "", fix: str = "", warn: bool = False
    ) -> Check:
        """PASS when ``found == expected`` (as text, case-insensitive), else FAIL (or WARN with ``warn=True``)."""
        ok = _text(found).strip().lower() == _text(expected).strip().lower()
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
        shown = "missing" if found is None else f"{_text(found)}{unit}"
        return self.add(check, PASS if ok else (WARN if warn else FAIL), shown, f">= {_text(minimum)}{unit}", evidence, fix)

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
        """The worst status in the table (``PASS`` for an empty or INFO-only table)."""
        worst = max((_RANK[r.status] for r in self.rows), default=_RANK[PASS])
        return {0: PASS, 1: PASS, 2: WARN, 3: FAIL}[worst]

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

    def to_frame(self) -> pd.DataFrame:
        """Rows as a DataFrame with the :data:`COLUMNS` columns."""
        import pandas as pd

        return pd.DataFrame(self.to_records(), columns=list(COLUMNS))

    def styled(self) -> Styler:
        """A pandas Styler: status cells coloured, evidence in a monospace font, no index."""
        frame = self.to_frame()

        def colour(v: str) -> str:
            return f"background-color: {_COLOURS.get(v, '')}; font-weight: bold" if v in _COLOURS else ""

        sty = frame.style.map(colour, subset=["status"]).hide(axis="index")
        sty = sty.set_properties(subset=["evidence"], **{"font-family": "monospace", "font-size": "0.85em"})
        sty = sty.set_properties(**{"text-align": "left", "white-space": "pre-wrap"})
        if self.title:
            c = self.counts()
            sty = sty.set_caption(f"{self.title}: {self.verdict()} ({c[PASS]} pass, {c[WARN]} warn, {c[FAIL]} fail)")
        return sty

    def to_text(self, width: int = 60) -> str:
        """A plain-text table for terminals and logs; long cells are clipped to ``width``."""
        header = list(COLUMNS)
        body = [[_clip(v, width) for v in (r.check, r.status, r.found, r.expected, r.evidence, r.fix)] for r in self.rows]
        widths = [max([len(h)] + [len(row[i]) for row in body]) for i, h in enumerate(header)]
        lines = []
        if self.title:
            lines.append(f"{self.title}: {self.verdict()}")
        lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
        lines.append("  ".join("-" * w for w in widths))
        lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in body]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()

    __repr__ = __str__  # the plain-text fallback of a notebook output is the table, not the dataclass

    def _repr_html_(self) -> str:
        return self.styled().to_html()
