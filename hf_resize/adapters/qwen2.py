"""Qwen2: Llama layout with biases on q/k/v (they follow their rows)."""

from hf_resize.adapters.base import FamilyAdapter
from hf_resize.adapters.registry import register_adapter

QWEN2 = register_adapter(FamilyAdapter(model_types=("qwen2",)))
