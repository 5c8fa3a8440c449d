"""LoRA recovery training (peft) on calibration text, merged back so the result is a plain model."""

from __future__ import annotations

import torch
from torch.nn import functional as F
from tqdm.auto import tqdm
from transformers import PreTrainedModel

from hf_resize.calibration.kfac import kfac_linears
from hf_resize.modeling.modeling_hf_resize import decoder_layers
from hf_resize.recovery.flatness import SpectralRadius


def lora_target_modules(model: PreTrainedModel) -> list[str]:
    """Leaf names of every linear inside the decoder layers (q/k/v/o, gate/up/down, or fused ones such as Phi-3's)."""
    return sorted({name.rsplit(".", 1)[-1] for layer in decoder_layers(model) for name in kfac_linears(layer)})


def lora_recover(
    model: PreTrainedModel,
    tokens: torch.Tensor,
    steps: int,
    learning_rate: float = 1e-4,
    rank: int = 8,
    alpha: int = 16,
    batch_size: int = 4,
    flatness: float = 0.0,
    power_iterations: int = 10,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, list[float]]:
    """Train LoRA adapters on ``tokens`` [N, L] for ``steps`` AdamW steps, then merge them into ``model`` in place.

    The objective is the mean next-token loss plus ``flatness`` x Σ over consumers of λ_max(A)·λ_max(G), the KFAC
    estimate of each consumer's Hessian spectral radius (``flatness.SpectralRadius``). Batches cycle through
    ``tokens`` in a seeded order. Returns per-step ``loss`` (LM loss only) and ``radius`` (Σ λ_A·λ_G) histories
    and ``merge_error``: the largest logit difference between the adapter model and the merged one on a probe
    sequence (the merge is checked, not assumed).
    """
    from peft import LoraConfig, get_peft_model

    requires = {name: p.requires_grad for name, p in model.named_parameters()}
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=lora_target_modules(model), bias="none")
    torch.manual_seed(seed)  # LoRA's A matrices are initialised randomly
    peft_model = get_peft_model(model, config)
    tracker = SpectralRadius(peft_model, power_iterations, seed)
    trainable = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=learning_rate, weight_decay=0.0)
    order = torch.randperm(tokens.shape[0], generator=torch.Generator().manual_seed(seed))
    history: dict[str, list[float]] = {"loss": [], "radius": []}
    was_training = model.training
    peft_model.train()
    try:
        bar = tqdm(range(steps), desc="lora recovery", unit="step", disable=not progress)
        for step in bar:
            pick = order[(torch.arange(batch_size) + step * batch_size) % tokens.shape[0]]
            batch = tokens[pick]
            logits = peft_model(input_ids=batch, use_cache=False).logits[:, :-1].float()
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
            tracker.grad_scale = float(batch[:, 1:].numel())
            objective = loss + flatness * tracker.penalty() if flatness else loss
            optimizer.zero_grad(set_to_none=True)
            objective.backward()
            optimizer.step()
            radius = sum(tracker.radii().values())
            history["loss"].append(float(loss.detach()))
            history["radius"].append(radius)
            bar.set_postfix(loss=f"{history['loss'][-1]:.3f}", radius=f"{radius:.3g}")
    finally:
        tracker.remove()
        peft_model.eval()
        probe = tokens[:1]
        with torch.no_grad():
            adapter_logits = peft_model(input_ids=probe, use_cache=False).logits
        merged = peft_model.merge_and_unload()
        with torch.no_grad():
            history["merge_error"] = [float((merged(input_ids=probe, use_cache=False).logits - adapter_logits).abs().max())]
        merged.train(was_training)
        for name, p in merged.named_parameters():  # peft froze the base weights for training
            p.requires_grad_(requires.get(name, True))
    if merged is not model:  # peft edits the wrapped model in place; the caller's object must hold the result
        raise RuntimeError("peft merge_and_unload returned a different model object")
    return history
