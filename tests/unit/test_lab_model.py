"""Tests of workshop_lib.lab.model: the offline tokenizer model directory the local lab serves."""

from __future__ import annotations

import json
from pathlib import Path

import jinja2
import pytest
from tokenizers import Tokenizer

from workshop_lib.lab import model


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return model.ensure_model(lab_dir=tmp_path_factory.mktemp("lab"))


def test_directory_holds_the_files_dynamo_reads(built: Path) -> None:
    names = sorted(p.name for p in built.iterdir())
    assert names == ["config.json", "generation_config.json", "recipe.json", "tokenizer.json", "tokenizer_config.json"]
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
    assert model.default_lab_dir() == tmp_path.resolve()
    monkeypatch.delenv("WORKSHOP_LAB_DIR")
    assert model.default_lab_dir().name == ".lab"
