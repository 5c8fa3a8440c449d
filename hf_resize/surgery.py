"""The one place that applies a Plan to a model's weights and config.

Each group's new tensors are computed from the old ones; the changed decoder layers are then rebuilt by
their own family class from the updated config and given those tensors, so every derived attribute
(head counts, KV groups, sizes) is exactly what loading the saved model will produce.
"""

from __future__ import annotations

import math

import torch
from transformers import PreTrainedModel

from hf_resize.adapters import FamilyAdapter, get_adapter
from hf_resize.errors import ConfigError
from hf_resize.groups import head_dim_of
from hf_resize.modeling.modeling_hf_resize import build_layer, decoder_layers, resized_class
from hf_resize.plan import GroupPlan, Plan

Tensor = torch.Tensor


def _rows(weight: Tensor, plan_keep: Tensor | None, producer: Tensor | None, unit: int = 1) -> Tensor:
    """New producer rows: kept units, or units mixed by ``producer`` (m x n); a unit is ``unit`` rows."""
    blocks = weight.reshape(-1, unit, *weight.shape[1:])
    if plan_keep is not None:
        out = blocks.index_select(0, plan_keep.to(weight.device))
    else:
        out = torch.einsum("mn,n...->m...", producer.to(weight), blocks)
    return out.reshape(-1, *weight.shape[1:])


def _cols(weight: Tensor, plan_keep: Tensor | None, consumer: Tensor | None, unit: int = 1) -> Tensor:
    """New consumer columns: kept units, or inputs mapped by ``consumer`` (n x m)."""
    blocks = weight.reshape(weight.shape[0], -1, unit)
    if plan_keep is not None:
        out = blocks.index_select(1, plan_keep.to(weight.device))
    else:
        out = torch.einsum("onu,nm->omu", blocks, consumer.to(weight))
    return out.reshape(weight.shape[0], -1)


def _mlp_tensors(state: dict[str, Tensor], adapter: FamilyAdapter, plan: GroupPlan) -> None:
    prefix = f"{adapter.mlp}."
    producers = [adapter.gate_proj, adapter.up_proj] if not adapter.fused_gate_up else [adapter.gate_up_proj]
    for name in producers:
        for suffix in ("weight", "bias"):
            key = f"{prefix}{name}.{suffix}"
            if key not in state:
                continue
            if adapter.fused_gate_up:  # [gate | up] halves move together
                halves = state[key].chunk(2, dim=0)
                state[key] = torch.cat([_rows(h, plan.keep, plan.producer) for h in halves])
            else:
                state[key] = _rows(state[key], plan.keep, plan.producer)
    down = f"{prefix}{adapter.down_proj}.weight"
    if plan.consumer_weight is not None:
        state[down] = plan.consumer_weight.to(state[down])
    else:
        state[down] = _cols(state[down], plan.keep, plan.consumer)


def _head_tensors(state: dict[str, Tensor], adapter: FamilyAdapter, plan: GroupPlan, head_dim: int) -> None:
    prefix = f"{adapter.attn}."
    group = plan.group
    kv_keep, kv_producer = plan.kv_keep, plan.kv_producer
    if kv_keep is None and kv_producer is None:
        kv_keep = torch.arange(group.kv_width)
    q_rows = group.width * head_dim
    kv_rows = group.kv_width * head_dim
    for suffix in ("weight", "bias"):
        if adapter.fused_qkv:
            key = f"{prefix}{adapter.qkv_proj}.{suffix}"
            if key not in state:
                continue
            q, k, v = state[key].split([q_rows, kv_rows, kv_rows], dim=0)
            state[key] = torch.cat(
                [
                    _rows(q, plan.keep, plan.producer, head_dim),
                    _rows(k, kv_keep, kv_producer, head_dim),
                    _rows(v, kv_keep, kv_producer, head_dim),
                ]
            )
            continue
        for name, keep, producer in (
            (adapter.q_proj, plan.keep, plan.producer),
            (adapter.k_proj, kv_keep, kv_producer),
            (adapter.v_proj, kv_keep, kv_producer),
        ):
            key = f"{prefix}{name}.{suffix}"
            if key in state:
                state[key] = _rows(state[key], keep, producer, head_dim)
    o = f"{prefix}{adapter.o_proj}.weight"
    if plan.consumer_weight is not None:
        state[o] = plan.consumer_weight.to(state[o])
    else:
        state[o] = _cols(state[o], plan.keep, plan.consumer, head_dim)


def _check_heads(plan: GroupPlan) -> None:
    group = plan.group
    new_q, new_kv = plan.new_width, plan.new_kv_width
    if new_kv < 1 or new_q < 1 or new_q % new_kv:
        raise ConfigError(
            f"{group.name}: {new_q} query heads cannot share {new_kv} KV heads evenly; "
            "keep whole KV groups or the same number of query heads in every group."
        )


