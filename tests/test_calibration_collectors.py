"""collect_statistics: Gram matrices from hooks equal a direct computation; token count; hooks removed."""

from __future__ import annotations

import pytest
import torch
from conftest import FAMILIES, tiny_model

from hf_resize.adapters import get_adapter
from hf_resize.calibration import collect_statistics
from hf_resize.errors import CalibrationError
from hf_resize.modeling.modeling_hf_resize import decoder_layers


def _direct_grams(model, tokens: torch.Tensor) -> dict[str, dict[int, torch.Tensor]]:
    """Capture every down_proj / o_proj input in one forward pass and form XᵀX directly."""
    adapter = get_adapter(model)
    captured: dict[str, dict[int, torch.Tensor]] = {"mlp_gram": {}, "attn_gram": {}}
    handles = []
    for index, layer in enumerate(decoder_layers(model)):
        for kind, path in (
            ("mlp_gram", f"{adapter.mlp}.{adapter.down_proj}"),
            ("attn_gram", f"{adapter.attn}.{adapter.o_proj}"),
        ):

            def hook(module, args, output, kind=kind, index=index):
                captured[kind][index] = args[0].detach().reshape(-1, args[0].shape[-1]).double()

            handles.append(layer.get_submodule(path).register_forward_hook(hook))
    with torch.no_grad():
        model(input_ids=tokens, use_cache=False)
    for handle in handles:
        handle.remove()
    return {kind: {i: x.T @ x for i, x in per_layer.items()} for kind, per_layer in captured.items()}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_grams_match_direct_computation(family: str) -> None:
    model = tiny_model(family)
    tokens = torch.randint(3, 97, (7, 16), generator=torch.Generator().manual_seed(0))
    # batch_size 3 over 7 sequences: the last batch is short.
    stats = collect_statistics(model, tokens, frozenset({"mlp_gram", "attn_gram"}), batch_size=3)
    direct = _direct_grams(model, tokens)
    assert stats["tokens"] == 7 * 16
    config = model.config
    for kind, width in (("mlp_gram", config.intermediate_size), ("attn_gram", None)):
        assert sorted(stats[kind]) == list(range(config.num_hidden_layers))
        for index, gram in stats[kind].items():
            expected = direct[kind][index]
            assert gram.dtype == torch.float64
            assert gram.shape == expected.shape
            if width is not None:
                assert gram.shape == (width, width)
            assert ((gram - expected).norm() / expected.norm()).item() <= 1e-6
    for layer in decoder_layers(model):  # hooks are gone
        assert all(not m._forward_pre_hooks for m in layer.modules())


def test_only_requested_statistics_and_training_mode_restored() -> None:
    model = tiny_model("llama").train()
    stats = collect_statistics(model, torch.randint(3, 97, (2, 8)), frozenset({"mlp_gram"}))
    assert set(stats) == {"mlp_gram", "tokens"}
    assert stats["mlp_gram"][0].shape == (64, 64)
    assert model.training


def test_hooks_removed_after_error() -> None:
    model = tiny_model("llama")
    with pytest.raises(IndexError):
        collect_statistics(model, torch.full((2, 8), 10_000), frozenset({"mlp_gram"}))  # ids out of vocab
    assert all(not m._forward_pre_hooks for m in model.modules())


@pytest.mark.parametrize(
    "tokens, needs",
    [
        (torch.randint(3, 97, (2, 8)), frozenset({"bogus"})),
        (torch.rand(2, 8), frozenset({"mlp_gram"})),
        (torch.zeros(0, 8, dtype=torch.long), frozenset({"mlp_gram"})),
    ],
)
def test_bad_input_is_a_calibration_error(tokens: torch.Tensor, needs: frozenset[str]) -> None:
    with pytest.raises(CalibrationError):
        collect_statistics(tiny_model("llama"), tokens, needs)
