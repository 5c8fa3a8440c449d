"""A model family described as data: where its parts live and which quirks it has.

Adapters hold names, never forward code. Surgery, calibration and methods read them to find the
producers and consumers of every width.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FamilyAdapter:
    """Module paths and quirks of one decoder-only family.

    Paths are relative: ``layers``/``embed``/``final_norm``/``lm_head`` to the ``*ForCausalLM`` model,
    attention and MLP names to one decoder layer, projection names to the attention or MLP module.
    """

    model_types: tuple[str, ...]
    layers: str = "model.layers"
    embed: str = "model.embed_tokens"
    final_norm: str = "model.norm"
    lm_head: str = "lm_head"
    attn: str = "self_attn"
    mlp: str = "mlp"
    # Separate projections, or a fused one (phi3): fused qkv rows are [q | k | v], fused gate_up rows [gate | up].
    q_proj: str | None = "q_proj"
    k_proj: str | None = "k_proj"
    v_proj: str | None = "v_proj"
    qkv_proj: str | None = None
    o_proj: str = "o_proj"
    gate_proj: str | None = "gate_proj"
    up_proj: str | None = "up_proj"
    gate_up_proj: str | None = None
    down_proj: str = "down_proj"
    # Norm read before attention / before the MLP (their weights scale the readers' inputs).
    attn_norm: str = "input_layernorm"
    mlp_norm: str = "post_attention_layernorm"
    # Norms applied to a sublayer's output before it joins the residual stream (Gemma's sandwich norms).
    writer_norms: tuple[str, ...] = ()
    # Per-head norms on q and k (qwen3, gemma3): they act on head_dim, so head removal leaves them alone.
    qk_norms: tuple[str, ...] = ()
    # Gemma stores RMSNorm weights as w with the scale applied as (offset + w).
    norm_offset: float = 0.0
    # Gemma multiplies embeddings by sqrt(hidden_size); a new hidden width changes that factor.
    embed_scale_sqrt_hidden: bool = False
    # The stock config refuses a hidden size that is not a multiple of the head count (llama, gemma3).
    hidden_divisible_by_heads: bool = False
    # Tokenizer must put BOS first (Gemma) for sensible outputs.
    requires_bos: bool = False
    # Config keys holding each width.
    hidden_key: str = "hidden_size"
    intermediate_key: str = "intermediate_size"
    heads_key: str = "num_attention_heads"
    kv_heads_key: str = "num_key_value_heads"
    head_dim_key: str = "head_dim"

    @property
    def fused_qkv(self) -> bool:
        return self.qkv_proj is not None

    @property
    def fused_gate_up(self) -> bool:
        return self.gate_up_proj is not None

    @property
    def norms_per_layer(self) -> tuple[str, ...]:
        return (self.attn_norm, self.mlp_norm, *self.writer_norms)
