"""Turn a method config into the number of units each group keeps, including body-parameter targets."""

from __future__ import annotations

from transformers import PreTrainedModel

from hf_resize.adapters import FamilyAdapter, get_adapter
from hf_resize.errors import ConfigError
from hf_resize.groups import head_dim_of, neuron_groups
from hf_resize.methods.base import MethodConfig, kept_units
from hf_resize.modeling.modeling_hf_resize import decoder_layers
from hf_resize.params import parameter_counts


def _has_bias(layer, path: str) -> bool:
    return getattr(layer.get_submodule(path), "bias", None) is not None


def _layer_body(adapter: FamilyAdapter, layer, hidden: int, inter: int, heads: int, kv: int, head_dim: int) -> int:
    """Body parameters of one decoder layer at the given widths."""
    a, m = adapter.attn, adapter.mlp
    q_name = adapter.qkv_proj if adapter.fused_qkv else adapter.q_proj
    k_name = adapter.qkv_proj if adapter.fused_qkv else adapter.k_proj
    qkv_bias = _has_bias(layer, f"{a}.{q_name}") or _has_bias(layer, f"{a}.{k_name}")
    o_bias = _has_bias(layer, f"{a}.{adapter.o_proj}")
    up_name = adapter.gate_up_proj if adapter.fused_gate_up else adapter.up_proj
    up_bias = _has_bias(layer, f"{m}.{up_name}")
    down_bias = _has_bias(layer, f"{m}.{adapter.down_proj}")
    qkv_rows = (heads + 2 * kv) * head_dim
    count = qkv_rows * hidden + (qkv_rows if qkv_bias else 0) + heads * head_dim * hidden + (hidden if o_bias else 0)
    count += 3 * inter * hidden + (2 * inter if up_bias else 0) + (hidden if down_bias else 0)
    count += len(adapter.norms_per_layer) * hidden
    count += sum(layer.get_submodule(f"{a}.{n}").weight.numel() for n in adapter.qk_norms)
    return count


def mlp_kept(group, ratio: float, round_to: int) -> int:
    """MLP units kept after ``ratio``, rounded to the nearest multiple of ``round_to`` (at least one multiple)."""
    kept = kept_units(group, ratio)[0]
    if round_to > 1:
        kept = min(max(round_to, round_to * round(kept / round_to)), group.width)
        if ratio > 0 and kept == group.width:
            raise ConfigError(
                f"ratio {ratio:g} with round_to={round_to} removes nothing from {group.name} ({group.width} units); "
                "use a larger ratio or a smaller round_to."
            )
    return kept


def hidden_kept(model: PreTrainedModel, config: MethodConfig, ratio: float) -> int:
    """Hidden width after ``ratio``, rounded down to a multiple of the head count where the family requires it."""
    adapter = get_adapter(model)
    groups = neuron_groups(model)
    hidden = next(g for g in groups if g.kind == "hidden")
    if "hidden" not in config.groups:
        return hidden.width
    kept = kept_units(hidden, ratio)[0]
    if adapter.hidden_divisible_by_heads:
        heads = next(g for g in groups if g.kind == "heads")
        count = kept_units(heads, ratio, config.head_mode)[0] if "heads" in config.groups else heads.width
        kept -= kept % count
        if kept < count:
            raise ConfigError(f"ratio {ratio:g} leaves no hidden width that is a multiple of {count} heads; use a smaller ratio.")
    return kept


def uniform_body_parameters(model: PreTrainedModel, config: MethodConfig, ratio: float) -> int:
    """Body parameters after removing ``ratio`` of each selected group's width (uniformly)."""
    adapter = get_adapter(model)
    head_dim = head_dim_of(model.config, adapter)
    groups = neuron_groups(model)
    hidden = hidden_kept(model, config, ratio)
    total = hidden  # final norm
    for index, layer in enumerate(decoder_layers(model)):
        mlp = next(g for g in groups if g.kind == "mlp" and g.layer == index)
        heads = next(g for g in groups if g.kind == "heads" and g.layer == index)
        inter = mlp_kept(mlp, ratio, config.round_to) if "mlp" in config.groups else mlp.width
        q, kv = heads.width, heads.kv_width
        if "heads" in config.groups:
            q, kv = kept_units(heads, ratio, config.head_mode)
        total += _layer_body(adapter, layer, hidden, inter, q, kv, head_dim)
    return total


def width_ratio(model: PreTrainedModel, config: MethodConfig) -> float:
    """The uniform width ratio that meets ``config``: itself, or the one closest to its body-parameter target."""
    if config.target == "width" or config.ratio == 0:
        return config.ratio
    goal = parameter_counts(model).body * (1 - config.ratio)
    best, best_gap = None, None
    for step in range(1, 1000):
        ratio = step / 1000
        try:
            body = uniform_body_parameters(model, config, ratio)
        except ConfigError:
            continue
        if best_gap is None or abs(body - goal) < best_gap:
            best, best_gap = ratio, abs(body - goal)
    if best is None:
        raise ConfigError(f"No width ratio of {config.groups} removes {config.ratio:g} of body parameters.")
    return best


def planned_widths(model: PreTrainedModel, config: MethodConfig) -> dict[str, tuple[int, int | None]]:
    """Group name → (units kept, KV heads kept) for every selected group."""
    ratio = width_ratio(model, config)
    widths = {g.name: kept_units(g, ratio, config.head_mode) for g in neuron_groups(model) if g.kind in config.groups}
    if "hidden" in widths:
        widths["hidden"] = (hidden_kept(model, config, ratio), None)
    for group in neuron_groups(model, ("mlp",)):
        if group.name in widths:
            widths[group.name] = (mlp_kept(group, ratio, config.round_to), None)
    return widths
