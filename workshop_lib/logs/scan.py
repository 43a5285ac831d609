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
        for view in self.views():
            chunk = bytes(view)
            if count:
                self.lines += chunk.count(b"\n")
            yield chunk

    def views(self) -> Iterator[memoryview | bytes]:
        """:meth:`chunks` without copying: each block is a view into one buffer that is reused for the next block
        (read it before asking for the next; ``bytes(view)`` keeps it). No ``.lines`` counting."""
        try:
            with self.path.open("rb") as f:
                yield from self._scan(f)
        except OSError as exc:
            raise LogParseError(str(self.path), f"cannot read: {exc.strerror or exc}", "check the file") from exc

    def _scan(self, f) -> Iterator[memoryview | bytes]:  # noqa: ANN001, C901 - a binary file object; one state machine
        chunk, max_line = self.chunk, self.max_line
        buf = bytearray(chunk + max_line + 1)  # the carried partial line (<= max_line), one read, a final newline
        mv = memoryview(buf)
        have = 0  # bytes carried at the front of buf: the start of a line (or the kept head of an over-long one)
        skipping = False  # inside the discarded tail of an over-long line
        while True:
            n = f.readinto(mv[have:have + chunk])
            eof = not n
            total = have + n
            if skipping:
                nl = buf.find(b"\n", have, total)
                if nl < 0 and not eof:
                    continue  # still inside the tail: the read is dropped, the kept head stays
                skipping = False
                yield bytes(mv[:have]) + b"\n"  # the cut line, now complete
                rest = bytes(mv[nl + 1:total]) if not eof else b""
                buf[:len(rest)] = rest
                total = len(rest)
            if eof:  # not merely an empty rest after a skipped tail: the lines after it still come
                if total:
                    buf[total] = 10  # the last line without a newline gets one
                    yield mv[:total + 1]
                return
            cut = buf.rfind(b"\n", 0, total) + 1
            if cut == 0 and total > max_line:
                have, skipping = max_line, True
                continue
            yield mv[:cut]
            have = total - cut
            if have > max_line:
                have, skipping = max_line, True
            if have:
                buf[:have] = bytes(mv[cut:cut + have])

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
