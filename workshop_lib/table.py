"""The one table renderer: rows of named columns as plain text (terminals, logs), HTML (notebooks) or JSON.

Every table the kit prints goes through :func:`render` (or its three parts :func:`text`, :func:`html`,
:func:`to_json`); verdict tables are :class:`workshop_lib.checks.CheckTable` (rows of :class:`~workshop_lib.checks.Check`),
which render through here too. Rows are mappings (``{"check": ..., "status": ...}``), dataclasses or a pandas
DataFrame; ``columns`` picks and orders what is shown.

Text is fixed-width: a header, a rule, one line per row, each cell left-aligned (right-aligned in a column of numbers)
and clipped to ``width`` characters
(one line, ``...`` marks a cut); a ``below`` column (e.g. ``fix``) goes on its own line under its row when not empty,
so a long fix does not stretch the table. HTML is a pandas Styler (status cells coloured, no index), which
JupyterLab and nbconvert show alike. JSON is a list of objects with the shown columns (and the ``below`` one).

Why no table library: ``rich`` is in the environment only as a dependency of the engine (not a pin of
``workshop_lib``) and draws box characters sized to the terminal; ``tabulate`` is not installed. pandas, already a
runtime pin, gives the notebook HTML; the text table is the dozen lines below.

Example:
    >>> rows = [{"status": "PASS", "check": "etcd", "found": "up", "fix": ""},
    ...         {"status": "FAIL", "check": "nats", "found": "down", "fix": "workshop lab up"}]
    >>> print(text(rows, ["status", "check", "found"], below="fix"))
    status  check  found
    ------  -----  -----
    PASS    etcd   up
    FAIL    nats   down
                   fix: workshop lab up
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from pandas.io.formats.style import Styler

FORMATS = ("text", "html", "json")
WIDTH = 60  # characters of a text cell kept
# Status cell colours in HTML (PASS, WARN, FAIL, INFO, EXPECTED: see workshop_lib.checks).
STATUS_COLOURS = {"PASS": "#d4edda", "WARN": "#fff3cd", "FAIL": "#f8d7da", "INFO": "#e2e3e5", "EXPECTED": "#d6e4f0"}
MONOSPACE = ("evidence",)  # columns shown in a monospace font in HTML


def cell(value: Any) -> str:
    """A table cell as text: None -> '', lists joined with ', ', floats without noise.

    >>> cell(None), cell([1, 2.50]), cell(0.1), cell(float("nan"))
    ('', '1, 2.5', '0.1', '')
    """
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if value != value else f"{value:g}"  # NaN (a missing number) is an empty cell
    if isinstance(value, (list, tuple, set)):
        return ", ".join(cell(v) for v in value)
    return str(value)


def _number(value: Any) -> bool:
    """True for an int or float cell (not a bool); None and NaN count as numbers (empty cells of a numeric column)."""
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)) or (
        hasattr(value, "dtype") and getattr(value.dtype, "kind", "") in "iuf")


def clip(text: str, width: int | None = WIDTH) -> str:
    """One line, at most ``width`` characters (``...`` marks a cut; ``None`` keeps it whole).

    >>> clip("a\\nb", 10), clip("x" * 12, 8)
    ('a b', 'xxxxx...')
    """
    one = " ".join(text.split())
    return one if width is None or len(one) <= width else one[: width - 3] + "..."


def records(rows: Any) -> list[dict[str, Any]]:
    """Rows as a list of dicts: from a DataFrame, dataclasses, mappings, or anything with ``to_records()``."""
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):  # a pandas DataFrame
        return list(rows.to_dict(orient="records"))
    if hasattr(rows, "to_records") and not isinstance(rows, (list, tuple)):
        return list(rows.to_records())
    out = []
    for r in rows:
        if dataclasses.is_dataclass(r) and not isinstance(r, type):
            out.append(dataclasses.asdict(r))
        elif isinstance(r, Mapping):
            out.append(dict(r))
        else:
            raise TypeError(f"a table row must be a mapping or a dataclass, not {type(r).__name__}")
    return out


def text(rows: Any, columns: Sequence[str], *, title: str = "", width: int | None = WIDTH,
         below: str | None = None, headers: Mapping[str, str] | None = None) -> str:
    """A fixed-width text table of ``columns`` (cells clipped to ``width``); ``below`` goes on its own line.

    Args:
        title: a first line above the header (e.g. ``"NIXL: FAIL"``).
        headers: header text per column where it differs from the column name.
    """
    recs = records(rows)
    head = [(headers or {}).get(c, c) for c in columns]
    body = [[clip(cell(r.get(c)), width) for c in columns] for r in recs]
    widths = [max([len(h)] + [len(row[i]) for row in body]) for i, h in enumerate(head)]
    right = [all(_number(r.get(c)) for r in recs) and any(r.get(c) is not None for r in recs)  # numbers: right
             for c in columns]

    def line(cells: Iterable[str]) -> str:
        return "  ".join(c.rjust(w) if r else c.ljust(w)
                         for c, w, r in zip(cells, widths, right, strict=True)).rstrip()

    lines = [title] if title else []
    lines += [line(head), "  ".join("-" * w for w in widths)]
    indent = sum(w + 2 for w in widths[: min(2, len(widths) - 1)])  # under the third column (or the last)
    for r, row in zip(recs, body, strict=True):
        lines.append(line(row))
        extra = cell(r.get(below)) if below else ""
        if extra:
            lines.append(" " * indent + f"{below}: {clip(extra, None)}")
    return "\n".join(lines)


def frame(rows: Any, columns: Sequence[str]) -> pd.DataFrame:
    """Rows as a DataFrame with exactly ``columns`` (missing cells empty)."""
    import pandas as pd

    return pd.DataFrame(records(rows), columns=list(columns))


def html(rows: Any, columns: Sequence[str], *, caption: str = "", status: str = "status") -> str:
    """The notebook table (HTML of :func:`styled`)."""
    return styled(frame(rows, columns), caption=caption, status=status).to_html()


def styled(df: pd.DataFrame, *, caption: str = "", status: str = "status") -> Styler:
    """A pandas Styler: the ``status`` column's cells coloured, evidence in a monospace font, no index."""

    def colour(v: Any) -> str:
        return f"background-color: {STATUS_COLOURS[v]}; font-weight: bold" if v in STATUS_COLOURS else ""

    sty = df.style.hide(axis="index")
    if status in df.columns:
        sty = sty.map(colour, subset=[status])
    mono = [c for c in MONOSPACE if c in df.columns]
    if mono:
        sty = sty.set_properties(subset=mono, **{"font-family": "monospace", "font-size": "0.85em"})
    sty = sty.set_properties(**{"text-align": "left", "white-space": "pre-wrap"})
    return sty.set_caption(caption) if caption else sty


