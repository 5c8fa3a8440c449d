"""KFAC estimate of the layer Hessians' spectral radius, for the flatness term and for reporting.

Under KFAC the Hessian block of a linear layer is A ⊗ G, whose largest eigenvalue is λ_max(A)·λ_max(G). For each
consumer (o_proj, down_proj): A = E[x xᵀ] over the batch's tokens and G = E[g gᵀ] of the gradient of the summed
token loss at the layer's output. During training (``SpectralRadius``) both come from power iteration with
persistent vectors (warm starts make a few iterations per step enough): λ_max(A) = ‖X v‖² / T is differentiable
in the activations, so it can be penalised; λ_max(G) needs the backward pass and is taken from the previous step
as a constant. For reporting, ``spectral_radius`` computes them exactly from the calibration KFAC factors.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedModel

from hf_resize.adapters import get_adapter
from hf_resize.calibration.kfac import collect_kfac, consumer_linears
from hf_resize.modeling.modeling_hf_resize import decoder_layers


def _power(matvec, vector: torch.Tensor, iterations: int) -> torch.Tensor:
    with torch.no_grad():
        for _ in range(iterations):
            vector = matvec(vector)
            vector = vector / vector.norm().clamp_min(1e-30)
    return vector


class SpectralRadius:
    """Hooks on every consumer that estimate λ_max(A) (differentiable) and λ_max(G) (after backward) per step."""

    def __init__(self, model: nn.Module, iterations: int = 10, seed: int = 0) -> None:
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        adapter = get_adapter(base)
        self.iterations = iterations
        #: multiplies the observed output gradients: set it to the token count when the loss is a mean, so that G
        #: is that of the summed token loss, as in the calibration statistics.
        self.grad_scale = 1.0
        self.lambda_a: dict[str, torch.Tensor] = {}
        self.lambda_g: dict[str, float] = {}
        self._vectors: dict[str, torch.Tensor] = {}
        self._handles = []
        generator = torch.Generator().manual_seed(seed)
        for index, layer in enumerate(decoder_layers(base)):
            for name, module in consumer_linears(layer, adapter).items():
                key = f"{index}.{name}"
                for side, size in (("A", module.in_features), ("G", module.out_features)):
                    self._vectors[f"{key}.{side}"] = torch.randn(size, generator=generator, dtype=torch.float64)
                self._handles.append(module.register_forward_hook(self._hook(key)))

    def _hook(self, key: str):
        def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            x = args[0].reshape(-1, args[0].shape[-1])
            tokens = x.shape[0]
            xd = x.detach().double()
            v = _power(lambda u: xd.T @ (xd @ u) / tokens, self._vectors[f"{key}.A"], self.iterations)
            self._vectors[f"{key}.A"] = v
            self.lambda_a[key] = (x @ v.to(x.dtype)).pow(2).sum() / tokens
            if output.requires_grad:
                output.register_hook(self._grad_hook(key, tokens))

        return hook

    def _grad_hook(self, key: str, tokens: int):
        def on_grad(grad: torch.Tensor) -> None:
            g = grad.detach().reshape(-1, grad.shape[-1]).double() * self.grad_scale
            v = _power(lambda u: g.T @ (g @ u) / tokens, self._vectors[f"{key}.G"], self.iterations)
            self._vectors[f"{key}.G"] = v
            self.lambda_g[key] = float((g @ v).pow(2).sum() / tokens)

        return on_grad

    def penalty(self) -> torch.Tensor:
        """Σ over consumers of λ_max(A)·λ_max(G) (λ_G from the last backward; 0 before the first)."""
        terms = [a * self.lambda_g.get(key, 0.0) for key, a in self.lambda_a.items()]
        return torch.stack(terms).sum() if terms else torch.zeros(())

    def radii(self) -> dict[str, float]:
        """λ_max(A)·λ_max(G) per consumer, from the last forward and backward."""
        return {key: float(a.detach()) * self.lambda_g[key] for key, a in self.lambda_a.items() if key in self.lambda_g}

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


def spectral_radius(model: PreTrainedModel, tokens: torch.Tensor) -> dict[str, float]:
    """{"max", "sum"} over the consumers of λ_max(A)·λ_max(G), exact (eigvalsh) from the KFAC factors of the summed
    next-token loss on ``tokens`` [B, L] (``collect_kfac``, the calibration statistic); parameters get no ``.grad``."""
    adapter = get_adapter(model)
    factors = collect_kfac(model, [tokens], device=tokens.device)
    count = float(tokens.numel())
    radii = [
        float(torch.linalg.eigvalsh(layer[name]["A"] / count)[-1] * torch.linalg.eigvalsh(layer[name]["G"] / count)[-1])
        for index, layer in factors.items()
        for name in consumer_linears(decoder_layers(model)[index], adapter)
    ]
    return {"max": max(radii), "sum": sum(radii)}
