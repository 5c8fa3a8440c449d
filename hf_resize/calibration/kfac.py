"""KFAC factors under the language-modelling loss, whole-model pipeline.

For every ``nn.Linear`` inside a decoder layer (keyed by its name relative to the layer, e.g. ``mlp.down_proj``):

* ``A`` = Σ_t x_t x_tᵀ over all tokens t of the linear's input x (float64 sum),
* ``G`` = Σ_t g_t g_tᵀ of the gradient g_t = ∂ℓ/∂s_t of the *summed* next-token cross-entropy ℓ with respect to
  the linear's output s_t (empirical Fisher: real next tokens; the last position of each sequence has g = 0).

Divide both by ``statistics["tokens"]`` for the expectations E[x xᵀ], E[g gᵀ]. Sums (not means) make the result
independent of the batch size and of how batches are split across processes.

``kfac_consumers`` collects A and G for the two consumers only (``o_proj``, ``down_proj``; the linears whose input
columns are the units that width reduction removes), with G under labels *sampled from the model's own predictive
distribution* (one per position, the last included, seeded): the true Fisher, which approximates the Hessian (Gauss-Newton) near a
minimum, where the empirical Fisher of the data labels vanishes with the gradients. ``kfac_gradient`` collects
``D`` = Σ_t g_t x_tᵀ = ∂ℓ/∂W under the data labels, the weight gradient, for first-order terms.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn
from torch.nn import functional as F
from transformers import PreTrainedModel

from hf_resize.adapters import FamilyAdapter, get_adapter
from hf_resize.modeling.modeling_hf_resize import decoder_layers


def _gram(state: torch.Tensor | None, inputs: torch.Tensor) -> torch.Tensor:
    from hf_resize.calibration.collectors import gram_update

    return gram_update(state, inputs)


def kfac_linears(layer: nn.Module) -> dict[str, nn.Linear]:
    return {name: module for name, module in layer.named_modules() if isinstance(module, nn.Linear)}


def consumer_linears(layer: nn.Module, adapter: FamilyAdapter) -> dict[str, nn.Linear]:
    """The layer's o_proj and down_proj, keyed by their names relative to the layer."""
    names = (f"{adapter.attn}.{adapter.o_proj}", f"{adapter.mlp}.{adapter.down_proj}")
    return {name: layer.get_submodule(name) for name in names}


def _weight_gradient(state: torch.Tensor | None, grad: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    g = grad.detach().reshape(-1, grad.shape[-1]).to(torch.float32)
    x = inputs.detach().reshape(-1, inputs.shape[-1]).to(torch.float32)
    if state is None:
        state = torch.zeros(g.shape[1], x.shape[1], dtype=torch.float64, device=g.device)
    return state.add_(g.T @ x)


def collect_kfac(
    model: PreTrainedModel,
    batches: Iterable[torch.Tensor],
    device: torch.device | str = "cpu",
    progress: Callable[[Iterable], Iterable] = iter,
    kind: str = "kfac",
    seed: int = 0,
) -> dict[int, dict[str, dict[str, torch.Tensor]]]:
    """Accumulate the ``kind`` statistic (see module doc) over ``batches`` of token ids; parameters get no ``.grad``.

    ``kind``: ``"kfac"`` (A, G of every linear, data labels), ``"kfac_consumers"`` (A, G of o_proj/down_proj,
    sampled labels, seeded by ``seed``) or ``"kfac_gradient"`` (D of o_proj/down_proj, data labels).
    """
    generator = torch.Generator(device=device).manual_seed(seed)
    states: dict[int, dict[str, dict[str, torch.Tensor]]] = {}
    handles = []

    def make_hook(index: int, name: str):
        state = states.setdefault(index, {}).setdefault(name, {})

        def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            inputs = args[0]
            if kind != "kfac_gradient":
                state["A"] = _gram(state.get("A"), inputs)

            def on_grad(grad: torch.Tensor) -> None:
                if kind == "kfac_gradient":
                    state["D"] = _weight_gradient(state.get("D"), grad, inputs)
                else:
                    state["G"] = _gram(state.get("G"), grad)

            if output.requires_grad:
                output.register_hook(on_grad)

        return hook

    def embeddings_need_grad(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        return output.detach().requires_grad_()

    requires = {name: p.requires_grad for name, p in model.named_parameters()}
    was_training = model.training
    model.eval()
    try:
        for p in model.parameters():
            p.requires_grad_(False)  # gradients flow to activations only; no parameter .grad is touched
        handles.append(model.get_input_embeddings().register_forward_hook(embeddings_need_grad))
        adapter = get_adapter(model)
        for index, layer in enumerate(decoder_layers(model)):
            linears = kfac_linears(layer) if kind == "kfac" else consumer_linears(layer, adapter)
            for name, module in linears.items():
                handles.append(module.register_forward_hook(make_hook(index, name)))
        with torch.enable_grad():
            for batch in progress(batches):
                batch = batch.to(device)
                logits = model(input_ids=batch, use_cache=False).logits
                if kind == "kfac_consumers":
                    # True Fisher: a label sampled from the model's own softmax at every position (the last too),
                    # by inverse CDF (far cheaper than multinomial over the vocabulary). ∂(Σ cross-entropy)/∂logits
                    # is softmax − onehot(label), so no loss is formed. (A copy: a final soft-capping tanh, as in
                    # Gemma, needs the logits' values in its backward pass.)
                    with torch.no_grad():
                        probs = logits.detach().to(torch.float32, copy=True)
                        probs = probs.sub_(probs.amax(-1, keepdim=True)).exp_()
                        probs = probs.div_(probs.sum(-1, keepdim=True)).reshape(-1, probs.shape[-1])
                        cdf = probs.cumsum(-1)
                        u = torch.rand(cdf.shape[0], 1, generator=generator, device=cdf.device, dtype=cdf.dtype)
                        labels = torch.searchsorted(cdf, u * cdf[:, -1:]).flatten().clamp_max_(cdf.shape[1] - 1)
                        del cdf
                        probs[torch.arange(labels.shape[0], device=labels.device), labels] -= 1
                    logits.backward(probs.reshape(logits.shape).to(logits.dtype))
                else:
                    F.cross_entropy(
                        logits[:, :-1].reshape(-1, logits.shape[-1]).float(), batch[:, 1:].reshape(-1), reduction="sum"
                    ).backward()
    finally:
        for handle in handles:
            handle.remove()
        for name, p in model.named_parameters():
            p.requires_grad_(requires[name])
        model.train(was_training)
    return states
