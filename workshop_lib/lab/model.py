"""The model directory the local lab serves, built offline: a small byte-level BPE tokenizer plus llama-style configs.

Dynamo's mocker engine needs a model directory only for its tokenizer and a few config values (context length,
bos/eos ids); no weights. No PyPI package ships such a directory, so the kit trains a byte-level BPE (vocab 4096) with
the ``tokenizers`` package on text it generates itself from a fixed seed. The same recipe gives the same bytes each
build, and the directory is cached under ``<lab dir>/model/<name>`` (``<lab dir>`` is the repository's ``.lab/``, or
``$WORKSHOP_LAB_DIR``).

The model id the frontend reports is the directory path: do not pass ``--model-name`` (Dynamo then tries to fetch
that name from the Hugging Face hub; ``../shared/reference/LOCAL-LAB.md``).

Example:
    >>> from workshop_lib.lab.model import ensure_model
    >>> d = ensure_model()                      # doctest: +SKIP
    >>> sorted(p.name for p in d.iterdir())     # doctest: +SKIP
    ['config.json', 'generation_config.json', 'model.safetensors', 'recipe.json', 'tokenizer.json', 'tokenizer_config.json']

The real engine (vLLM) also needs weights: :func:`write_weights` fills ``model.safetensors`` with seeded random
bfloat16 values (normal, std 0.02; norms 1.0) for the ``LlamaForCausalLM`` of ``config.json``, using numpy only (no
torch), so the same seed gives the same bytes. Random weights make greedy text degenerate, but the logprobs are still
a deterministic function of the KV cache, which is what ``workshop lab check-kv`` compares.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from workshop_lib import paths
from workshop_lib.errors import LabError

DEFAULT_NAME = "workshop-tiny-bpe"
VOCAB_SIZE = 4096
MAX_POSITION_EMBEDDINGS = 4096
SEED = 20260211  # Dynamo 0.9.0 release date; any fixed number works
RECIPE_VERSION = 2  # bump when the corpus, the trainer settings, the config files or the weights change
WEIGHTS_FILE = "model.safetensors"
INIT_STD = 0.02  # the usual initializer_range of Llama configs

# Special tokens first, so their ids are fixed: bos 0, eos 1, pad 2, then the chat-template markers.
SPECIAL_TOKENS = ["<s>", "</s>", "<pad>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
BOS, EOS, PAD = "<s>", "</s>", "<pad>"
END_OF_TURN = "<|end|>"

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\\n' + message['content'] + '<|end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)

# Words the corpus is made of: the vocabulary of the workshop itself, so prompts about it tokenize compactly.
_WORDS = """
the a an of to in on for with by from at over under between across into and or but not is are was were be been
has have had will can may must should would could this that these those it its they them their we our you your
prefill decode worker workers frontend router routing request requests token tokens latency throughput bandwidth
cache block blocks memory transfer transfers transferred agent agents backend backends plugin plugins node nodes
cluster pod pods container image images deployment manifest manifests namespace service services operator chart
model models prompt prompts completion completions stream streaming batch batches sequence sequences length
kv nixl ucx libfabric efa rdma gpu gpus cpu dram vram nvlink pcie network interface adapter device devices
dynamo etcd nats jetstream kubernetes eks aws helm kubectl python notebook notebooks workshop lab local
first time second inter average median percentile p50 p90 p99 ttft itl seconds milliseconds microseconds
send receive read write register registered descriptor descriptors metadata handshake bootstrap rendezvous
fast slow faster slower high low higher lower large small larger smaller many few more less most least every
disaggregated aggregated serving inference engine engines scheduler schedule queue queued waiting running
instance instances type types h100 h200 p5 p5.48xlarge hopper ampere fabric socket sockets tcp udp shared
rail rails provider providers fallback silent signature verify verified check checks pass fail error errors
fix fixes log logs line lines table tables plot plots benchmark benchmarks measure measured result results
user users assistant system message messages chat answer question explain describe compare show why how what
when where which while because so then than also only even still already again always never often sometimes
""".split()

_TEMPLATES = [
    "The {a} {b} sends {c} {d} to the {e} {f}.",
    "Why is the {a} {b} {c} than the {d} {e}?",
    "{A} {b} and {c} {d} share one {e}.",
    "When the {a} {b} is {c}, the {d} waits for {e} {f}.",
    "Measure {a} {b} with {c} {d} at {n} {e}.",
    "{A} moves {n} {b} of {c} over {d} in {m} {e}.",
    "Explain how {a} {b} {c} the {d} {e} between {f} {g}.",
    "Check that every {a} {b} has {n} {c} {d}.",
]


def _pseudo_words(rng: random.Random, n: int) -> list[str]:
    """``n`` pronounceable made-up words (so BPE has enough distinct pairs to reach its vocab size)."""
    onsets = ["b", "c", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "st", "tr", "pl", "qu"]
    vowels = ["a", "e", "i", "o", "u", "ai", "ou", "y"]
    codas = ["", "", "n", "r", "s", "t", "x", "ng", "ck"]
    return [
        "".join(rng.choice(onsets) + rng.choice(vowels) + rng.choice(codas) for _ in range(rng.randint(2, 4)))
        for _ in range(n)
    ]


def corpus_lines(n: int = 60_000, seed: int = SEED) -> Iterator[str]:
    """Generate the training text: ``n`` sentences about the workshop, the same ones for the same ``seed``.

    Example:
        >>> list(corpus_lines(2)) == list(corpus_lines(2))
        True
    """
    rng = random.Random(seed)
    pool = _WORDS + [w.upper() for w in _WORDS] + _pseudo_words(rng, 2500)
    for _ in range(n):
        template = rng.choice(_TEMPLATES)
        words = {k: rng.choice(pool if rng.random() < 0.4 else _WORDS) for k in "abcdefg"}
        words["A"] = words["a"].capitalize()
        words["n"] = str(rng.choice([1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, rng.randint(0, 99_999)]))
        words["m"] = f"{rng.random() * 100:.2f}"
        yield template.format(**words)


def train_tokenizer(vocab_size: int = VOCAB_SIZE, seed: int = SEED):  # -> tokenizers.Tokenizer
    """Train the byte-level BPE on :func:`corpus_lines`; deterministic for a given ``vocab_size`` and ``seed``.

    Example:
        >>> tok = train_tokenizer(512)        # doctest: +SKIP
        >>> tok.get_vocab_size()              # doctest: +SKIP
        512
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus_lines(seed=seed), trainer=trainer)
    return tok