def _layer_widths(model: PreTrainedModel, adapter: FamilyAdapter, plans: list[GroupPlan]) -> list[dict]:
    """Every layer's (intermediate, heads, kv heads) after the plans."""
    config = model.config
    current = getattr(config, "hf_resize_layer_widths", None) or [{} for _ in range(config.num_hidden_layers)]
    widths = []
    for layer in range(config.num_hidden_layers):
        widths.append(
            {
                adapter.intermediate_key: current[layer].get(adapter.intermediate_key, getattr(config, adapter.intermediate_key)),
                adapter.heads_key: current[layer].get(adapter.heads_key, getattr(config, adapter.heads_key)),
                adapter.kv_heads_key: current[layer].get(adapter.kv_heads_key, getattr(config, adapter.kv_heads_key)),
            }
        )
    for plan in plans:
        if plan.group.kind == "mlp":
            widths[plan.group.layer][adapter.intermediate_key] = plan.new_width
        elif plan.group.kind == "heads":
            widths[plan.group.layer][adapter.heads_key] = plan.new_width
            widths[plan.group.layer][adapter.kv_heads_key] = plan.new_kv_width
    return widths


def _set_widths(model: PreTrainedModel, adapter: FamilyAdapter, widths: list[dict]) -> list[dict]:
    """Write widths into the config: global keys when uniform, per-layer overrides otherwise."""
    config = model.config
    hidden = getattr(config, adapter.hidden_key)
    overrides: list[dict] = [{} for _ in widths]
    for key in widths[0]:
        values = [w[key] for w in widths]
        if len(set(values)) == 1:
            setattr(config, key, values[0])
            continue
        # Layers read their own value; the global one only has to pass the stock config's checks.
        fitting = [v for v in values if key != adapter.heads_key or hidden % v == 0]
        setattr(config, key, max(fitting) if fitting else 1)
        for layer, value in enumerate(values):
            overrides[layer][key] = value

    config.hf_resize_layer_widths = overrides if any(overrides) else None
    return overrides


def _check_hidden_fits_heads(adapter: FamilyAdapter, hidden: int, widths: list[dict]) -> None:
    """Stock llama/gemma3 configs refuse a hidden width that no head count divides; refuse it before any edit."""
    heads = {w[adapter.heads_key] for w in widths}
    if adapter.hidden_divisible_by_heads and len(heads) == 1 and hidden % heads.pop():
        raise ConfigError(
            f"{adapter.model_types[0]} configs need the hidden width ({hidden}) to be a multiple of the head count "
            f"({widths[0][adapter.heads_key]}); choose a hidden width that is (methods round it down for you)."
        )


def _rebuild_layer(model: PreTrainedModel, index: int, overrides: dict, state: dict[str, Tensor]) -> None:
    old = decoder_layers(model)[index]
    param = next(old.parameters())
    with torch.device("meta"):
        new = build_layer(model, index, overrides)
    new.load_state_dict(state, assign=True, strict=True)
    if any(buffer.is_meta for buffer in new.buffers()):  # a derived buffer: rebuild the layer for real instead
        new = build_layer(model, index, overrides).to(param.device, param.dtype)
        new.load_state_dict(state, strict=True)
    new.train(old.training)
    decoder_layers(model)[index] = new


def apply_plan(model: PreTrainedModel, plan: Plan) -> PreTrainedModel:
    """Apply ``plan`` to ``model`` in place and return it (its class may become the per-layer one)."""
    adapter = get_adapter(model)
    config = model.config
    if getattr(config, adapter.head_dim_key, None) is None:
        setattr(config, adapter.head_dim_key, head_dim_of(config, adapter))
    head_dim = head_dim_of(config, adapter)
    layer_plans = [p for p in plan.groups if p.group.kind in ("mlp", "heads") and not p.is_identity]
    for p in layer_plans:
        if p.group.kind == "heads":
            _check_heads(p)
    hidden = [p for p in plan.groups if p.group.kind == "hidden" and not p.is_identity]

    widths = _layer_widths(model, adapter, layer_plans)
    new_hidden = hidden[0].new_width if hidden else getattr(config, adapter.hidden_key)
    _check_hidden_fits_heads(adapter, new_hidden, widths)

    states: dict[int, dict[str, Tensor]] = {}
    for p in layer_plans:
        state = states.setdefault(p.group.layer, dict(decoder_layers(model)[p.group.layer].state_dict()))
        if p.group.kind == "mlp":
            _mlp_tensors(state, adapter, p)
        else:
            _head_tensors(state, adapter, p, head_dim)
    if hidden:
        from hf_resize.hidden_surgery import hidden_tensors

        hidden_tensors(model, adapter, hidden[0], states)

    overrides = _set_widths(model, adapter, widths)
    for index, state in sorted(states.items()):
        _rebuild_layer(model, index, overrides[index], state)
    if config.hf_resize_layer_widths and not type(model).__name__.startswith("HFResize"):
        model.__class__ = resized_class(type(model))
    return model


def fold_embed_scale(model: PreTrainedModel, adapter: FamilyAdapter, old_hidden: int, new_hidden: int) -> None:
    """Gemma scales embeddings by sqrt(hidden): keep the residual stream's scale across a width change."""
    if not adapter.embed_scale_sqrt_hidden:
        return
    embed = model.get_submodule(adapter.embed)
    embed.weight.data.mul_(math.sqrt(old_hidden / new_hidden))
    scale = math.sqrt(new_hidden)
    if hasattr(embed, "scalar_embed_scale"):
        embed.scalar_embed_scale = scale
    if isinstance(getattr(embed, "embed_scale", None), Tensor):
        embed.embed_scale.fill_(scale)
