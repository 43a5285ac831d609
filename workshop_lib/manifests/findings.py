"""``Finding``: one problem found in a manifest, with where it is and how to fix it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from workshop_lib.manifests.documents import Doc, FieldPath

SEVERITIES = ("error", "warning", "info")


@dataclass(frozen=True, order=True)
class Finding:
    """A schema violation, a structural problem or a workshop lint rule broken by one document.

    ``doc`` is ``Kind/name``; ``field_path`` is dotted (``spec.services.DecodeWorker.resources``).
    """

    code: str
    severity: str
    file: str
    line: int
    doc: str
    field_path: str
    message: str
    fix: str

    def format(self) -> str:
        """One line: ``file:line: severity CODE doc field: message. Fix: ...``."""
        where = f" {self.field_path}" if self.field_path else ""
        return f"{self.file}:{self.line}: {self.severity} {self.code} {self.doc}{where}: {self.message}. Fix: {self.fix}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def dotted(path: FieldPath) -> str:
    """``("spec", "services", "A", "envs", 0)`` -> ``spec.services.A.envs[0]``."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def finding(doc: Doc, code: str, severity: str, path: FieldPath, message: str, fix: str) -> Finding:
    """A :class:`Finding` on ``doc`` at ``path`` (the line comes from the document's line map)."""
    return Finding(code, severity, doc.file, doc.line_of(path), f"{doc.kind or '?'}/{doc.name or '?'}", dotted(path), message, fix)