def model_files(vocab_size: int) -> dict[str, dict]:
    """The JSON config files of the model directory (everything except ``tokenizer.json``), as dicts.

    Example:
        >>> model_files(4096)["config.json"]["eos_token_id"]
        1
    """
    ids = {t: i for i, t in enumerate(SPECIAL_TOKENS)}
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": vocab_size,
        "hidden_size": 256,
        "intermediate_size": 688,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "head_dim": 64,
        "max_position_embeddings": MAX_POSITION_EMBEDDINGS,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "hidden_act": "silu",
        "tie_word_embeddings": True,
        "torch_dtype": "bfloat16",
        "bos_token_id": ids[BOS],
        "eos_token_id": ids[EOS],
        "pad_token_id": ids[PAD],
    }
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": BOS,
        "eos_token": EOS,
        "pad_token": PAD,
        "unk_token": None,
        "add_bos_token": False,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": MAX_POSITION_EMBEDDINGS,
        "chat_template": CHAT_TEMPLATE,
    }
    generation_config = {
        "bos_token_id": ids[BOS],
        "eos_token_id": [ids[EOS], ids[END_OF_TURN]],
        "pad_token_id": ids[PAD],
        "max_length": MAX_POSITION_EMBEDDINGS,
    }
    return {
        "config.json": config,
        "tokenizer_config.json": tokenizer_config,
        "generation_config.json": generation_config,
    }


