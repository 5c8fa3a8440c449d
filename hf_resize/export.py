"""The only writer of output folders: save into a temporary sibling, then move into place when complete."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from hf_resize.validation import check_logits_finite, check_output_dir

SUMMARY_FILE = "hf_resize.json"


def save_resized(
    model: PreTrainedModel,
    out_dir: str | os.PathLike,
    tokenizer: PreTrainedTokenizerBase | None = None,
    overwrite: bool = False,
    summary: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` (safetensors), its tokenizer and a summary to ``out_dir`` atomically.

    Uniform widths keep the stock config; per-layer widths write an ``hf_resize`` config plus the remote code
    that loads it. A failure leaves no partial ``out_dir``.
    """
    out = check_output_dir(out_dir, overwrite)
    check_logits_finite(model)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.resolve().parent))
    try:
        model.save_pretrained(staging, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(staging)
        if summary is not None:
            (staging / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, sort_keys=True, default=str))
        _move_into_place(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def _move_into_place(staging: Path, out: Path) -> None:
    """Swap the finished folder in; an old folder (overwrite) is removed only after the new one is in place."""
    if out.exists():
        trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.resolve().parent))
        os.replace(out, trash / out.name)
        os.replace(staging, out)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(staging, out)
