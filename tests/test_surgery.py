"""Surgery contract on every family: exactness at ratio 0, merges, per-layer widths, generate, shapes."""

from __future__ import annotations

import pytest
import torch
from conftest import logits, tiny_model

from hf_resize.groups import neuron_groups
from hf_resize.plan import GroupPlan, Plan
from hf_resize.surgery import apply_plan


def _identity_merge(group):
    eye = torch.eye(group.width, dtype=torch.float64)
    kv = torch.eye(group.kv_width, dtype=torch.float64) if group.kind == "heads" else None
    return GroupPlan(group, producer=eye, consumer=eye, kv_producer=kv)


def test_identity_keep_changes_no_logit(family, input_ids):
    model = tiny_model(family)
    before = logits(model, input_ids)
    apply_plan(model, Plan("test", [GroupPlan(g, keep=torch.arange(g.width)) for g in neuron_groups(model)]))
    assert (logits(model, input_ids) - before).abs().max() <= 1e-5


def test_identity_merge_changes_no_logit(family, input_ids):
    model = tiny_model(family)
    before = logits(model, input_ids)
    groups = [g for g in neuron_groups(model) if g.kind != "hidden" or family != "gemma3_text"]
    apply_plan(model, Plan("test", [_identity_merge(g) for g in groups]))
    assert (logits(model, input_ids) - before).abs().max() <= 1e-5


@pytest.mark.parametrize("family_name", ["llama", "qwen2", "phi3"])
def test_orthogonal_hidden_merge_is_exact(family_name, input_ids):
    """A square orthogonal re-basing of the residual stream keeps logits (RMSNorm is rotation-invariant)."""
    model = tiny_model(family_name)
    before = logits(model, input_ids)
    hidden = neuron_groups(model, ("hidden",))[0]
    q, _ = torch.linalg.qr(torch.randn(hidden.width, hidden.width, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    apply_plan(model, Plan("test", [GroupPlan(hidden, producer=q.T, consumer=q)]))
    assert (logits(model, input_ids) - before).abs().max() <= 1e-4


def test_mlp_merge_of_duplicate_neurons_is_exact(input_ids):
    """Two identical neurons merge into one with their consumer columns summed: the output is unchanged."""
    model = tiny_model("llama")
    mlp = model.model.layers[0].mlp
    with torch.no_grad():
        mlp.gate_proj.weight[1] = mlp.gate_proj.weight[0]
        mlp.up_proj.weight[1] = mlp.up_proj.weight[0]
    before = logits(model, input_ids)
    group = neuron_groups(model, ("mlp",))[0]
    n = group.width
    producer = torch.zeros(n - 1, n, dtype=torch.float64)
    producer[0, 0] = 1.0
    producer[1:, 2:] = torch.eye(n - 2, dtype=torch.float64)
    consumer = producer.T.clone()
    consumer[1, 0] = 1.0  # neuron 1's signal is carried by merged neuron 0
    apply_plan(model, Plan("test", [GroupPlan(group, producer=producer, consumer=consumer)]))
    assert model.model.layers[0].mlp.down_proj.in_features == n - 1
    assert (logits(model, input_ids) - before).abs().max() <= 1e-5


def test_per_layer_widths_and_generate(family, input_ids):
    model = tiny_model(family)
    groups = neuron_groups(model, ("mlp", "heads"))
    plans = []
    for g in groups:
        if g.kind == "mlp":
            plans.append(GroupPlan(g, keep=torch.arange(g.width - 8 * (g.layer + 1))))
        elif g.layer == 0:
            per = g.queries_per_kv
            keep = torch.cat([torch.arange(per - 1) + k * per for k in range(g.kv_width)]) if per > 1 else torch.arange(g.width)
            plans.append(GroupPlan(g, keep=keep))
    apply_plan(model, Plan("test", plans))
    widths = {g.name: g.width for g in neuron_groups(model, ("mlp",))}
    assert widths == {"mlp.0": 56, "mlp.1": 48}
    assert model.config.hf_resize_layer_widths is not None
    assert type(model).__name__.startswith("HFResize")
    out = model.generate(input_ids[:1], max_new_tokens=4, do_sample=False, min_new_tokens=4)
    assert out.shape == (1, input_ids.shape[1] + 4)
    assert torch.isfinite(logits(model, input_ids)).all()


def test_uneven_gqa_is_refused():
    from hf_resize.errors import ConfigError

    model = tiny_model("llama")
    heads = neuron_groups(model, ("heads",))[0]
    with pytest.raises(ConfigError, match="KV heads evenly"):
        apply_plan(model, Plan("test", [GroupPlan(heads, keep=torch.arange(5))]))


def test_config_and_shapes_agree(family):
    model = tiny_model(family)
    hidden = neuron_groups(model, ("hidden",))[0]
    plans = [GroupPlan(hidden, keep=torch.arange(0, hidden.width, 2))]
    plans += [GroupPlan(g, keep=torch.arange(g.width // 2)) for g in neuron_groups(model, ("mlp",))]
    apply_plan(model, Plan("test", plans))
    assert model.config.hidden_size == hidden.width // 2
    assert model.config.intermediate_size == 32
    assert model.get_input_embeddings().weight.shape[1] == hidden.width // 2
    assert model.get_output_embeddings().weight.shape[1] == hidden.width // 2


def test_hidden_not_multiple_of_heads_is_refused_before_any_edit():
    from hf_resize.errors import ConfigError

    model = tiny_model("llama")  # 6 heads: llama configs need hidden % heads == 0
    hidden = neuron_groups(model, ("hidden",))[0]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ConfigError, match="multiple of the head count"):
        apply_plan(model, Plan("test", [GroupPlan(hidden, keep=torch.arange(40))]))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
