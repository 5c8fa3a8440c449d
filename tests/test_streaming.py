"""Resizing from disk one layer at a time gives the same model as resizing in memory, writes a loadable folder,
and never leaves a partial one."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import logits, tiny_model
from transformers import AutoModelForCausalLM, AutoTokenizer

import hf_resize
from hf_resize.errors import ConfigError, OutputExistsError
from hf_resize.modeling.modeling_hf_resize import decoder_layers
from hf_resize.streaming import resize_from_disk


@pytest.fixture
def checkpoint(tmp_path):
    from hf_resize.data.models import resolve_builtin

    tokenizer = AutoTokenizer.from_pretrained(resolve_builtin("smollm2-135m"))
    model = tiny_model("llama", vocab_size=len(tokenizer), num_hidden_layers=3, tie_word_embeddings=False)
    model.to(torch.bfloat16).save_pretrained(tmp_path / "src", max_shard_size="100KB")  # several shards
    tokenizer.save_pretrained(tmp_path / "src")
    return tmp_path / "src"


def _tokens() -> torch.Tensor:
    return torch.randint(3, 500, (8, 64), generator=torch.Generator().manual_seed(0))


def test_magnitude_from_disk_equals_the_in_memory_resize(checkpoint, tmp_path) -> None:
    config = hf_resize.MagnitudeConfig(ratio=0.34, groups=("mlp", "heads"))
    out = resize_from_disk(checkpoint, config, tmp_path / "out", calibration=_tokens(), progress=False)
    streamed = AutoModelForCausalLM.from_pretrained(out, dtype="auto").eval()
    reference = AutoModelForCausalLM.from_pretrained(checkpoint).float().eval()
    hf_resize.resize(reference, config)
    ids = torch.randint(3, 500, (2, 12), generator=torch.Generator().manual_seed(1))
    assert streamed.dtype == torch.bfloat16
    assert streamed.config.intermediate_size == reference.config.intermediate_size == 42
    assert (logits(streamed.float(), ids) - logits(reference.to(torch.bfloat16).float(), ids)).abs().max() <= 1e-5
    summary = json.loads((out / "hf_resize.json").read_text())
    assert summary["pipeline"] == "layer-sequential, from disk"
    assert summary["parameters_after"]["body"] == hf_resize.parameter_counts(streamed).body


def test_calibrated_method_from_disk_plans_layer0_like_in_memory_and_generates(checkpoint, tmp_path) -> None:
    config = hf_resize.WandaSPConfig(ratio=0.25, groups=("mlp",), compensate="none")
    out = resize_from_disk(checkpoint, config, tmp_path / "out", calibration=_tokens(), progress=False)
    streamed = AutoModelForCausalLM.from_pretrained(out).float().eval()
    reference = AutoModelForCausalLM.from_pretrained(checkpoint).float().eval()
    hf_resize.resize(reference, config, calibration=_tokens(), cache=False)
    # Layer 0 sees the same inputs in both pipelines, so it keeps the same neurons.
    w_stream = decoder_layers(streamed)[0].mlp.down_proj.weight
    w_ref = decoder_layers(reference)[0].mlp.down_proj.weight
    assert torch.allclose(w_stream, w_ref.to(torch.bfloat16).float())
    generated = streamed.generate(torch.tensor([[1, 5, 9]]), max_new_tokens=3, min_new_tokens=3, do_sample=False)
    assert generated.shape == (1, 6)


def test_refusals_come_before_any_output(checkpoint, tmp_path) -> None:
    with pytest.raises(ConfigError, match="MLP neurons and heads only"):
        resize_from_disk(checkpoint, hf_resize.MagnitudeConfig(ratio=0.25, groups=("hidden",)), tmp_path / "a")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "keep.txt").write_text("x")
    with pytest.raises(OutputExistsError):
        resize_from_disk(checkpoint, hf_resize.MagnitudeConfig(ratio=0.25), tmp_path / "b", calibration=_tokens())
    assert not (tmp_path / "a").exists() and [p.name for p in (tmp_path / "b").iterdir()] == ["keep.txt"]
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]


def test_cli_from_disk_writes_a_loadable_folder(checkpoint, tmp_path) -> None:
    from hf_resize.cli import main

    assert main(["resize", str(checkpoint), "--method", "magnitude", "--ratio", "0.25", "--from-disk",
                 "--out", str(tmp_path / "out")]) == 0
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    assert loaded.config.intermediate_size == 48
