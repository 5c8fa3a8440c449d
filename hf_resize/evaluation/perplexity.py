"""Perplexity over non-overlapping windows of an evaluation text, in float32."""

from __future__ import annotations

import math

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase


def _token_ids(text: str, tokenizer: PreTrainedTokenizerBase) -> tuple[torch.Tensor, int | None]:
    """The text's ids without special tokens, and the BOS id if the tokenizer puts one first."""
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids[0]
    probe = tokenizer("a").input_ids
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None and probe[:1] == [tokenizer.bos_token_id] else None
    return ids, bos


@torch.no_grad()
def perplexity(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    text: str,
    window: int = 1024,
    max_windows: int | None = None,
    progress: bool = True,
) -> float:
    """exp(mean next-token NLL) over non-overlapping ``window``-token windows of ``text``.

    Tokenizers that need BOS (Gemma) get it at the start of every window; it is not scored. A trailing window
    shorter than 2 tokens is dropped. Computed in float32 whatever the model's dtype.
    """
    ids, bos = _token_ids(text, tokenizer)
    step = window - (1 if bos is not None else 0)
    starts = list(range(0, max(len(ids) - 1, 0), step))
    if max_windows is not None:
        starts = starts[:max_windows]
    if not starts:
        raise ValueError("The evaluation text is empty after tokenisation.")
    device = model.device
    nll, count = 0.0, 0
    for start in tqdm(starts, desc="perplexity", unit="window", disable=not progress, leave=False):
        chunk = ids[start : start + step]
        if bos is not None:
            chunk = torch.cat([torch.tensor([bos]), chunk])
        if chunk.numel() < 2:
            continue
        batch = chunk.unsqueeze(0).to(device)
        logits = model(input_ids=batch).logits.float()
        loss = torch.nn.functional.cross_entropy(logits[0, :-1], batch[0, 1:], reduction="sum")
        nll += loss.item()
        count += batch.shape[1] - 1
    return math.exp(nll / count)
