"""Model cards and Hub publishing for resized models."""

from hf_resize.publish.card import (
    DEFAULT_BASE_MODEL_RELATION,
    HUB_BASE_MODEL_RELATIONS,
    build_model_card,
    template_path,
    validate_card_metadata,
)
from hf_resize.publish.push import PushError, PushResult, push_folder, push_model, upload_plan

__all__ = [
    "DEFAULT_BASE_MODEL_RELATION",
    "HUB_BASE_MODEL_RELATIONS",
    "PushError",
    "PushResult",
    "build_model_card",
    "push_folder",
    "push_model",
    "template_path",
    "upload_plan",
    "validate_card_metadata",
]
