"""The compiled half of the fast scan: ``native/shapescan.c`` built once per source version and loaded with ctypes.

The library is compiled on first use with the system C compiler (``$CC``, else ``cc``/``gcc``: ``-O2 -shared
-fPIC``, no dependencies) into the user's cache directory (``$XDG_CACHE_HOME/workshop``, else
``~/.cache/workshop``), named by the source's hash: never into the source tree, never twice. When there is no
compiler, or compiling or loading fails, :func:`load` returns None and :func:`scanner` says why; the pure-Python scan
then runs (same diagnosis, slower) and the CLI names the scanner that ran.

Example:
    >>> scanner() in ("native (shapescan.c)",) or scanner().startswith("python")
    True
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
from collections.abc import Callable
from pathlib import Path

SOURCE = Path(__file__).resolve().with_name("native") / "shapescan.c"
NATIVE = "native (shapescan.c)"
_state: dict[str, object] = {}


def cache_dir() -> Path:
    """Where the compiled library is kept: ``$XDG_CACHE_HOME/workshop``, else ``~/.cache/workshop``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "workshop"


def library_path() -> Path:
    """The compiled library for this source version and machine."""
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]
    return cache_dir() / f"shapescan-{digest}-{platform.machine() or 'cpu'}.so"


def compiler() -> str | None:
    """``$CC``, else ``cc`` or ``gcc`` on the PATH (None: no compiler)."""
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


def build(source: Path = SOURCE, out: Path | None = None) -> Path:
    """Compile ``source`` into ``out`` (default :func:`library_path`) unless it is there already; returns its path.

    Raises:
        OSError: no compiler, or it failed (the message names the command and its error).
    """
    out = out or library_path()
    if out.exists():
        return out
    cc = compiler()
    if not cc:
        raise OSError("no C compiler (set $CC or install gcc)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.{os.getpid()}.tmp")
    cmd = [cc, "-O2", "-shared", "-fPIC", "-o", str(tmp), str(source)]
    import subprocess  # only when compiling (once per source version): not on every start-up

    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except FileNotFoundError as exc:
        raise OSError(f"C compiler {cc} not found (set $CC or install gcc)") from exc
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise OSError(f"compiling {source.name} with {cc}: {exc}") from exc
    if res.returncode != 0:
        tmp.unlink(missing_ok=True)
        err = res.stderr.strip().splitlines()
        raise OSError(f"compiling {source.name} with {cc} failed: {err[-1][:150] if err else res.returncode}")
    tmp.replace(out)  # atomic: a concurrent run sees the old state or the whole library
    return out


def exact_key_ids(lib: ctypes.CDLL, lines: list[bytes], spans: tuple[tuple[int, int], ...] | None) -> list[int]:
    """The exact key id of each line when every line's shape is digit-sensitive with ``spans`` (None: the whole
    line), as the fast scan keys them: two lines get the same id exactly when their shapes are equal and the bytes of
    those spans are equal (the Python key, :meth:`workshop_lib.logs.fastscan._Exact.key`)."""
    block = b"".join(x + b"\n" for x in lines)
    cap = len(lines) + 1
    starts, sids, kids = (ctypes.c_int64 * (cap + 2))(), (ctypes.c_int32 * cap)(), (ctypes.c_int32 * cap)()
    vids = (ctypes.c_int32 * cap)()
    ctx = lib.ss_new(1 << 10)
    try:
        lib.ss_scan(ctx, block, len(block), starts, sids, kids, vids, cap)
        triples, blob = span_args(spans or ())
        for sid in range(lib.ss_count(ctx)):
            lib.ss_spans(ctx, sid, triples, -1 if spans is None else len(spans), blob, len(blob))
        n = lib.ss_scan(ctx, block, len(block), starts, sids, kids, vids, cap)
    finally:
        lib.ss_free(ctx)
    return list(kids[:n])


def span_args(spans: tuple) -> tuple[ctypes.Array, bytes]:
    """``ss_spans``'s arguments for ``spans`` (``(start, end, values)``, see :func:`workshop_lib.logs.shapes.exact_spans`):
    the int32 triples (and one spare 0: never an empty array) and the blob of value lists they point into (values
    None: -1).

    Example:
        >>> t, blob = span_args(((3, 5, None), (9, 11, (b"61",))))
        >>> list(t), blob
        ([3, 5, -1, 9, 11, 0, 0], b'\\x0261\\x00')
    """
    flat: list[int] = []
    blob = bytearray()
    for a, b, vals in spans:
        flat += [a, b, -1 if vals is None else len(blob)]
        if vals is not None:
            for v in vals:
                blob += bytes([len(v)]) + v
            blob.append(0)
    return (ctypes.c_int32 * (len(flat) + 1))(*flat), bytes(blob)


