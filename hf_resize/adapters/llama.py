"""Llama (and SmolLM2): the reference layout every other adapter is a variation of."""

from hf_resize.adapters.base import FamilyAdapter
from hf_resize.adapters.registry import register_adapter

LLAMA = register_adapter(FamilyAdapter(model_types=("llama",), hidden_divisible_by_heads=True))