def to_json(rows: Any, columns: Sequence[str] | None = None, *, below: str | None = None) -> str:
    """The rows as a JSON list of objects (only ``columns`` and ``below`` when given), indented."""
    recs = records(rows)
    if columns is not None:
        keep = [*columns, *([below] if below and below not in columns else [])]
        recs = [{c: r.get(c) for c in keep} for r in recs]
    # NaN (a DataFrame's missing cell) is not JSON: it becomes null, as an empty cell reads in the text table
    recs = [{k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()} for r in recs]
    return json.dumps(recs, indent=2, default=str, allow_nan=False)


def render(rows: Any, columns: Sequence[str], fmt: str = "text", *, title: str = "", width: int | None = WIDTH,
           below: str | None = None) -> str:
    """``rows`` as ``text``, ``html`` or ``json`` (see the module docstring).

    Raises:
        ValueError: ``fmt`` is not one of :data:`FORMATS`.
    """
    if fmt == "text":
        return text(rows, columns, title=title, width=width, below=below)
    if fmt == "html":
        return html(rows, [*columns, *([below] if below and below not in columns else [])], caption=title)
    if fmt == "json":
        return to_json(rows, columns, below=below)
    raise ValueError(f"table format {fmt!r} is not one of {', '.join(FORMATS)}")
