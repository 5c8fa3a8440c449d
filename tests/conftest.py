"""Tiny seeded random models of every supported family (no downloads) and shared helpers."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

import hf_resize  # noqa: F401  (registers families, methods and the per-layer model type)

COMMON = dict(
    vocab_size=97,
    hidden_size=48,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=6,
    num_key_value_heads=2,
    max_position_embeddings=128,
    pad_token_id=0,
    bos_token_id=1,
    eos_token_id=2,
)

FAMILIES: dict[str, dict] = {
    "llama": dict(tie_word_embeddings=True),
    "mistral": dict(sliding_window=32),
    "qwen2": dict(tie_word_embeddings=False),
    "qwen3": dict(head_dim=12, tie_word_embeddings=True),
    "gemma3_text": dict(head_dim=16, num_key_value_heads=1, num_attention_heads=4, query_pre_attn_scalar=16,
                        sliding_window=16, layer_types=["sliding_attention", "full_attention"]),
    "phi3": dict(tie_word_embeddings=False),
}


def tiny_model(family: str, seed: int = 0, **overrides):
    torch.manual_seed(seed)
    config = AutoConfig.for_model(family, **{**COMMON, **FAMILIES[family], **overrides})
    model = AutoModelForCausalLM.from_config(config).eval()
    # Random init leaves norms at their identity value; perturb them so folding/slicing bugs show.
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name:
                param.add_(0.1 * torch.randn_like(param))
    return model


@pytest.fixture(autouse=True, scope="session")
def _statistics_cache_in_tmp(tmp_path_factory):
    """Keep the tests' calibration statistics out of the user's cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_RESIZE_STATISTICS_CACHE", str(tmp_path_factory.mktemp("statistics")))
    yield
    mp.undo()


@pytest.fixture(params=sorted(FAMILIES))
def family(request) -> str:
    return request.param


@pytest.fixture
def input_ids() -> torch.Tensor:
    return torch.randint(3, COMMON["vocab_size"], (2, 12), generator=torch.Generator().manual_seed(1))


def logits(model, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids).logits
