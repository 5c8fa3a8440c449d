"""Recovery training after a resize: LoRA through peft, optionally with a flatness (spectral-radius) penalty."""

from hf_resize.recovery.flatness import SpectralRadius, spectral_radius
from hf_resize.recovery.lora import lora_recover

__all__ = ["SpectralRadius", "lora_recover", "spectral_radius"]
