"""Family adapters; importing this package registers every built-in family."""

from hf_resize.adapters import gemma3, llama, mistral, phi3, qwen2, qwen3  # noqa: F401  (registers)
from hf_resize.adapters.base import FamilyAdapter
from hf_resize.adapters.registry import get_adapter, register_adapter, supported_model_types

__all__ = ["FamilyAdapter", "get_adapter", "register_adapter", "supported_model_types"]
