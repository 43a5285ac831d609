"""Tests of workshop_lib.lab.model: the offline tokenizer model directory the local lab serves."""

from __future__ import annotations

import json
from pathlib import Path

import jinja2
import pytest
from tokenizers import Tokenizer

from workshop_lib import paths
from workshop_lib.lab import model


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return model.ensure_model(lab_dir=tmp_path_factory.mktemp("lab"))


def test_directory_holds_the_files_dynamo_reads(built: Path) -> None:
    names = sorted(p.name for p in built.iterdir())
    assert names == [
        "config.json", "generation_config.json", "model.safetensors", "recipe.json", "tokenizer.json",
        "tokenizer_config.json",
    ]
    assert built.parent.name == "model" and built.name == model.DEFAULT_NAME


def test_tokenizer_is_byte_level_bpe_of_4096(built: Path) -> None:
    tok = Tokenizer.from_file(str(built / "tokenizer.json"))
    assert tok.get_vocab_size() == 4096
    assert [tok.token_to_id(t) for t in ("<s>", "</s>", "<pad>", "<|end|>")] == [0, 1, 2, 6]
    text = "Why is the prefill worker faster than decode over EFA? p5.48xlarge, 3.2 Tbps"
    enc = tok.encode(text)
    assert tok.decode(enc.ids) == text  # byte-level: any text round-trips
    assert "Ġprefill" in enc.tokens and "Ġdecode" in enc.tokens  # workshop words are single tokens
    assert tok.decode(tok.encode("ünïcödé → 日本").ids) == "ünïcödé → 日本"


def test_configs_are_llama_style_and_consistent(built: Path) -> None:
    cfg = json.loads((built / "config.json").read_text())
    gen = json.loads((built / "generation_config.json").read_text())
    tcfg = json.loads((built / "tokenizer_config.json").read_text())
    assert cfg["model_type"] == "llama" and cfg["architectures"] == ["LlamaForCausalLM"]
    assert cfg["max_position_embeddings"] == 4096 and cfg["vocab_size"] == 4096
    assert (cfg["bos_token_id"], cfg["eos_token_id"]) == (0, 1)
    assert gen["eos_token_id"] == [1, 6] and gen["bos_token_id"] == 0
    assert (tcfg["bos_token"], tcfg["eos_token"]) == ("<s>", "</s>")


def test_chat_template_renders_a_conversation(built: Path) -> None:
    tcfg = json.loads((built / "tokenizer_config.json").read_text())
    tmpl = jinja2.Environment().from_string(tcfg["chat_template"])
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is NIXL?"}]
    out = tmpl.render(messages=messages, bos_token="<s>", add_generation_prompt=True)
    assert out == "<s><|system|>\nBe brief.<|end|>\n<|user|>\nWhat is NIXL?<|end|>\n<|assistant|>\n"


def test_build_is_deterministic(built: Path, tmp_path: Path) -> None:
    again = model.build_model(tmp_path / "again")
    assert model.digest(again) == model.digest(built)


def test_cache_is_reused_and_a_stale_recipe_rebuilds(built: Path) -> None:
    before = (built / "tokenizer.json").stat().st_mtime_ns
    assert model.ensure_model(lab_dir=built.parents[1]) == built
    assert (built / "tokenizer.json").stat().st_mtime_ns == before
    (built / "recipe.json").write_text('{"recipe_version": 0}')
    assert model.ensure_model(lab_dir=built.parents[1]) == built
    assert json.loads((built / "recipe.json").read_text()) == model.recipe()


def test_corpus_is_seeded() -> None:
    a = list(model.corpus_lines(50, seed=1))
    assert a == list(model.corpus_lines(50, seed=1)) != list(model.corpus_lines(50, seed=2))


def test_lab_dir_env_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WORKSHOP_LAB_DIR", str(tmp_path))
    assert paths.lab_dir() == tmp_path.resolve()  # where ensure_model builds by default
    monkeypatch.delenv("WORKSHOP_LAB_DIR")
    assert paths.lab_dir().name == ".lab"


def test_weights_load_with_safetensors_and_match_the_config(built: Path) -> None:
    """The weights file is real safetensors: every tensor vLLM's Llama loader maps, bf16, seeded values."""
    safetensors_numpy = pytest.importorskip("safetensors.numpy", reason="safetensors not installed")
    import numpy as np

    cfg = json.loads((built / "config.json").read_text())
    with open(built / model.WEIGHTS_FILE, "rb") as fh:
        raw = fh.read()
    header_len = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + header_len])
    shapes = model.llama_tensor_shapes(cfg)
    assert {k for k in header if k != "__metadata__"} == set(shapes)
    assert all(header[k]["dtype"] == "BF16" and tuple(header[k]["shape"]) == s for k, s in shapes.items())
    # bf16 -> float32 by shifting back; norms are exactly 1.0 and the rest has the initializer's spread.
    emb = header["model.embed_tokens.weight"]
    a, b = emb["data_offsets"]
    vals = (np.frombuffer(raw[8 + header_len + a : 8 + header_len + b], "<u2").astype(np.uint32) << 16).view(np.float32)
    assert 0.015 < float(vals.std()) < 0.025
    norm = header["model.norm.weight"]
    a, b = norm["data_offsets"]
    assert (np.frombuffer(raw[8 + header_len + a : 8 + header_len + b], "<u2") == 0x3F80).all()
    assert safetensors_numpy is not None
