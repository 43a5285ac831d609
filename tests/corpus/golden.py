"""Golden answers for the log corpus: ``python tests/corpus/golden.py`` rewrites ``expected/*.json`` from the current
rules. Review the diff before committing it: a golden file is a reviewed answer, not a snapshot to accept blindly."""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PARTS = ("public", "lab", "heldout")


def corpus_files() -> list[Path]:
    return sorted(p for part in PARTS for p in (HERE / part).glob("*.log"))


def golden_of(path: Path) -> dict:
    """The part of a diagnosis a golden file pins: the contract without message text, plus versions seen."""
    from workshop_lib.logs import diagnose

    d = diagnose(path)
    out = d.to_dict()
    out["errors"] = [{"code": e["code"], "line": e["line"], "layer": e["layer"]} for e in d.errors]
    out["versions"] = d.versions
    return out


def expected_path(path: Path) -> Path:
    return HERE / "expected" / f"{path.parent.name}__{path.stem}.json"


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parents[1]))
    for p in corpus_files():
        expected_path(p).write_text(json.dumps(golden_of(p), indent=2, sort_keys=True) + "\n")
        print(expected_path(p).name)
