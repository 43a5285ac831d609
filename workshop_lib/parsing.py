"""Parsers and formatters of the values people type: byte sizes (``4K``, ``4K..64M``) and concurrency lists.

One of each for the whole kit (the NIXL pair, the benchmarks, the configuration, the notebooks' tables).
Errors are :class:`~workshop_lib.errors.ConfigError` naming the field (``where``) and the fix.

Example:
    >>> parse_sizes("4K,1M"), parse_sizes("4K..32K")
    ([4096, 1048576], [4096, 8192, 16384, 32768])
    >>> format_size(64 * MiB), parse_concurrency("1, 5,10")
    ('64M', [1, 5, 10])
"""

from __future__ import annotations

import re

from workshop_lib.errors import ConfigError

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

_UNITS = {
    "": 1,
    "B": 1,
    "K": KiB,
    "KB": KiB,
    "KIB": KiB,
    "M": MiB,
    "MB": MiB,
    "MIB": MiB,
    "G": GiB,
    "GB": GiB,
    "GIB": GiB,
}
_SIZE_RE = re.compile(r"^\s*(\d+)\s*([A-Za-z]*)\s*$")


def parse_size(token: str, where: str = "sizes") -> int:
    """``"4K"`` -> 4096. Units K, M, G (powers of 1024; KB, KiB and B also accepted)."""
    m = _SIZE_RE.match(token)
    unit = m.group(2).upper() if m else ""
    if not m or unit not in _UNITS:
        raise ConfigError(where, f"{token.strip()!r} is not a size", "write e.g. 4K,64K,1M or 4K..64M (units K, M, G)")
    value = int(m.group(1)) * _UNITS[unit]
    if value <= 0:
        raise ConfigError(where, f"{token.strip()!r} is zero", "sizes are positive byte counts, e.g. 4K")
    return value


def format_size(n: float, approx: bool = False) -> str:
    """4096 -> ``"4K"``; 1536 -> ``"1536"`` (exact, shortest unit; binary units as nixlbench writes them).

    ``approx=True`` (a plot's axis ticks): the largest unit that fits, fractional where needed (1536 -> ``"1.5K"``).
    """
    for unit, mult in (("G", GiB), ("M", MiB), ("K", KiB)):
        if approx and n >= mult:
            return f"{n / mult:g}{unit}"
        if not approx and n > 0 and n % mult == 0:
            return f"{int(n) // mult}{unit}"
    return f"{n:g}" if approx else str(n)


def parse_sizes(text: str, where: str = "sizes") -> list[int]:
    """``"4K,64K,1M"`` or ``"4K..64M"`` (every power of two from 4K to 64M), or both mixed, in order, deduplicated.

    Raises :class:`ConfigError` naming the field (``where``: a config field by default, a CLI flag from a CLI) and the
    bad token.
    """
    if not text or not text.strip():
        raise ConfigError(where, "no sizes given", "write e.g. 4K,64K,1M or 4K..64M")
    out: list[int] = []
    for token in text.split(","):
        if not token.strip():
            raise ConfigError(where, f"empty item in {text!r}", "separate sizes with single commas")
        if ".." in token:
            lo_t, _, hi_t = token.partition("..")
            lo, hi = parse_size(lo_t, where), parse_size(hi_t, where)
            if lo & (lo - 1):
                raise ConfigError(
                    where,
                    f"{lo_t.strip()!r} in {token.strip()!r} is not a power of two",
                    "ranges run over powers of two, e.g. 4K..64M",
                )
            if hi < lo:
                raise ConfigError(where, f"range {token.strip()!r} runs backwards", "write the smaller size first")
            n = lo
            while n <= hi:
                out.append(n)
                n *= 2
        else:
            out.append(parse_size(token, where))
    return list(dict.fromkeys(out))


def parse_concurrency(text: str, where: str = "concurrency", example: str = "1,5,10,20") -> list[int]:
    """``"1,5,10"`` -> ``[1, 5, 10]``: a comma-separated list of positive integers (concurrency levels).

    Args:
        text: what the user wrote.
        where: the field named in an error (a CLI flag, a config field, ``--set concurrency``).
        example: a valid value to show in the fix, e.g. ``concurrency=1,5,10,20``.

    Raises:
        ConfigError: an item is not a positive integer, or there is none.

    >>> parse_concurrency("1, 5,10")
    [1, 5, 10]
    """
    try:
        out = [int(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        raise ConfigError(where, f"{text!r} is not a list of integers", f"use e.g. {example}") from None
    if not out or min(out) <= 0:
        raise ConfigError(where, f"{text!r} must hold positive integers", f"use e.g. {example}")
    return out
