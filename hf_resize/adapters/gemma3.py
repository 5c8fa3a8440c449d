"""Gemma 3 (text): sandwich norms, (1 + w) norm weights, sqrt(hidden) embedding scale, q/k norms, BOS."""

from hf_resize.adapters.base import FamilyAdapter
from hf_resize.adapters.registry import register_adapter

GEMMA3 = register_adapter(
    FamilyAdapter(
        model_types=("gemma3_text",),
        mlp_norm="pre_feedforward_layernorm",
        writer_norms=("post_attention_layernorm", "post_feedforward_layernorm"),
        qk_norms=("q_norm", "k_norm"),
        norm_offset=1.0,
        embed_scale_sqrt_hidden=True,
        requires_bos=True,
        hidden_divisible_by_heads=True,
    )
)