def bind(lib: ctypes.CDLL) -> ctypes.CDLL:
    """Declare the library's functions (argument and result types) on ``lib``."""
    p, i64, i32, u32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int32, ctypes.c_uint32
    sigs = {
        "ss_new": (p, [u32]), "ss_free": (None, [p]), "ss_clear": (ctypes.c_int, [p]), "ss_count": (i32, [p]),
        "ss_keys": (i32, [p]), "ss_bytes": (i64, [p]), "ss_prune": (i64, [p, p]), "ss_set": (ctypes.c_int, [p, i32, i32]), "ss_setk": (ctypes.c_int, [p, i32, i32]),
        "ss_spans": (ctypes.c_int, [p, i32, p, i32, p, i32]),
        "ss_scan": (i64, [p, p, i64, p, p, p, p, i64]),
        "ss_tally": (i64, [p, i64, i32, p, p, p, p]),
        "ss_select": (i64, [p, i64, p, p]), "ss_misses": (i64, [p, i64, p]),
        "ss_refill": (i64, [p, p, p, p, p, p, i64, i64, p, i64]),
        "ks_new": (p, [ctypes.c_char_p, i32]), "ks_free": (None, [p]), "ks_find": (None, [p, ctypes.c_char_p, i64, p]),
    }
    for name, (res, args) in sigs.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    return lib


def load() -> ctypes.CDLL | None:
    """The loaded library (built on first use), or None when it cannot be had (see :func:`scanner`)."""
    if "lib" not in _state:
        try:
            _state["lib"] = bind(ctypes.CDLL(str(build())))
            _state["why"] = ""
        except (OSError, AttributeError) as exc:
            _state["lib"] = None
            _state["why"] = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    return _state["lib"]  # type: ignore[return-value]


def scanner() -> str:
    """Which scanner the fast path uses: :data:`NATIVE`, or ``python (<why the native one is not there>)``."""
    return NATIVE if load() is not None else f"python ({_state['why']})"


def rule_filter(lib: ctypes.CDLL) -> Callable[[bytes], tuple | None] | None:
    """A function giving, for a line, None when it holds no prefilter key (:data:`workshop_lib.logs.patterns.SCAN_KEYS`:
    no event possible), else the rules whose key occurs anywhere in it, in priority order (a superset of the rules
    :func:`workshop_lib.logs.parser.classify` would try: it still tests each key against the message). None when the
    key table cannot be built.

    Example:
        >>> lib = load()
        >>> f = lib and rule_filter(lib)
        >>> f is None or ([r.event for r in f(b"I1207 x.cpp:1] Backend UCX was instantiated")], f(b"plain"))
        (['nixl.backend_instantiated'], None)
    """
    from workshop_lib.logs.patterns import PREFILTER_KEYS, RULE_KEYS, RULES_BY_PRIORITY

    made = _state.setdefault("rule_filter", {})
    if id(lib) in made:  # one key table per loaded library, kept as long as it
        return made[id(lib)]
    keys = [*RULE_KEYS, *(k for k in PREFILTER_KEYS if k not in RULE_KEYS)]
    blob = b"".join(bytes([len(k)]) + k.encode() for k in keys)
    ks = lib.ks_new(blob, len(keys))
    if not ks:
        made[id(lib)] = None
        return None
    index = {k: i for i, k in enumerate(keys)}
    bits = [1 << index[r.key] for r in RULES_BY_PRIORITY]
    mask = (ctypes.c_uint64 * 2)()
    cache: dict[int, tuple] = {}
    find = lib.ks_find

    def rules_in(raw: bytes) -> tuple | None:
        find(ks, raw, len(raw), mask)
        m = mask[0] | (mask[1] << 64)
        if not m:
            return None
        got = cache.get(m)
        if got is None:
            if len(cache) > 4096:
                cache.clear()
            got = cache[m] = tuple(r for r, b in zip(RULES_BY_PRIORITY, bits, strict=True) if m & b)
        return got

    made[id(lib)] = rules_in
    return rules_in


def shape_ids(lib: ctypes.CDLL, block: bytes, long_line: int = 1 << 10) -> list[int]:
    """The shape id of each line of ``block`` (which ends with a newline) in a fresh table: two lines get the same id
    exactly when their digit-normalised bytes are equal; -1 for a line longer than ``long_line``.

    Example:
        >>> lib = load()
        >>> lib is None or shape_ids(lib, b"rail 1\\nrail 7\\nrail x\\n") == [0, 0, 1]
        True
    """
    cap = block.count(b"\n") + 1
    starts, sids, vids = (ctypes.c_int64 * (cap + 2))(), (ctypes.c_int32 * cap)(), (ctypes.c_int32 * cap)()
    ctx = lib.ss_new(long_line)
    try:
        n = lib.ss_scan(ctx, block, len(block), starts, sids, (ctypes.c_int32 * cap)(), vids, cap)
    finally:
        lib.ss_free(ctx)
    if n < 0:
        raise MemoryError("shapescan: out of memory")
    return list(sids[:n])
