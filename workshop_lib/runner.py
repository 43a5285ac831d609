"""Run the four workshop notebooks headless with papermill (``make run``, ``workshop run``).

Each notebook is executed into ``runs/<timestamp>/`` with its parameters, exported to HTML, and summarised in one
table (notebook, status, seconds, key verdicts). Values the notebooks record (:mod:`workshop_lib.record`) land in
``runs/<timestamp>/records/``. An executed notebook that contains a secret value (the HF token) is a failure.

Example:
    >>> summary = run_notebooks(target="local")          # doctest: +SKIP
    >>> print(format_summary(summary))                   # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from workshop_lib import record as record_mod
from workshop_lib import table
from workshop_lib.errors import NotebookError
from workshop_lib.paths import repo_root

REPO = repo_root()
NOTEBOOK_DIR = REPO / "notebooks"
# Records whose names start with one of these go into the summary's "key verdicts" column.
SUMMARY_PREFIXES = ("verdict", "summary", "status")
# Verdict values that fail a headless run (a check table's FAIL, a check that could not run). PASS, WARN, EXPECTED
# and NO EVIDENCE do not; a diagnosis ("tcp-fallback") is a finding, not a verdict on the run.
FAILING_VERDICTS = ("FAIL", "ERROR")


@dataclass
class NotebookRun:
    """The outcome of one notebook."""

    notebook: str
    status: str  # "ok" | "failed" | "skipped"
    seconds: float
    output: Path | None = None
    html: Path | None = None
    records: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def verdicts(self) -> str:
        keys = [k for k in sorted(self.records) if k.startswith(SUMMARY_PREFIXES)]
        return ", ".join(f"{k}={self.records[k]}" for k in keys)

    def failed_verdicts(self) -> list[str]:
        """``verdict_<name>=FAIL`` (or ``=error``) for each verdict this notebook recorded as failing."""
        return [f"{k}={v}" for k, v in sorted(self.records.items())
                if k.startswith("verdict") and isinstance(v, str) and v.strip().upper() in FAILING_VERDICTS]


def discover(names: Sequence[str] | None = None, notebook_dir: Path = NOTEBOOK_DIR) -> list[Path]:
    """The workshop notebooks in order; ``names`` selects by prefix (``01``) or stem.

    Raises:
        NotebookError: a name matches no notebook.
    """
    all_nbs = sorted(p for p in notebook_dir.glob("[0-9][0-9]-*.ipynb"))
    if not names:
        return all_nbs
    chosen: list[Path] = []
    for n in names:
        hits = [p for p in all_nbs if p.stem == n or p.stem.startswith(f"{n}-") or p.name == n]
        if not hits:
            raise NotebookError(
                "--notebooks", f"no notebook matches {n!r}", f"use one of {', '.join(p.stem for p in all_nbs)}"
            )
        chosen.extend(h for h in hits if h not in chosen)
    return chosen


def notebook_parameters(nb: Path) -> set[str]:
    """The names assigned in ``nb``'s cell tagged ``parameters`` (what papermill can set in it).

    >>> import nbformat, tempfile; d = Path(tempfile.mkdtemp()); c = nbformat.v4.new_code_cell("A = 1\\nB = None  # x")
    >>> c.metadata["tags"] = ["parameters"]; nb = nbformat.v4.new_notebook(); nb.cells = [c]
    >>> nbformat.write(nb, d / "n.ipynb"); sorted(notebook_parameters(d / "n.ipynb"))
    ['A', 'B']
    """
    import ast

    names: set[str] = set()
    for cell in json.loads(nb.read_text()).get("cells", []):
        if "parameters" in (cell.get("metadata", {}).get("tags") or []):
            src = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
            for node in ast.parse(src).body:
                if isinstance(node, ast.Assign):
                    names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def check_parameters_used(names: Sequence[str], notebooks: Sequence[Path]) -> None:
    """Every ``-p`` name must be a parameter of at least one chosen notebook (papermill would only warn).

    Raises:
        NotebookError: naming the parameter and the notebooks that do take it.
    """
    every = {nb: notebook_parameters(nb) for nb in discover(None, notebooks[0].parent)} if notebooks else {}
    chosen = {nb: every.get(nb, notebook_parameters(nb)) for nb in notebooks}
    for name in names:
        if not any(name in params for params in chosen.values()):
            users = [nb.stem for nb, params in every.items() if name in params]
            raise NotebookError(
                f"-p {name}", f"not a parameter of {', '.join(nb.stem for nb in notebooks)} (papermill would ignore it)",
                f"run it with --notebooks {','.join(u[:2] for u in users)}" if users else "drop it",
            )


SECRET_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """The secret values (the HF token under its names) that must appear in no output the kit writes."""
    env = os.environ if environ is None else environ
    return [env[k] for k in SECRET_ENV if env.get(k)]


def find_secrets(nb_path: Path, secrets: Sequence[str]) -> list[str]:
    """Names of cells (``cell <n>``) whose source or outputs contain any of ``secrets`` (values never returned)."""
    secrets = [s for s in secrets if s and len(s) >= 6]
    if not secrets:
        return []
    nb = json.loads(nb_path.read_text())
    bad = []
    for i, cell in enumerate(nb.get("cells", [])):
        blob = json.dumps(cell)
        if any(s in blob for s in secrets):
            bad.append(f"cell {i}")
    return bad


def secret_files(roots: Sequence[Path], secrets: Sequence[str]) -> list[Path]:
    """Files under ``roots`` (folders or files) whose bytes contain any of ``secrets`` (values never returned).

    Covers what a run leaves behind: executed notebooks, HTML, record files, ``summary.json`` and the local lab's
    process logs (Dynamo, vLLM, NIXL), read in chunks so large logs cost little memory.
    """
    needles = [s.encode() for s in secrets if s and len(s) >= 6]
    if not needles:
        return []
    longest = max(len(n) for n in needles)
    hits: list[Path] = []
    for root in roots:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []
        for f in files:
            try:
                with f.open("rb") as fh:
                    tail = b""
                    while chunk := fh.read(1 << 20):
                        blob = tail + chunk
                        if any(n in blob for n in needles):
                            hits.append(f)
                            break
                        tail = blob[-longest:]
            except OSError:
                continue
    return hits


def _lab_run_dir() -> Path | None:
    """The local lab's current run folder (its process logs), if a lab has run."""
    try:
        from workshop_lib.lab.serving import Lab

        return Lab().status().run_dir
    except Exception:  # noqa: BLE001 - no lab on this machine: nothing to scan
        return None


