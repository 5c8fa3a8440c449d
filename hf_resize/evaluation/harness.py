"""Score a model with lm-eval (``lm_eval.simple_evaluate``): the offline Austen tasks or any lm-eval task name."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hf_resize.errors import ConfigError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

DEFAULT_TASKS: tuple[str, ...] = ("austen",)


def _task_list(tasks: str | Sequence[str]) -> list[str]:
    items = [tasks] if isinstance(tasks, str) else list(tasks)
    names = [t.strip() for item in items for t in str(item).split(",") if t.strip()]
    if not names:
        raise ConfigError("No lm-eval tasks given; pass e.g. tasks=('austen',) or --tasks austen,hellaswag.")
    return names


def _compact(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """``{"acc,none": 0.5, "acc_stderr,none": 0.1, "alias": ...}`` -> ``{"acc": 0.5, "acc_stderr": 0.1}``."""
    compact: dict[str, dict[str, float]] = {}
    for task, metrics in results.items():
        row: dict[str, float] = {}
        for key, value in metrics.items():
            metric, _, filt = key.partition(",")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or metric in ("alias", "sample_len"):
                continue
            name = metric if filt in ("", "none") else f"{metric},{filt}"
            row[name] = float(value)
        if row:
            compact[task] = row
    return compact


def evaluate(
    model_or_dir: PreTrainedModel | str | Path | Any,
    tasks: str | Sequence[str] = DEFAULT_TASKS,
    tokenizer: PreTrainedTokenizerBase | None = None,
    limit: int | float | None = None,
    max_length: int = 1024,
    batch_size: int | str = 1,
    num_fewshot: int | None = None,
    bootstrap_iters: int = 1000,
    trust_remote_code: bool = False,
    log_samples: bool = False,
) -> dict[str, Any]:
    """Score a model with lm-eval and return ``{task: {metric: value}, ..., "raw": <simple_evaluate output>}``.

    Args:
        model_or_dir: an in-memory ``PreTrainedModel`` (needs ``tokenizer``), a folder written by
            ``save_pretrained``, a built-in name (``smollm2-135m``), a Hub id, or a ready ``lm_eval`` ``LM``.
        tasks: task or group names (list or comma-separated string). ``"austen"`` is the offline group of
            three tasks built from the held-out novel (see ``hf_resize.evaluation.tasks``); any lm-eval task
            name is passed through (built-in tasks need the Hugging Face Hub).
        tokenizer: tokenizer for an in-memory model; loaded from the folder otherwise.
        limit: at most this many documents per task (a float in (0, 1) is a fraction), for quick runs.
        max_length: context length lm-eval uses (always explicit: its 8192 default can exhaust memory).
        batch_size: lm-eval batch size (an int or ``"auto"``).
        bootstrap_iters: resamples for stderr of non-mean metrics (0 skips them).

    Metric names drop lm-eval's ``,none`` filter suffix; stderr entries are kept as ``<metric>_stderr``.
    """
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import lm_eval
    from lm_eval.api.model import LM
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager
    from transformers import PreTrainedModel

    from hf_resize.evaluation.tasks import GROUP, TAG, TASKS, task_dir

    if max_length < 2:
        raise ConfigError(f"max_length must be at least 2 tokens, got {max_length}.")
    names = _task_list(tasks)
    if isinstance(model_or_dir, LM):
        lm = model_or_dir
    else:
        if isinstance(model_or_dir, PreTrainedModel):
            model = model_or_dir
            if tokenizer is None:
                raise ConfigError(
                    "evaluate() needs the tokenizer of an in-memory model: "
                    "pass tokenizer=AutoTokenizer.from_pretrained(...)."
                )
        elif isinstance(model_or_dir, (str, Path)):
            from hf_resize.data.models import load_model

            model, loaded = load_model(str(model_or_dir), trust_remote_code=trust_remote_code)
            tokenizer = tokenizer if tokenizer is not None else loaded
            if tokenizer is None:
                raise ConfigError(
                    f"{model_or_dir} has no tokenizer files; pass tokenizer=AutoTokenizer.from_pretrained(...)."
                )
        else:
            raise ConfigError(
                f"evaluate() takes a PreTrainedModel, a model folder, a built-in or Hub name, or an lm_eval LM; "
                f"got {type(model_or_dir).__name__}."
            )
        model.eval()
        lm = HFLM(pretrained=model, tokenizer=tokenizer, max_length=max_length, batch_size=batch_size)
    # Indexing lm-eval's thousands of built-in task YAMLs takes tens of seconds: skip it when only ours are asked.
    ours = {GROUP, TAG, *TASKS}
    manager = TaskManager(include_path=str(task_dir()), include_defaults=not set(names) <= ours)
    raw = lm_eval.simple_evaluate(
        model=lm,
        tasks=names,
        num_fewshot=num_fewshot,
        limit=limit,
        task_manager=manager,
        bootstrap_iters=bootstrap_iters,
        log_samples=log_samples,
    )
    if raw is None:  # non-zero rank under a distributed launcher
        return {"raw": None}
    out: dict[str, Any] = dict(_compact(raw.get("results", {})))
    out["raw"] = raw
    return out


def format_scores(scores: dict[str, Any]) -> str:
    """A small fixed-width table of ``evaluate``'s output: task, metric, value (± stderr)."""
    rows = []
    for task, metrics in scores.items():
        if task == "raw":
            continue
        for metric, value in metrics.items():
            if metric.endswith("_stderr"):
                continue
            stderr = metrics.get(f"{metric}_stderr")
            rows.append((task, metric, f"{value:.4f}" + (f" ± {stderr:.4f}" if stderr is not None else "")))
    if not rows:
        return "(no scores)"
    widths = [max(len(r[i]) for r in [("task", "metric", "value"), *rows]) for i in range(3)]
    lines = [f"{'task':<{widths[0]}}  {'metric':<{widths[1]}}  value"]
    lines += [f"{t:<{widths[0]}}  {m:<{widths[1]}}  {v}" for t, m, v in rows]
    return "\n".join(lines)
