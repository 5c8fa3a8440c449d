"""Mistral: Llama layout; sliding-window attention needs no width changes."""

from hf_resize.adapters.base import FamilyAdapter
from hf_resize.adapters.registry import register_adapter

MISTRAL = register_adapter(FamilyAdapter(model_types=("mistral",)))
