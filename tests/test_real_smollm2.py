"""The shared contract on the real SmolLM2 from the offline kit (marked real_model; CI runs it)."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import logits
from transformers import AutoModelForCausalLM

import hf_resize
from hf_resize.cli import main
from hf_resize.groups import neuron_groups
from hf_resize.methods.targets import uniform_body_parameters
from hf_resize.plan import GroupPlan, Plan
from hf_resize.surgery import apply_plan

pytestmark = pytest.mark.real_model


@pytest.fixture(scope="module")
def smollm2():
    from hf_resize.data.models import load_model

    return load_model("smollm2-135m")


@pytest.fixture(scope="module")
def ids(smollm2):
    _, tok = smollm2
    return tok("It is a truth universally acknowledged, that a single man in possession", return_tensors="pt").input_ids


def test_info_lists_groups(capsys):
    assert main(["info", "smollm2-135m"]) == 0
    out = capsys.readouterr().out
    assert "MLP groups: 30, widths 1536" in out
    assert "head groups: 30, heads 9 in KV groups 3" in out
    assert "hidden width: 576" in out


def test_ratio_zero_changes_no_logit(smollm2, ids):
    model = copy.deepcopy(smollm2[0])
    before = logits(model, ids)
    hf_resize.resize(model, hf_resize.MagnitudeConfig(ratio=0.0, groups=("mlp", "heads", "hidden")))
    assert (logits(model, ids) - before).abs().max() <= 1e-5


@pytest.mark.parametrize("groups", [("mlp",), ("heads",), ("hidden",), ("mlp", "heads", "hidden")], ids="+".join)
def test_round_trip_and_generate(smollm2, ids, groups, tmp_path):
    model = copy.deepcopy(smollm2[0])
    config = hf_resize.MagnitudeConfig(ratio=0.34, groups=groups)
    predicted_body = uniform_body_parameters(model, config, 0.34)
    hf_resize.resize(model, config)
    assert hf_resize.parameter_counts(model).body == predicted_body
    expected = logits(model, ids)
    out = hf_resize.save_resized(model, tmp_path / "out", tokenizer=smollm2[1])
    loaded = AutoModelForCausalLM.from_pretrained(out).eval()
    assert type(loaded).__name__ == "LlamaForCausalLM"
    assert (logits(loaded, ids) - expected).abs().max() <= 1e-6
    generated = loaded.generate(ids, max_new_tokens=5, min_new_tokens=5, do_sample=False)
    assert generated.shape[1] == ids.shape[1] + 5


def test_per_layer_round_trip(smollm2, ids, tmp_path):
    model = copy.deepcopy(smollm2[0])
    plans = [GroupPlan(g, keep=torch.arange(g.width - 32 * (g.layer % 3))) for g in neuron_groups(model, ("mlp",))]
    apply_plan(model, Plan("test", plans))
    expected = logits(model, ids)
    out = hf_resize.save_resized(model, tmp_path / "out")
    loaded = AutoModelForCausalLM.from_pretrained(out).eval()
    assert (logits(loaded, ids) - expected).abs().max() <= 1e-6
    assert loaded.generate(ids, max_new_tokens=3, do_sample=False).shape[1] > ids.shape[1]
