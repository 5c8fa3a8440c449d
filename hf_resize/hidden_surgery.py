"""Hidden (residual-stream) width: embeddings, every norm, every reader and writer of the stream, lm_head.

Called only by ``surgery.apply_plan``. A keep plan slices every coupled tensor. A merge plan maps the
stream x to x' = P x: writers become P W, the embedding E Pᵀ, and each norm's scale is folded into its
readers (W diag(s) C) so that RMSNorm sees only a re-based stream; the sqrt(n/m) factor keeps its RMS scale.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from transformers import PreTrainedModel

from hf_resize.adapters import FamilyAdapter
from hf_resize.errors import ConfigError
from hf_resize.modeling.modeling_hf_resize import decoder_layers
from hf_resize.plan import GroupPlan

Tensor = torch.Tensor


def _readers(adapter: FamilyAdapter) -> dict[str, list[str]]:
    """Norm name → the projections that read its output."""
    attn = [adapter.qkv_proj] if adapter.fused_qkv else [adapter.q_proj, adapter.k_proj, adapter.v_proj]
    mlp = [adapter.gate_up_proj] if adapter.fused_gate_up else [adapter.gate_proj, adapter.up_proj]
    return {
        adapter.attn_norm: [f"{adapter.attn}.{n}" for n in attn],
        adapter.mlp_norm: [f"{adapter.mlp}.{n}" for n in mlp],
    }


def _writers(adapter: FamilyAdapter) -> list[str]:
    return [f"{adapter.attn}.{adapter.o_proj}", f"{adapter.mlp}.{adapter.down_proj}"]


def _slice_layer(state: dict[str, Tensor], adapter: FamilyAdapter, keep: Tensor) -> None:
    for norm in adapter.norms_per_layer:
        state[f"{norm}.weight"] = state[f"{norm}.weight"][keep]
    for readers in _readers(adapter).values():
        for name in readers:
            state[f"{name}.weight"] = state[f"{name}.weight"][:, keep]
    for name in _writers(adapter):
        state[f"{name}.weight"] = state[f"{name}.weight"][keep]
        if f"{name}.bias" in state:
            state[f"{name}.bias"] = state[f"{name}.bias"][keep]


def _merge_layer(state: dict[str, Tensor], adapter: FamilyAdapter, producer: Tensor, consumer: Tensor, rms: float) -> None:
    for norm, readers in _readers(adapter).items():
        weight = state[f"{norm}.weight"]
        scale = (weight.double() + adapter.norm_offset) * rms
        for name in readers:
            w = state[f"{name}.weight"]
            state[f"{name}.weight"] = ((w.double() * scale) @ consumer).to(w.dtype)
        state[f"{norm}.weight"] = torch.full((producer.shape[0],), 1.0 - adapter.norm_offset, dtype=weight.dtype)
    for name in _writers(adapter):
        w = state[f"{name}.weight"]
        state[f"{name}.weight"] = (producer @ w.double()).to(w.dtype)
        if f"{name}.bias" in state:
            b = state[f"{name}.bias"]
            state[f"{name}.bias"] = (producer @ b.double()).to(b.dtype)


def _replace_weight(module: nn.Module, weight: Tensor) -> None:
    module.weight = nn.Parameter(weight.contiguous(), requires_grad=module.weight.requires_grad)


def _untie(model: PreTrainedModel, adapter: FamilyAdapter) -> None:
    """Give lm_head its own weight so the embedding can change independently."""
    lm_head = model.get_submodule(adapter.lm_head)
    lm_head.weight = nn.Parameter(lm_head.weight.detach().clone())
    model.config.tie_word_embeddings = False
    model.all_tied_weights_keys = {}  # what save_pretrained consults to drop tied copies


def hidden_tensors(model: PreTrainedModel, adapter: FamilyAdapter, plan: GroupPlan, states: dict[int, dict]) -> None:
    """Apply the hidden-width ``plan`` to model-level modules and fill ``states`` for every layer."""
    from hf_resize.surgery import fold_embed_scale

    n, m = plan.group.width, plan.new_width
    merge = plan.keep is None
    if merge and adapter.writer_norms:
        raise ConfigError(
            "Merging the hidden width is not supported for families with sandwich norms "
            f"({', '.join(adapter.model_types)}): use a keep plan (pruning) for the hidden width, or resize MLP/heads only."
        )
    embed = model.get_submodule(adapter.embed)
    final_norm = model.get_submodule(adapter.final_norm)
    lm_head = model.get_submodule(adapter.lm_head)
    if lm_head.weight is embed.weight and (merge or adapter.embed_scale_sqrt_hidden):
        _untie(model, adapter)
    tied = lm_head.weight is embed.weight
    for index, layer in enumerate(decoder_layers(model)):
        state = states.setdefault(index, dict(layer.state_dict()))
        if merge:
            _merge_layer(state, adapter, plan.producer.double(), plan.consumer.double(), math.sqrt(n / m))
        else:
            _slice_layer(state, adapter, plan.keep)

    with torch.no_grad():
        if merge:
            producer, consumer = plan.producer.double(), plan.consumer.double()
            scale = (final_norm.weight.double() + adapter.norm_offset) * math.sqrt(n / m)
            _replace_weight(lm_head, ((lm_head.weight.double() * scale) @ consumer).to(lm_head.weight.dtype))
            _replace_weight(embed, (embed.weight.double() @ producer.T).to(embed.weight.dtype))
            _replace_weight(final_norm, torch.full((m,), 1.0 - adapter.norm_offset, dtype=final_norm.weight.dtype))
        else:
            _replace_weight(embed, embed.weight[:, plan.keep])
            if tied:
                lm_head.weight = embed.weight
            else:
                _replace_weight(lm_head, lm_head.weight[:, plan.keep])
            _replace_weight(final_norm, final_norm.weight[plan.keep])
        fold_embed_scale(model, adapter, n, m)
    if hasattr(embed, "embedding_dim"):
        embed.embedding_dim = m
    lm_head.in_features = m
    setattr(model.config, adapter.hidden_key, m)
