"""Quality and speed measurements of dense and resized models."""

from hf_resize.evaluation.perplexity import perplexity
from hf_resize.evaluation.speed import measure_speed

__all__ = ["measure_speed", "perplexity"]
