"""LoRA recovery: the merged model is the adapter model, the result is a plain model, the flatness term lowers the
KFAC spectral-radius estimate, the estimate itself is the product of the factors' top eigenvalues."""

from __future__ import annotations

import torch
from conftest import logits, tiny_model
from torch.nn import functional as F

from hf_resize.calibration.collectors import collect_statistics
from hf_resize.recovery import SpectralRadius, lora_recover, spectral_radius
from hf_resize.recovery.lora import lora_target_modules

TOKENS = torch.randint(3, 97, (16, 32), generator=torch.Generator().manual_seed(0))


def test_merged_model_equals_the_adapter_model_and_is_plain(input_ids: torch.Tensor) -> None:
    model = tiny_model("llama")
    before = logits(model, input_ids)
    history = lora_recover(model, TOKENS, steps=3, learning_rate=1e-2, progress=False)
    assert history["merge_error"][0] <= 1e-5
    assert len(history["loss"]) == 3 and all(torch.isfinite(torch.tensor(history["loss"])))
    assert not any("lora" in name for name, _ in model.named_modules())
    assert type(model.model.layers[0].mlp.down_proj) is torch.nn.Linear
    assert (logits(model, input_ids) - before).abs().max() > 1e-4  # training changed the weights
    assert all(p.requires_grad for p in model.parameters())


def test_lora_targets_every_linear_of_fused_families_too() -> None:
    assert lora_target_modules(tiny_model("llama")) == ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]
    assert lora_target_modules(tiny_model("phi3")) == ["down_proj", "gate_up_proj", "o_proj", "qkv_proj"]


def test_spectral_radius_is_the_product_of_the_factors_top_eigenvalues_and_training_tracks_it() -> None:
    model = tiny_model("llama").double()
    stats = collect_statistics(model, TOKENS, frozenset({"kfac"}), progress=False)
    expected = []
    for layer in stats["kfac"].values():
        for name in ("self_attn.o_proj", "mlp.down_proj"):
            a, g = (layer[name][k] / TOKENS.numel() for k in ("A", "G"))
            expected.append(float(torch.linalg.eigvalsh(a)[-1] * torch.linalg.eigvalsh(g)[-1]))
    got = spectral_radius(model, TOKENS)
    assert abs(got["max"] - max(expected)) <= 1e-3 * max(expected)
    assert abs(got["sum"] - sum(expected)) <= 1e-3 * sum(expected)
    # the power-iteration estimate the flatness term uses during training reaches the same numbers
    tracker = SpectralRadius(model, iterations=200)
    logits = model(input_ids=TOKENS).logits[:, :-1]
    F.cross_entropy(logits.reshape(-1, logits.shape[-1]), TOKENS[:, 1:].reshape(-1), reduction="sum").backward()
    tracked = list(tracker.radii().values())
    tracker.remove()
    assert abs(max(tracked) - max(expected)) <= 1e-3 * max(expected)
    assert abs(sum(tracked) - sum(expected)) <= 1e-3 * sum(expected)


def test_flatness_term_lowers_the_spectral_radius_estimate() -> None:
    radii = {}
    for flatness in (0.0, 50.0):
        model = tiny_model("llama")
        lora_recover(model, TOKENS, steps=15, learning_rate=1e-2, flatness=flatness, progress=False)
        radii[flatness] = spectral_radius(model, TOKENS)["sum"]
    assert radii[50.0] < 0.9 * radii[0.0]
