"""Qwen3: Llama layout plus RMSNorm on each q and k head."""

from hf_resize.adapters.base import FamilyAdapter
from hf_resize.adapters.registry import register_adapter

QWEN3 = register_adapter(FamilyAdapter(model_types=("qwen3",), qk_norms=("q_norm", "k_norm")))