@contextlib.contextmanager
def _environ(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the block, then put back what was there."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _export_html(nb_path: Path) -> Path:
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_filename(str(nb_path))
    out = nb_path.with_suffix(".html")
    out.write_text(body)
    return out


def run_one(
    nb: Path,
    out_dir: Path,
    parameters: Mapping[str, Any],
    *,
    kernel_name: str = "python3",
    timeout_s: int = 1800,
    html: bool = True,
) -> NotebookRun:
    """Execute ``nb`` with papermill into ``out_dir``; never raises for a failing notebook (status "failed")."""
    import papermill as pm

    out_dir.mkdir(parents=True, exist_ok=True)
    rec_dir = out_dir / "records"
    out = out_dir / nb.name
    rec_file = rec_dir / f"{nb.stem}.json"
    rec_file.unlink(missing_ok=True)
    start = time.monotonic()
    error = None
    try:
        with _environ({record_mod.ENV_DIR: str(rec_dir), record_mod.ENV_NOTEBOOK: nb.stem}):  # the kernel inherits it
            pm.execute_notebook(
                str(nb),
                str(out),
                parameters=dict(parameters),
                kernel_name=kernel_name,
                cwd=str(nb.parent),
                progress_bar=False,
                execution_timeout=timeout_s,
                log_output=False,
            )
    except Exception as exc:  # papermill wraps cell errors; report, do not crash the run
        ename = getattr(exc, "ename", type(exc).__name__)
        evalue = getattr(exc, "evalue", str(exc))
        cell = getattr(exc, "exec_count", None)
        error = f"{ename}: {evalue}" + (f" (cell [{cell}])" if cell is not None else "")
    seconds = time.monotonic() - start
    html_path = None
    if html and out.exists():
        try:
            html_path = _export_html(out)
        except Exception as exc:  # an export problem must not hide the notebook's own status
            error = error or f"HTML export failed: {exc}"
    secret_cells = find_secrets(out, secret_values()) if out.exists() else []
    if secret_cells:
        error = f"the HF token appears in {', '.join(secret_cells)} of the executed notebook; it was deleted"
        out.unlink()
        if html_path:
            html_path.unlink(missing_ok=True)
            html_path = None
    return NotebookRun(
        notebook=nb.stem,
        status="failed" if error else "ok",
        seconds=round(seconds, 1),
        output=out if out.exists() else None,
        html=html_path,
        records=record_mod.load(rec_file),
        error=error,
    )


def fail_on_verdicts(run: NotebookRun) -> NotebookRun:
    """A notebook that ran to the end but recorded a FAIL (or error) verdict fails the headless run, naming it."""
    failing = run.failed_verdicts()
    if failing and run.status == "ok":
        run.status = "failed"
        run.error = f"recorded a failing verdict: {', '.join(failing)}"
    return run


def run_notebooks(
    target: str = "local",
    parameters: Mapping[str, Any] | None = None,
    names: Sequence[str] | None = None,
    out_root: Path | None = None,
    *,
    timeout_s: int = 1800,
    html: bool = True,
    stop_on_failure: bool = False,
    quiet: bool = False,
    scan_dirs: Sequence[Path] | None = None,
    notebook_dir: Path = NOTEBOOK_DIR,
) -> list[NotebookRun]:
    """Execute the workshop notebooks in order on ``target`` into ``runs/<timestamp>/``.

    Afterwards every file of the run, and ``scan_dirs`` (default: the local lab's run folder when ``target`` is
    local), is scanned for the HF token; a hit adds a failed ``secret-scan`` row naming the files (never the value).
    """
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out_dir = (out_root or REPO / "runs") / stamp
    params = {"TARGET": target, **(parameters or {})}
    results: list[NotebookRun] = []
    nbs = discover(names, notebook_dir)
    if not nbs:
        raise NotebookError(str(notebook_dir), "no workshop notebooks found", "run from a checkout of the kit")
    def say(text: str, end: str = "\n") -> None:
        if not quiet:
            print(text, end=end, flush=True)

    say(f"running {len(nbs)} notebook(s) on TARGET={target} into {out_dir}")
    for i, nb in enumerate(nbs, 1):
        say(f"[{i}/{len(nbs)}] {nb.stem} ...", end="")
        res = fail_on_verdicts(run_one(nb, out_dir, params, timeout_s=timeout_s, html=html))
        results.append(res)
        say(f" {res.status} in {res.seconds:.0f} s" + (f": {res.error}" if res.error else ""))
        if res.status == "failed" and stop_on_failure:
            break
    # The HF token must be nowhere the run wrote: records, HTML, notebooks, and (local) the lab's process logs.
    secrets = secret_values()
    for r in results:
        if secrets and secret_files([out_dir / "records" / f"{r.notebook}.json"], secrets):
            (out_dir / "records" / f"{r.notebook}.json").unlink(missing_ok=True)
            r.records, r.status = {}, "failed"
            r.error = "the HF token appears in this notebook's records; the record file was deleted"
    scan = [out_dir] + [d for d in (scan_dirs if scan_dirs is not None else
                                    ([_lab_run_dir()] if target == "local" else [])) if d is not None]
    leaked = secret_files(scan, secrets)
    for f in leaked:
        if f.is_relative_to(out_dir):
            f.unlink()
    if leaked:
        where = ", ".join(str(f) for f in leaked[:5]) + (f" and {len(leaked) - 5} more" if len(leaked) > 5 else "")
        results.append(NotebookRun("secret-scan", "failed", 0.0,
                                   error=f"the HF token appears in {where} (files of this run were deleted)"))
    (out_dir / "summary.json").write_text(
        json.dumps(
            [
                {
                    "notebook": r.notebook,
                    "status": r.status,
                    "seconds": r.seconds,
                    "output": str(r.output) if r.output else None,
                    "html": str(r.html) if r.html else None,
                    "records": r.records,
                    "error": r.error,
                }
                for r in results
            ],
            indent=2,
        )
    )
    return results


def format_summary(results: Sequence[NotebookRun]) -> str:
    """A plain-text table (:func:`workshop_lib.table.text`): notebook, status, seconds, key verdicts."""
    rows = [{"notebook": r.notebook, "status": r.status.upper(), "seconds": f"{r.seconds:.0f}",
             "verdicts": r.verdicts() or (r.error or "")} for r in results]
    return table.text(rows, ["notebook", "status", "seconds", "verdicts"], width=None,
                      headers={"verdicts": "key verdicts"})
