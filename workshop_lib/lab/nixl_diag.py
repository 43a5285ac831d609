"""Why a NIXL pair row failed its checksum: a per-block comparison, reduced to one line (pure, no NIXL import).

When a region's checksum does not match, the parent asks both agents for one checksum per block (descriptor) and
:func:`diagnose` says which blocks are wrong and what they hold instead: the source's bytes of another offset,
zeros (never written), or something else.

One pattern is known and named: NIXL 0.9.0's LIBFABRIC plugin, on the ``tcp`` and ``sockets`` providers (the lab's
TCP fallback), sends every descriptor to offset 0 of the remote registered region
(``libfabric_rail_manager.cpp``, ``prepareAndSubmitTransfer``: "TCP provider detected: using offset 0 instead of
virtual address"). A READ then fills every local block with the remote region's first block; a WRITE lands every
block on the remote region's first block and leaves the others untouched. A single descriptor at the start of its
region (batch 1, inflight 1) is unaffected. See ``benchmarks/nixl_vram/LIBFABRIC-MULTIDESC.md``.

Example:
    >>> d = diagnose("READ", "LIBFABRIC", "tcp", "0.9.0", 4096, 2, 1, ["a", "b"], ["a", "a"], zero="z")
    >>> d.pattern
    'remote-offset-0'
    >>> d.wrong_offsets
    [4096]
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

from workshop_lib.parsing import format_size

REMOTE_OFFSET_0 = "remote-offset-0"
OFFSET_0_PROVIDERS = ("tcp", "sockets")


def zero_checksum(mem: str, nbytes: int) -> str:
    """The checksum an agent reports for ``nbytes`` zero bytes (crc32 for DRAM, the GPU sums for VRAM)."""
    if mem == "VRAM":
        return "gpusum:0:0"
    return f"crc32:{zlib.crc32(bytes(nbytes)):08x}"


@dataclass(frozen=True, slots=True)
class BlockMismatch:
    """One wrong block of the destination region."""

    offset: int  # byte offset in the destination region
    holds: str  # "source@<offset>" | "zeros" | "other"


@dataclass
class Diagnosis:
    """Per-block verdict of one block size; ``line`` is the one-line summary the CLI prints."""

    block: int
    blocks: int
    wrong: list[BlockMismatch] = field(default_factory=list)
    pattern: str | None = None  # REMOTE_OFFSET_0 when the blocks show that pattern
    line: str = ""

    @property
    def wrong_offsets(self) -> list[int]:
        return [w.offset for w in self.wrong]

    def to_json(self) -> dict[str, object]:
        return {
            "block": self.block,
            "blocks": self.blocks,
            "wrong_offsets": self.wrong_offsets,
            "holds": [w.holds for w in self.wrong],
            "pattern": self.pattern,
            "line": self.line,
        }


def classify_blocks(expected: list[str], got: list[str], block: int, zero: str) -> list[BlockMismatch]:
    """The destination blocks whose checksum differs from the source's block at the same offset."""
    if len(expected) != len(got):
        raise ValueError(f"{len(expected)} source blocks but {len(got)} destination blocks")
    out = []
    for j, (e, g) in enumerate(zip(expected, got, strict=True)):
        if g == e:
            continue
        if g in expected:
            holds = f"source@{expected.index(g) * block}"
        elif g == zero:
            holds = "zeros"
        else:
            holds = "other"
        out.append(BlockMismatch(j * block, holds))
    return out


def is_remote_offset_0(op: str, expected: list[str], got: list[str], zero: str) -> bool:
    """Do the blocks show every descriptor addressing offset 0 of the remote region?

    READ (destination = local): every block holds the source's first block. WRITE (destination = remote): the first
    block holds one of the source's blocks (the last to land), every other block is still zeros.
    """
    if len(got) < 2 or got == expected:
        return False
    if op == "READ":
        return all(g == expected[0] for g in got)
    return got[0] in expected and all(g == zero for g in got[1:])


def _offsets(offsets: list[int], limit: int = 4) -> str:
    names = [format_size(o) if o else "0" for o in offsets]
    if len(names) > limit:
        names = [*names[: limit - 1], "...", names[-1]]
    return ", ".join(names)


def _offsets_phrase(offsets: list[int]) -> str:
    return f"offset{'s' if len(offsets) != 1 else ''} {_offsets(offsets)}"


def _noun(offsets: list[int]) -> str:
    """``"offset 64K holds"`` / ``"offsets 64K, 128K hold"``."""
    return f"{_offsets_phrase(offsets)} {'holds' if len(offsets) == 1 else 'hold'}"


def diagnose(
    op: str,
    backend: str,
    provider: str | None,
    nixl_version: str | None,
    block: int,
    batch: int,
    inflight: int,
    expected: list[str],
    got: list[str],
    zero: str,
) -> Diagnosis:
    """One block size's per-block verdict: which blocks are wrong, the known pattern if any, one line."""
    wrong = classify_blocks(expected, got, block, zero)
    d = Diagnosis(block=block, blocks=len(got), wrong=wrong)
    n = f"{len(wrong)} of {len(got)} {format_size(block)} blocks"
    if not wrong:
        d.line = f"{format_size(block)}: every block matches (the region checksum differed only in transit?)"
        return d
    if is_remote_offset_0(op, expected, got, zero):
        d.pattern = REMOTE_OFFSET_0
        if op == "READ":
            what = f"{_noun(d.wrong_offsets)} the remote bytes of offset 0"
        else:
            first = got[0]
            src = expected.index(first) * block
            unwritten = [o for o in d.wrong_offsets if o]
            what = f"{_offsets_phrase(unwritten)} {'was' if len(unwritten) == 1 else 'were'} never written"
            what += f", offset 0 holds the local bytes of offset {format_size(src) if src else 0}"
        who = (
            f"NIXL {nixl_version or '?'} LIBFABRIC ({provider} provider)"
            if backend == "LIBFABRIC" and provider in OFFSET_0_PROVIDERS
            else f"{backend} ({provider or 'unknown transport'})"
        )
        d.line = (
            f"{who}: every descriptor went to offset 0 of the remote registered region "
            f"(batch {batch} x inflight {inflight}); {n} wrong: {what}"
        )
        return d
    kinds = sorted({w.holds.split("@")[0] for w in wrong})
    d.line = f"{backend}: {n} wrong at {_offsets_phrase(d.wrong_offsets)} (they hold: {', '.join(kinds)})"
    return d


def summary_line(diags: list[Diagnosis]) -> str | None:
    """One line for a whole run: the first size's line, plus the other sizes that show the same pattern."""
    if not diags:
        return None
    first = diags[0]
    same = [format_size(d.block) for d in diags[1:] if d.pattern and d.pattern == first.pattern]
    other = [format_size(d.block) for d in diags[1:] if not (d.pattern and d.pattern == first.pattern)]
    line = first.line
    if same:
        line += f"; same at {', '.join(same)}"
    if other:
        line += f"; other mismatches at {', '.join(other)} (see meta['mismatches'])"
    return line
