"""Calibration statistics gathered by forward pre-hooks during whole-model forward passes.

Each statistic kind is data: which module of a decoder layer to hook (found through the family adapter) and how
to fold one batch of that module's input into a running state. New kinds register in ``STATISTICS``; a
layer-sequential or offloaded pipeline can reuse the same specs with a different driver loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import PreTrainedModel

from hf_resize.adapters import FamilyAdapter, get_adapter
from hf_resize.errors import CalibrationError
from hf_resize.modeling.modeling_hf_resize import decoder_layers

Statistics = dict[str, Any]  # kind -> {layer index -> tensor}; plus "tokens" -> int


@dataclass(frozen=True)
class StatisticSpec:
    """One statistic kind: the hooked module of a layer and how a batch of its input updates the state."""

    name: str
    module: Callable[[FamilyAdapter, nn.Module], nn.Module]
    update: Callable[[torch.Tensor | None, torch.Tensor], torch.Tensor]
    description: str = ""


def gram_update(state: torch.Tensor | None, inputs: torch.Tensor) -> torch.Tensor:
    """Add XᵀX of ``inputs`` (any leading dims, features last) to the float64 ``state``.

    Each batch's product runs in float32 (several times faster on CPU than float64); only the running sum,
    where rounding would pile up over many batches, is float64.
    """
    x = inputs.detach().reshape(-1, inputs.shape[-1]).to(torch.float32)
    if state is None:
        state = torch.zeros(x.shape[1], x.shape[1], dtype=torch.float64, device=x.device)
    return state.add_(x.T @ x)


STATISTICS: dict[str, StatisticSpec] = {}


def register_statistic(spec: StatisticSpec) -> StatisticSpec:
    STATISTICS[spec.name] = spec
    return spec


register_statistic(
    StatisticSpec(
        "mlp_gram",
        lambda adapter, layer: layer.get_submodule(f"{adapter.mlp}.{adapter.down_proj}"),
        gram_update,
        "XᵀX of the input to down_proj (MLP intermediate activations), [I, I]",
    )
)
register_statistic(
    StatisticSpec(
        "attn_gram",
        lambda adapter, layer: layer.get_submodule(f"{adapter.attn}.{adapter.o_proj}"),
        gram_update,
        "XᵀX of the input to o_proj (concatenated head outputs), [H*hd, H*hd]",
    )
)


def _check(tokens: torch.Tensor, needs: frozenset[str]) -> None:
    unknown = sorted(set(needs) - set(STATISTICS))
    if unknown:
        raise CalibrationError(
            f"Unknown calibration statistic(s) {', '.join(unknown)}; known: {', '.join(sorted(STATISTICS))}."
        )
    if (
        not isinstance(tokens, torch.Tensor)
        or tokens.dim() != 2
        or tokens.dtype.is_floating_point
        or tokens.numel() == 0
    ):
        raise CalibrationError(
            "Calibration tokens must be a non-empty integer tensor [num_sequences, seq_len]; "
            "use hf_resize.data.calibration.sample_calibration(...) to build one."
        )


def collect_statistics(
    model: PreTrainedModel, tokens: torch.Tensor, needs: frozenset[str], batch_size: int = 4
) -> Statistics:
    """Run ``tokens`` [N, L] through ``model`` and accumulate the statistics named in ``needs``.

    Returns ``{kind: {layer: tensor}}`` for each kind in ``needs`` (Gram matrices are sums over all tokens, float64,
    on the device the activations live on) and ``"tokens"``: the number of tokens seen (N * L).
    """
    needs = frozenset(needs)
    _check(tokens, needs)
    adapter = get_adapter(model)
    states: dict[str, dict[int, torch.Tensor | None]] = {kind: {} for kind in sorted(needs)}
    handles = []

    def make_hook(kind: str, index: int):
        spec = STATISTICS[kind]

        def hook(module: nn.Module, args: tuple) -> None:
            states[kind][index] = spec.update(states[kind].get(index), args[0])

        return hook

    # The decoder alone: the statistics live in its layers, and the LM head's logits would only cost time and memory.
    body = getattr(model, model.base_model_prefix, model)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()  # statistics of the model as it runs at inference (no dropout)
    try:
        for index, layer in enumerate(decoder_layers(model)):
            for kind in states:
                module = STATISTICS[kind].module(adapter, layer)
                handles.append(module.register_forward_pre_hook(make_hook(kind, index)))
        with torch.no_grad():
            for start in tqdm(range(0, tokens.shape[0], batch_size), desc="calibrating", unit="batch"):
                batch = tokens[start : start + batch_size].to(device)
                body(input_ids=batch, use_cache=False)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    statistics: Statistics = {kind: dict(sorted(per_layer.items())) for kind, per_layer in states.items()}
    statistics["tokens"] = int(tokens.numel())
    return statistics
