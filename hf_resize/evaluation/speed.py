"""Prefill and decode throughput, several models measured side by side with interleaved repeats."""

from __future__ import annotations

import statistics
import time

import torch
from transformers import PreTrainedModel


@torch.no_grad()
def _prefill(model: PreTrainedModel, ids: torch.Tensor) -> float:
    """Prompt tokens/s as generation runs a prompt: build the KV cache, score only the last position."""
    start = time.perf_counter()
    model(input_ids=ids, use_cache=True, logits_to_keep=1)
    return ids.numel() / (time.perf_counter() - start)


@torch.no_grad()
def _decode(model: PreTrainedModel, ids: torch.Tensor, new_tokens: int) -> float:
    out = model(input_ids=ids, use_cache=True)
    cache, token = out.cache, out.logits[:, -1:].argmax(-1)
    start = time.perf_counter()
    for _ in range(new_tokens):
        out = model(input_ids=token, cache=cache, use_cache=True)
        cache, token = out.cache, out.logits[:, -1:].argmax(-1)
    return new_tokens * ids.shape[0] / (time.perf_counter() - start)


def measure_speed(
    models: dict[str, PreTrainedModel],
    prompt_len: int = 256,
    new_tokens: int = 32,
    repeats: int = 5,
    batch_size: int = 1,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Median prefill and decode tokens/s per model; repeats alternate between models so drift hits all alike."""
    first = next(iter(models.values()))
    vocab = first.config.vocab_size
    ids = torch.randint(0, vocab, (batch_size, prompt_len), generator=torch.Generator().manual_seed(seed))
    ids = ids.to(first.device)
    samples: dict[str, dict[str, list[float]]] = {name: {"prefill": [], "decode": []} for name in models}
    for model in models.values():  # warm-up
        _prefill(model, ids[:, :16])
    for _ in range(repeats):
        for name, model in models.items():
            samples[name]["prefill"].append(_prefill(model, ids))
            samples[name]["decode"].append(_decode(model, ids[:, :16], new_tokens))
    return {
        name: {f"{kind}_tokens_per_s": statistics.median(values) for kind, values in s.items()}
        for name, s in samples.items()
    }
