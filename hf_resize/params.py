"""Exact parameter counts: total, embedding (input embedding plus an untied lm_head) and body (the rest)."""

from __future__ import annotations

from dataclasses import dataclass

from transformers import PreTrainedModel

from hf_resize.adapters import get_adapter


@dataclass(frozen=True)
class ParameterCounts:
    total: int
    embedding: int
    body: int

    def as_dict(self) -> dict[str, int]:
        return {"total": self.total, "embedding": self.embedding, "body": self.body}


def parameter_counts(model: PreTrainedModel) -> ParameterCounts:
    """Count each distinct tensor once (tied embeddings count once)."""
    adapter = get_adapter(model)
    seen: set[int] = set()
    total = 0
    for param in model.parameters():
        if id(param) not in seen:
            seen.add(id(param))
            total += param.numel()
    embed = model.get_submodule(adapter.embed).weight
    lm_head = model.get_submodule(adapter.lm_head).weight
    embedding = embed.numel() + (0 if lm_head is embed else lm_head.numel())
    return ParameterCounts(total=total, embedding=embedding, body=total - embedding)
