"""Phi-3: fused qkv_proj ([q | k | v] rows) and fused gate_up_proj ([gate | up] rows)."""

from hf_resize.adapters.base import FamilyAdapter
from hf_resize.adapters.registry import register_adapter

PHI3 = register_adapter(
    FamilyAdapter(
        model_types=("phi3",),
        q_proj=None,
        k_proj=None,
        v_proj=None,
        qkv_proj="qkv_proj",
        gate_proj=None,
        up_proj=None,
        gate_up_proj="gate_up_proj",
    )
)
