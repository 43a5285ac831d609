"""Prompts of about ``isl`` input tokens, built locally (no tokenizer download).

Without a tokenizer the prompt is ``isl`` short common English words, which most BPE vocabularies encode as one token
each (with the leading space), so the count is close. With a tokenizer directory (the lab's model dir holding
``tokenizer.json``) the words are trimmed to exactly ``isl`` tokens of that tokenizer. Every prompt starts with its
own index so that no two requests share a long prefix (a prefix cache would otherwise skew TTFT).

Example:
    >>> p = build_prompts(2, 8)
    >>> len(p[0].split()), p[0] != p[1]
    (8, True)
"""

from __future__ import annotations

import random
from pathlib import Path

from workshop_lib.errors import ConfigError

WORDS = (
    "the of and to in is was for on are with as his they be at one have this from or had by hot word but what some we "
    "can out other were all there when up use your how said an each she which do their time if will way about many "
    "then them write would like so these her long make thing see him two has look more day could go come did number "
    "sound no most people my over know water than call first who may down side been now find any new work part take "
    "get place made live where after back little only round man year came show every good me give our under name very"
).split()


def build_prompts(n: int, isl: int, tokenizer_dir: str | Path | None = None, seed: int = 0) -> list[str]:
    """``n`` distinct prompts of about ``isl`` tokens (exactly ``isl`` with ``tokenizer_dir``).

    Raises:
        ConfigError: ``isl`` or ``n`` is not positive, or ``tokenizer_dir`` has no readable ``tokenizer.json``.
    """
    if isl <= 0:
        raise ConfigError("isl", f"{isl} is not a positive token count", "use e.g. --isl 512")
    if n < 0:
        raise ConfigError("requests", f"{n} is negative", "use a positive request count")
    rng = random.Random(seed)
    texts = [" ".join([str(i)] + rng.choices(WORDS, k=isl - 1)) for i in range(n)]
    if tokenizer_dir is None:
        return texts
    tok = _load_tokenizer(Path(tokenizer_dir))
    out = []
    for t in texts:
        ids = tok.encode(t + " " + " ".join(rng.choices(WORDS, k=isl)), add_special_tokens=False).ids[:isl]
        out.append(tok.decode(ids))
    return out


def _load_tokenizer(d: Path):  # -> tokenizers.Tokenizer
    path = d / "tokenizer.json" if d.is_dir() else d
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise ConfigError("tokenizer", "the tokenizers package is not installed", "pip install the kit's lab extra "
                          "or leave --tokenizer out (prompts are then sized in words)") from None
    try:
        return Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises a bare Exception
        raise ConfigError(str(path), f"cannot load a tokenizer ({exc})",
                          "give the model directory that holds tokenizer.json") from None
