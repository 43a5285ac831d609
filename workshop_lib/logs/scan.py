"""Fast scan of a log file for the lines that can carry a signature.

Reads big binary blocks, finds candidate lines with one ``bytes.find`` pass per key of
:data:`~workshop_lib.logs.patterns.SCAN_KEYS` over the whole block (no Python work for the other lines) and counts
lines with ``bytes.count``. Memory stays bounded by the block
size plus one line of at most ``max_line`` bytes (longer lines are cut, exactly as
:func:`~workshop_lib.logs.parser.read_lines` cuts them).

Example:
    >>> import tempfile, os
    >>> with tempfile.NamedTemporaryFile("wb", delete=False) as f:
    ...     _ = f.write(b"noise\\nBackend UCX was instantiated\\nmore noise")
    >>> scan = FileScan(f.name)
    >>> [(n, line) for n, line in scan]
    [(2, b'Backend UCX was instantiated')]
    >>> scan.lines
    3
    >>> os.unlink(f.name)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from workshop_lib.errors import LogParseError
from workshop_lib.logs.parser import check_readable
from workshop_lib.logs.patterns import SCAN_KEYS_BYTES

CHUNK = 8 << 20


class FileScan:
    """Iterate ``(line_number, line_bytes)`` over the candidate lines of a file; ``.lines`` is the total afterwards."""

    def __init__(self, path: str | Path, chunk: int = CHUNK, max_line: int = 8 << 20) -> None:
        self.path = Path(path)
        self.chunk = chunk
        self.max_line = max_line
        self.lines = 0
        check_readable(self.path)

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        for chunk in self.chunks():
            yield from self._lines_in(chunk, self.lines - chunk.count(b"\n"))

    def chunks(self, count: bool = True) -> Iterator[bytes]:
        """The file as blocks of whole lines, each ending with a newline (over-long lines cut to ``max_line``
        bytes); with ``count``, ``.lines`` already counts a block's lines when it is yielded."""
        try:
            with self.path.open("rb") as f:
                for chunk in self._scan(f):
                    if count:
                        self.lines += chunk.count(b"\n")
                    yield chunk
        except OSError as exc:
            raise LogParseError(str(self.path), f"cannot read: {exc.strerror or exc}", "check the file") from exc

    def _scan(self, f) -> Iterator[bytes]:  # noqa: ANN001 - a binary file object
        carry = b""
        skipping = False  # inside the discarded tail of an over-long line
        while True:
            block = f.read(self.chunk)
            eof = not block
            if skipping:
                nl = block.find(b"\n")
                if nl < 0 and block:
                    continue
                skipping, block = False, (block[nl + 1:] if block else b"")
                yield carry + b"\n"  # the cut line, now complete
                carry = b""
            data = carry + block if carry else block
            if eof:  # not merely an empty rest after a skipped tail: the lines after it still come
                if data:
                    yield data + b"\n"
                return
            cut = data.rfind(b"\n") + 1
            if cut == 0 and len(data) > self.max_line:
                carry, skipping = data[: self.max_line], True
                continue
            chunk, carry = data[:cut], data[cut:]
            if len(carry) > self.max_line:
                carry, skipping = carry[: self.max_line], True
            yield chunk

    def _lines_in(self, chunk: bytes, base: int) -> Iterator[tuple[int, bytes]]:
        """Candidate lines of ``chunk`` (which ends with a newline), numbered after ``base``."""
        starts: set[int] = set()
        find, rfind = chunk.find, chunk.rfind
        for key in SCAN_KEYS_BYTES:
            i = find(key)
            while i >= 0:
                s = rfind(b"\n", 0, i) + 1
                starts.add(s)
                i = find(key, find(b"\n", i) + 1)
        counted, prev = 0, 0
        for s in sorted(starts):
            counted += chunk.count(b"\n", prev, s)
            end = find(b"\n", s)
            yield base + counted + 1, chunk[s : min(end, s + self.max_line)]
            prev = s
