"""The only writer of output folders: save into a temporary sibling, then move into place when complete."""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import threading
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
    _remove_stale(Path(out_dir))  # first: a restored previous folder is then refused without overwrite
    out = check_output_dir(out_dir, overwrite)
    check_logits_finite(model)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-{os.getpid()}-", dir=out.resolve().parent))
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


class StreamedExport:
    """Write a model folder shard by shard (models larger than memory), then move it into place atomically.

    ``add_shard`` writes one safetensors file per call; ``finish`` writes the weight index, config, generation
    config, tokenizer and summary and swaps the folder in; ``abort`` (or an exception inside ``with``) removes
    the staging folder, so a failure never leaves a partial output.
    """

    def __init__(self, out_dir: str | os.PathLike, overwrite: bool = False) -> None:
        _remove_stale(Path(out_dir))
        self.out = check_output_dir(out_dir, overwrite)
        self.staging = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.partial-{os.getpid()}-", dir=self.out.resolve().parent))
        self.weight_map: dict[str, str] = {}
        self.total_bytes = 0

    def add_shard(self, tensors: dict[str, Any]) -> None:
        from safetensors.torch import save_file

        name = f"model-{len(set(self.weight_map.values())) + 1:05d}.safetensors"
        tensors = {key: value.detach().contiguous() for key, value in tensors.items()}
        save_file(tensors, str(self.staging / name), metadata={"format": "pt"})
        for key, value in tensors.items():
            self.weight_map[key] = name
            self.total_bytes += value.numel() * value.element_size()

    def finish(self, config: Any, tokenizer: PreTrainedTokenizerBase | None = None, generation_config: Any = None,
               summary: dict[str, Any] | None = None) -> Path:
        index = {"metadata": {"total_size": self.total_bytes}, "weight_map": dict(sorted(self.weight_map.items()))}
        (self.staging / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
        config.save_pretrained(self.staging)
        if generation_config is not None:
            generation_config.save_pretrained(self.staging)
        if tokenizer is not None:
            tokenizer.save_pretrained(self.staging)
        if summary is not None:
            (self.staging / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, sort_keys=True, default=str))
        _move_into_place(self.staging, self.out)
        return self.out

    def abort(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)

    def __enter__(self) -> StreamedExport:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is not None:
            self.abort()


def _move_into_place(staging: Path, out: Path) -> None:
    """Swap the finished folder in; an old folder (overwrite) is removed only after the new one is in place."""
    if not out.exists():
        os.replace(staging, out)
        return
    trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-{os.getpid()}-", dir=out.resolve().parent))
    # Ctrl-C between the two renames would leave no OUT at all: hold SIGINT until both are done.
    hold = hasattr(signal, "pthread_sigmask") and threading.current_thread() is threading.main_thread()
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}) if hold else None
    try:
        os.replace(out, trash / out.name)
        os.replace(staging, out)
    finally:
        if hold:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    shutil.rmtree(trash, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def _remove_stale(out: Path) -> None:
    """Clean up after a save that was killed (SIGKILL, power loss) before it could clean up itself.

    Staging (``.NAME.partial-PID-*``) and trash (``.NAME.old-PID-*``) folders whose process is gone are removed;
    a trash folder that still holds the previous output while ``out`` is missing (killed between the two renames
    of an overwrite) is moved back first, so the old, complete folder is restored rather than lost.
    """
    parent = out.resolve().parent
    for kind in ("partial", "old"):
        for folder in parent.glob(f".{out.name}.{kind}-*"):
            pid = folder.name[len(f".{out.name}.{kind}-") :].split("-", 1)[0]
            if not pid.isdigit() or _pid_alive(int(pid)) or not folder.is_dir():
                continue
            previous = folder / out.name
            if kind == "old" and previous.is_dir() and not out.exists():
                os.replace(previous, out)
            shutil.rmtree(folder, ignore_errors=True)