def llama_tensor_shapes(config: dict) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes of a tied-embedding ``LlamaForCausalLM`` (the names vLLM's loader maps).

    Example:
        >>> shapes = llama_tensor_shapes(model_files(4096)["config.json"])
        >>> shapes["model.embed_tokens.weight"], shapes["model.layers.0.self_attn.k_proj.weight"]
        ((4096, 256), (256, 256))
    """
    h, inter, vocab = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    hd = config.get("head_dim") or h // config["num_attention_heads"]
    q, kv = config["num_attention_heads"] * hd, config["num_key_value_heads"] * hd
    out: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (vocab, h)}
    for i in range(config["num_hidden_layers"]):
        pre = f"model.layers.{i}."
        out.update({
            pre + "input_layernorm.weight": (h,),
            pre + "post_attention_layernorm.weight": (h,),
            pre + "self_attn.q_proj.weight": (q, h),
            pre + "self_attn.k_proj.weight": (kv, h),
            pre + "self_attn.v_proj.weight": (kv, h),
            pre + "self_attn.o_proj.weight": (h, q),
            pre + "mlp.gate_proj.weight": (inter, h),
            pre + "mlp.up_proj.weight": (inter, h),
            pre + "mlp.down_proj.weight": (h, inter),
        })  # fmt: skip
    out["model.norm.weight"] = (h,)
    if not config.get("tie_word_embeddings", False):
        out["lm_head.weight"] = (vocab, h)
    return out


def write_weights(path: Path, config: dict, seed: int = SEED) -> Path:
    """Write seeded random bfloat16 weights for ``config`` as one safetensors file (format: 8-byte little-endian
    header length, JSON header, then the raw tensors). bfloat16 is the top half of float32, so it is made by
    shifting without torch.

    Example:
        >>> import tempfile; p = Path(tempfile.mkdtemp()) / "w.safetensors"
        >>> cfg = dict(model_files(64)["config.json"], hidden_size=8, intermediate_size=16, num_attention_heads=2,
        ...            num_key_value_heads=1, head_dim=4, num_hidden_layers=1)
        >>> write_weights(p, cfg).stat().st_size > 0
        True
    """
    import struct

    import numpy as np

    rng = np.random.default_rng(seed)
    header: dict[str, dict] = {"__metadata__": {"format": "pt"}}  # type: ignore[dict-item]
    blobs: list[bytes] = []
    offset = 0
    for name, shape in llama_tensor_shapes(config).items():
        if name.endswith("norm.weight"):
            values = np.ones(shape, dtype=np.float32)
        else:
            values = rng.normal(0.0, INIT_STD, size=shape).astype(np.float32)
        data = (values.view(np.uint32) >> 16).astype("<u2").tobytes()
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(head)) + head)
        for b in blobs:
            fh.write(b)
    return path


def recipe(vocab_size: int = VOCAB_SIZE, seed: int = SEED) -> dict:
    """What determines the bytes of the directory; stored as ``recipe.json`` and compared to reuse the cache."""
    import tokenizers

    return {
        "recipe_version": RECIPE_VERSION,
        "vocab_size": vocab_size,
        "seed": seed,
        "tokenizers": tokenizers.__version__,
        "weights": {"file": WEIGHTS_FILE, "dtype": "bfloat16", "init_std": INIT_STD},
    }


def _dump(obj: dict) -> str:
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"


def build_model(dest: Path, vocab_size: int = VOCAB_SIZE, seed: int = SEED) -> Path:
    """Build the model directory at ``dest`` (replacing it atomically) and return ``dest``.

    Example:
        >>> build_model(Path("/tmp/m"))        # doctest: +SKIP
        PosixPath('/tmp/m')
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        tok = train_tokenizer(vocab_size, seed)
        (tmp / "tokenizer.json").write_text(tok.to_str(pretty=True) + "\n")
        files = model_files(tok.get_vocab_size())
        for name, obj in files.items():
            (tmp / name).write_text(_dump(obj))
        write_weights(tmp / WEIGHTS_FILE, files["config.json"], seed)
        (tmp / "recipe.json").write_text(_dump(recipe(vocab_size, seed)))
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    except OSError as exc:
        raise LabError(
            str(dest), f"cannot write the lab model directory ({exc})", "check the path is writable"
        ) from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def ensure_model(name: str = DEFAULT_NAME, lab_dir: Path | None = None) -> Path:
    """Return the cached model directory ``<lab dir>/model/<name>``, building it first when absent or stale.

    Example:
        >>> ensure_model().name                # doctest: +SKIP
        'workshop-tiny-bpe'
    """
    dest = (lab_dir or paths.lab_dir()) / "model" / name
    stamp = dest / "recipe.json"
    try:
        if stamp.is_file() and json.loads(stamp.read_text()) == recipe():
            return dest
    except (OSError, ValueError):
        pass
    return build_model(dest)


def digest(model_dir: Path) -> str:
    """SHA-256 over the directory's files (name and bytes), to compare two builds.

    Example:
        >>> digest(ensure_model())             # doctest: +SKIP
        '3f0c...'
    """
    h = hashlib.sha256()
    for p in sorted(Path(model_dir).iterdir()):
        if p.is_file():
            h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()
