"""Magnitude baseline: ratio-0 contract, keeps the largest units, deterministic, respects GQA granularity."""

from __future__ import annotations

import torch
from conftest import logits, tiny_model

import hf_resize
from hf_resize.groups import neuron_groups
from hf_resize.methods.magnitude.method import magnitude_plan


def test_ratio_zero_changes_no_logit(family, input_ids):
    model = tiny_model(family)
    before = logits(model, input_ids)
    hf_resize.resize(model, hf_resize.MagnitudeConfig(ratio=0.0, groups=("mlp", "heads", "hidden")))
    assert (logits(model, input_ids) - before).abs().max() <= 1e-5


def test_keeps_the_largest_neurons():
    model = tiny_model("llama")
    with torch.no_grad():
        model.model.layers[0].mlp.down_proj.weight[:, 5] *= 100
        model.model.layers[0].mlp.down_proj.weight[:, 7] *= 0
        model.model.layers[0].mlp.gate_proj.weight[7] *= 0
        model.model.layers[0].mlp.up_proj.weight[7] *= 0
    plan = magnitude_plan(model, hf_resize.MagnitudeConfig(ratio=0.5))
    keep = plan.groups[0].keep.tolist()
    assert 5 in keep and 7 not in keep and len(keep) == 32


def test_head_modes_keep_gqa_regular():
    model = tiny_model("llama")  # 6 query heads, 2 KV heads
    per_group = magnitude_plan(model, hf_resize.MagnitudeConfig(ratio=0.34, groups=("heads",)))
    plan = per_group.groups[0]
    assert plan.new_width == 4 and plan.new_kv_width == 2
    assert sorted(int(h) // 3 for h in plan.keep) == [0, 0, 1, 1]
    whole = magnitude_plan(model, hf_resize.MagnitudeConfig(ratio=0.5, groups=("heads",), head_mode="kv_groups"))
    plan = whole.groups[0]
    assert plan.new_kv_width == 1 and plan.new_width == 3
    assert plan.keep.tolist() == [3 * int(plan.kv_keep[0]) + i for i in range(3)]


def test_same_seed_same_weights():
    states = []
    for _ in range(2):
        model = tiny_model("qwen3")
        hf_resize.resize(model, hf_resize.MagnitudeConfig(ratio=0.3, groups=("mlp", "heads", "hidden")))
        states.append(model.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_parameter_count_matches_widths(family):
    model = tiny_model(family)
    config = hf_resize.MagnitudeConfig(ratio=0.5, groups=("mlp", "heads", "hidden"))
    from hf_resize.methods.targets import uniform_body_parameters

    predicted = uniform_body_parameters(model, config, 0.5)
    hf_resize.resize(model, config)
    assert hf_resize.parameter_counts(model).body == predicted
    widths = {g.kind: g.width for g in neuron_groups(model)}
    assert widths["mlp"] == 32 and widths["hidden"] == 24
