"""Calibration statistics: forward pre-hooks on decoder-layer modules, driven by one of two pipelines.

Each forward statistic kind is data: which module of a decoder layer to hook (found through the family adapter)
and how to fold one batch of that module's input into a running state. New kinds register in ``STATISTICS``.

Pipelines (``collect_statistics(mode=...)``):

* ``"whole"``: ordinary forward passes of the decoder; gradient kinds (``kfac``) need this one.
* ``"sequential"``: the inputs of every decoder layer are captured once from a real forward call (each layer is
  swapped for a stub that records its arguments — hidden states, attention masks per layer type, rotary
  position embeddings — and passes the hidden states through), then layer i runs alone on layer i-1's outputs.
  An ``on_layer(i, layer_stats)`` callback may resize layer i before its outputs feed layer i+1, so later layers
  are calibrated on the already-resized model (SparseGPT/SliceGPT style).

Under ``accelerate launch`` / ``torchrun`` each process takes every n-th batch and the sums are all-reduced, so
every process returns what one process would. Results may be cached on disk (``cache.py``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import PreTrainedModel

from hf_resize.adapters import FamilyAdapter, get_adapter
from hf_resize.calibration import cache as statistics_cache
from hf_resize.calibration.kfac import collect_kfac, consumer_linears, kfac_linears
from hf_resize.errors import CalibrationError
from hf_resize.modeling.modeling_hf_resize import decoder_layers

Statistics = dict[str, Any]  # kind -> {layer index -> tensor}; plus "tokens" -> int


@dataclass(frozen=True)
class StatisticSpec:
    """One statistic kind: the hooked module of a layer and how a batch of its input updates the state."""

    name: str
    module: Callable[[FamilyAdapter, nn.Module], nn.Module] | None
    update: Callable[[torch.Tensor | None, torch.Tensor], torch.Tensor] | None
    description: str = ""
    #: Gradient statistics run their own backward pass in the whole-model pipeline (``module``/``update`` unused).
    gradient: bool = False
    #: Bytes of one layer's state given the hooked module (for the memory estimate); default: a float64 Gram.
    nbytes: Callable[[nn.Module], int] | None = None
    #: Definition version, part of the cache key: bump it when what the kind computes changes.
    version: int = 1


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


def mean_update(state: torch.Tensor | None, inputs: torch.Tensor) -> torch.Tensor:
    """Add the per-feature sum of ``inputs`` to the float64 ``state`` (divide by the token count for the mean)."""
    x = inputs.detach().reshape(-1, inputs.shape[-1]).to(torch.float64)
    return x.sum(0) if state is None else state.add_(x.sum(0))


def normalized_gram_update(state: torch.Tensor | None, inputs: torch.Tensor) -> torch.Tensor:
    """Gram of the inputs with each token scaled to unit RMS: what an RMSNorm reading the residual stream sees."""
    x = inputs.detach().to(torch.float32)
    x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-12)
    return gram_update(state, x)


register_statistic(
    StatisticSpec(
        "mlp_mean",
        lambda adapter, layer: layer.get_submodule(f"{adapter.mlp}.{adapter.down_proj}"),
        mean_update,
        "sum over tokens of the input to down_proj, [I] (with mlp_gram: means and variances per neuron)",
        nbytes=lambda module: 8 * module.in_features,
    )
)
register_statistic(
    StatisticSpec(
        "attn_mean",
        lambda adapter, layer: layer.get_submodule(f"{adapter.attn}.{adapter.o_proj}"),
        mean_update,
        "sum over tokens of the input to o_proj, [H*hd] (with attn_gram: means and variances per head channel)",
        nbytes=lambda module: 8 * module.in_features,
    )
)
register_statistic(
    StatisticSpec(
        "hidden_gram",
        lambda adapter, layer: layer.get_submodule(adapter.attn_norm),
        normalized_gram_update,
        "XᵀX of the residual stream entering each layer, every token scaled to unit RMS, [D, D]",
        nbytes=lambda module: 8 * module.weight.shape[0] ** 2,
    )
)


register_statistic(
    StatisticSpec(
        "kfac",
        None,
        None,
        "KFAC factors of every nn.Linear in each layer: {layer: {name: {'A': Σ x xᵀ, 'G': Σ g gᵀ}}} under the "
        "summed LM loss (see hf_resize.calibration.kfac); whole-model pipeline only",
        gradient=True,
    )
)
register_statistic(
    StatisticSpec(
        "kfac_consumers",
        None,
        None,
        "KFAC factors of each layer's o_proj and down_proj: {layer: {name: {'A': Σ x xᵀ, 'G': Σ g gᵀ}}}, G under "
        "labels sampled from the model at every position (true Fisher); whole-model pipeline only",
        gradient=True,
        version=2,  # 2: labels sampled at every position, the last included
    )
)
register_statistic(
    StatisticSpec(
        "kfac_gradient",
        None,
        None,
        "weight gradient of each layer's o_proj and down_proj under the summed LM loss: {layer: {name: {'D': Σ g xᵀ}}}; "
        "whole-model pipeline only",
        gradient=True,
    )
)

Mode = Literal["whole", "sequential"]
OnLayer = Callable[[int, dict[str, Any]], None]
LayerScope = Callable[[int], AbstractContextManager]


def _check(tokens: torch.Tensor, needs: frozenset[str], mode: str, on_layer: OnLayer | None) -> None:
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
    if mode not in ("whole", "sequential"):
        raise CalibrationError(f"mode must be 'whole' or 'sequential', not {mode!r}.")
    gradient = sorted(kind for kind in needs if STATISTICS[kind].gradient)
    if mode == "sequential" and gradient:
        raise CalibrationError(
            f"{', '.join(gradient)} need gradients through the whole network; use mode='whole' for them."
        )
    if on_layer is not None and mode != "sequential":
        raise CalibrationError(
            "on_layer needs mode='sequential' (whole-model passes cannot resize between layers)."
        )


# --- processes --------------------------------------------------------------------------------------------------


def _process_share() -> tuple[int, int]:
    """(rank, world size): initialises the process group that ``accelerate launch``/``torchrun`` describe."""
    import torch.distributed as dist

    if not dist.is_available():
        return 0, 1
    if not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from accelerate import PartialState

        PartialState()
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _all_reduce(tensors: Iterable[torch.Tensor], world: int) -> None:
    if world == 1:
        return
    import torch.distributed as dist

    for tensor in tensors:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        return [t for key in sorted(value, key=str) for t in _tensors(value[key])]
    return []


# --- memory estimate --------------------------------------------------------------------------------------------


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**28 else f"{n / 2**20:.1f} MiB"


def estimate_memory(
    model: PreTrainedModel, tokens: torch.Tensor, needs: frozenset[str], mode: Mode = "whole"
) -> dict[str, int]:
    """Bytes the requested statistics (and, in sequential mode, the captured layer inputs/outputs) will hold."""
    adapter = get_adapter(model)
    estimate: dict[str, int] = {}
    for kind in sorted(needs):
        spec = STATISTICS[kind]
        total = 0
        for layer in decoder_layers(model):
            if spec.gradient:
                linears = kfac_linears(layer) if kind == "kfac" else consumer_linears(layer, adapter)
                if kind == "kfac_gradient":
                    total += sum(8 * m.in_features * m.out_features for m in linears.values())
                else:
                    total += sum(8 * (m.in_features**2 + m.out_features**2) for m in linears.values())
            else:
                module = spec.module(adapter, layer)
                total += spec.nbytes(module) if spec.nbytes else 8 * module.in_features**2
        estimate[kind] = total
    if mode == "sequential":
        embeddings = model.get_input_embeddings()
        itemsize = embeddings.weight.element_size()
        estimate["layer inputs+outputs"] = 2 * tokens.numel() * embeddings.embedding_dim * itemsize
    return estimate


def _announce(estimate: dict[str, int], mode: str, batches: int, world: int) -> None:
    parts = ", ".join(f"{name} {_gib(n)}" for name, n in estimate.items())
    print(
        f"hf_resize calibration ({mode}, {batches} batches, {world} process(es)): needs about "
        f"{_gib(sum(estimate.values()))} [{parts}]",
        file=sys.stderr,
    )


# --- pipelines --------------------------------------------------------------------------------------------------


def input_device(model: PreTrainedModel) -> torch.device:
    """Where token ids go: the embeddings' accelerate execution device (offloaded models) or their weights'."""
    embeddings = model.get_input_embeddings()
    hook = getattr(embeddings, "_hf_hook", None) or getattr(model, "_hf_hook", None)
    execution = getattr(hook, "execution_device", None)
    if execution is not None:
        return torch.device(execution)
    weight = getattr(embeddings, "weight", None)
    if weight is not None and weight.device.type != "meta":
        return weight.device
    return torch.device("cpu")


def _forward_hooks(
    adapter: FamilyAdapter,
    layer: nn.Module,
    index: int,
    kinds: Iterable[str],
    states: dict[str, dict[int, Any]],
) -> list:
    handles = []
    for kind in kinds:
        spec = STATISTICS[kind]

        def hook(module: nn.Module, args: tuple, spec: StatisticSpec = spec, kind: str = kind) -> None:
            states[kind][index] = spec.update(states[kind].get(index), args[0])

        handles.append(spec.module(adapter, layer).register_forward_pre_hook(hook))
    return handles


def _whole(model, adapter, batches, kinds, states, bar) -> None:
    handles = []
    # The decoder alone: the statistics live in its layers, and the LM head's logits would only cost time and memory.
    body = getattr(model, model.base_model_prefix, model)
    device = input_device(model)
    try:
        for index, layer in enumerate(decoder_layers(model)):
            handles += _forward_hooks(adapter, layer, index, kinds, states)
        with torch.no_grad():
            for batch in bar(batches, desc="calibrating", unit="batch"):
                body(input_ids=batch.to(device), use_cache=False)
    finally:
        for handle in handles:
            handle.remove()


_MISSING = object()


def capture_layer_inputs(
    model: PreTrainedModel, batches: list[torch.Tensor]
) -> tuple[list[torch.Tensor], list[list[tuple[tuple, dict]]]]:
    """Layer 0's hidden-state input per batch, and every layer's other call arguments per batch.

    Each decoder layer is swapped for a stub that records how the model calls it and returns its hidden states
    unchanged, so one cheap pass through the decoder (embeddings, masks, rotary tables; no layer work) yields
    exactly the keyword arguments of the real call — including per-layer-type masks and position embeddings
    (Gemma 3's sliding/full layers).
    """
    layers = decoder_layers(model)
    body = getattr(model, model.base_model_prefix, model)
    device = input_device(model)
    hidden: list[torch.Tensor] = []
    calls: list[list[tuple[tuple, dict]]] = [[] for _ in layers]
    saved = [layer.__dict__.get("forward", _MISSING) for layer in layers]

    def make_stub(index: int):
        def stub(*args: Any, **kwargs: Any) -> torch.Tensor:
            if args:
                states, rest = args[0], args[1:]
            else:
                states, rest = kwargs.pop("hidden_states"), ()
            if index == 0:
                hidden.append(states)
            calls[index].append((rest, kwargs))
            return states

        return stub

    try:
        for index, layer in enumerate(layers):
            layer.forward = make_stub(index)
        with torch.no_grad():
            for batch in batches:
                body(input_ids=batch.to(device), use_cache=False)
    finally:
        for layer, forward in zip(layers, saved, strict=True):
            if forward is _MISSING:
                del layer.forward
            else:
                layer.forward = forward
    return hidden, calls


def _run_layer(layer: nn.Module, hidden: torch.Tensor, call: tuple[tuple, dict]) -> torch.Tensor:
    rest, kwargs = call
    out = layer(hidden, *rest, **kwargs)
    return out[0] if isinstance(out, tuple) else out


def _sequential(
    model, adapter, batches, kinds, states, bar, on_layer: OnLayer | None, world: int,
    layer_scope: LayerScope | None = None, keep: bool = True,
) -> None:
    hidden, calls = capture_layer_inputs(model, batches)
    with torch.no_grad():
        for index in bar(range(len(calls)), desc="calibrating layers", unit="layer"):
            with layer_scope(index) if layer_scope is not None else nullcontext():
                layer = decoder_layers(model)[index]
                handles = _forward_hooks(adapter, layer, index, kinds, states)
                try:
                    for b in bar(range(len(hidden)), desc=f"layer {index}", unit="batch", leave=False):
                        out = _run_layer(layer, hidden[b], calls[index][b])
                        if on_layer is None:
                            hidden[b] = out  # this batch's input is no longer needed
                finally:
                    for handle in handles:
                        handle.remove()
                for kind in kinds:
                    _all_reduce(_tensors(states[kind].get(index)), world)
                if on_layer is not None:
                    on_layer(index, {kind: states[kind][index] for kind in kinds})
                    layer = decoder_layers(model)[index]  # the callback may have replaced or resized it
                    hidden = [_run_layer(layer, hidden[b], calls[index][b]) for b in range(len(hidden))]
                if not keep:
                    for kind in kinds:
                        states[kind].pop(index, None)
            calls[index] = []


def collect_statistics(
    model: PreTrainedModel,
    tokens: torch.Tensor,
    needs: frozenset[str],
    batch_size: int = 4,
    *,
    mode: Mode = "whole",
    cache: bool = False,
    on_layer: OnLayer | None = None,
    layer_scope: LayerScope | None = None,
    keep: bool = True,
    progress: bool = True,
) -> Statistics:
    """Run ``tokens`` [N, L] through ``model`` and accumulate the statistics named in ``needs``.

    Returns ``{kind: {layer: value}}`` for each kind in ``needs`` (Gram matrices are sums over all tokens, float64,
    on the device the activations live on; ``kfac`` values are ``{linear name: {"A", "G"}}``) and ``"tokens"``:
    the number of tokens seen (N * L).

    Args:
        mode: ``"whole"`` (forward passes of the full decoder) or ``"sequential"`` (layer by layer on captured
            inputs; see the module doc). Both give the same statistics when ``on_layer`` is None.
        cache: reuse/store statistics on disk keyed by model weights, tokens and kind (``cache.py``); ignored
            with ``on_layer`` or ``HF_RESIZE_NO_CACHE=1``.
        on_layer: sequential mode only: ``on_layer(i, {kind: layer i's statistic})`` runs after layer i is
            calibrated (statistics already summed over processes) and may resize layer i in place or replace
            ``decoder_layers(model)[i]``; layer i+1 then sees the outputs of the layer as it is afterwards.
        layer_scope: sequential mode only: ``layer_scope(i)`` is a context manager entered around all of layer
            i's work (statistics, ``on_layer``, its outputs), e.g. to load only that layer's weights from disk and
            release them after, so a model larger than memory can be calibrated and resized.
        keep: False drops each layer's statistics once ``on_layer`` has seen them (large models: they would not
            fit all at once); the result then holds none of those kinds.
        progress: tqdm bars (main process only).

    Under ``accelerate launch``/``torchrun`` each process handles every n-th batch and sums are all-reduced.
    """
    needs = frozenset(needs)
    _check(tokens, needs, mode, on_layer)
    if (layer_scope is not None or not keep) and mode != "sequential":
        raise CalibrationError("layer_scope and keep=False need mode='sequential' (one layer at a time).")
    adapter = get_adapter(model)
    rank, world = _process_share()
    starts = list(range(0, tokens.shape[0], batch_size))
    if world > len(starts):
        raise CalibrationError(
            f"{len(starts)} calibration batch(es) cannot be shared by {world} processes; "
            "pass more sequences or a smaller batch_size."
        )
    device = input_device(model)
    statistics: Statistics = {}
    use_cache = cache and on_layer is None and layer_scope is None and keep and not statistics_cache.cache_disabled()
    entries: dict[str, Any] = {}
    model_fp = statistics_cache.model_fingerprint(model) if use_cache else None
    use_cache = model_fp is not None
    if use_cache:
        data_fp = statistics_cache.data_fingerprint(tokens)
        meta = {
            "model_fingerprint": model_fp,
            "data_fingerprint": data_fp,
            "model_type": model.config.model_type,
        }
        for kind in sorted(needs):
            entries[kind] = statistics_cache.entry_dir(model_fp, data_fp, kind, version=STATISTICS[kind].version)
            hit = statistics_cache.load_entry(entries[kind], kind, device)
            if hit is not None and hit[1] == tokens.numel():
                statistics[kind] = hit[0]
        if world > 1:  # every process must agree on what to compute, or the all-reduces would not pair up
            import torch.distributed as dist

            flags = torch.tensor([kind in statistics for kind in sorted(needs)], dtype=torch.int32)
            dist.all_reduce(flags, op=dist.ReduceOp.MIN)
            for kind, flag in zip(sorted(needs), flags.tolist(), strict=True):
                if not flag:
                    statistics.pop(kind, None)
    todo = sorted(needs - set(statistics))
    if todo:
        if rank == 0 and progress:
            _announce(estimate_memory(model, tokens, frozenset(todo), mode), mode, len(starts), world)
        batches = [tokens[start : start + batch_size] for start in starts[rank::world]]

        def bar(iterable, **kwargs):
            return tqdm(iterable, disable=not progress or rank != 0, **kwargs)

        forward = [kind for kind in todo if not STATISTICS[kind].gradient]
        states: dict[str, dict[int, Any]] = {kind: {} for kind in forward}
        was_training = model.training
        model.eval()  # statistics of the model as it runs at inference (no dropout)
        try:
            if forward:
                if mode == "sequential":
                    _sequential(model, adapter, batches, forward, states, bar, on_layer, world, layer_scope, keep)
                else:
                    _whole(model, adapter, batches, forward, states, bar)
                    for kind in forward:
                        _all_reduce(_tensors(states[kind]), world)
            for kind in (k for k in todo if STATISTICS[k].gradient):
                states[kind] = collect_kfac(
                    model, batches, device, lambda it, kind=kind: bar(it, desc=kind, unit="batch"), kind=kind, seed=rank
                )
                _all_reduce(_tensors(states[kind]), world)
        finally:
            model.train(was_training)
        for kind in todo:
            statistics[kind] = dict(sorted(states[kind].items()))
            if use_cache and rank == 0:
                statistics_cache.save_entry(entries[kind], kind, statistics[kind], int(tokens.numel()), meta)
        if use_cache and world > 1:
            import torch.distributed as dist

            dist.barrier()
    result: Statistics = {kind: statistics[kind] for kind in sorted(needs)}
    result["tokens"] = int(tokens.numel())
    return result
