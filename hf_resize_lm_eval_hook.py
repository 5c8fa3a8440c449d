"""Startup hook run by ``hf_resize_lm_eval.pth``: inside the ``lm_eval`` command only, register hf_resize's
lm-eval model type ``hf-resize`` and put the offline Austen tasks on the include path.

lm-eval 0.4 discovers model types only from its own table (no plugin entry points), so ``lm_eval --model
hf-resize`` needs the type registered in the same process before its CLI parses the arguments; a ``.pth`` line
is the one place that runs there. Outside ``lm_eval`` this does nothing and imports nothing, so every other
Python process pays one ``basename`` call. The model class itself is imported lazily by lm-eval's registry
(a ``"module:Class"`` placeholder) only when ``--model hf-resize`` is used.
"""

from __future__ import annotations

import os
import sys

COMMANDS = ("lm_eval", "lm-eval")


def _has(args: list[str], *flags: str) -> bool:
    return any(a in flags or a.startswith(tuple(f"{f}=" for f in flags)) for a in args)


def activate() -> None:
    if not sys.argv or os.path.basename(sys.argv[0]) not in COMMANDS:
        return
    try:
        import lm_eval.models  # noqa: F401  (lm-eval fills its registry only when it is empty: fill it first)
        from lm_eval.api.registry import model_registry

        if "hf-resize" not in model_registry:
            model_registry.register("hf-resize", target="hf_resize.evaluation.lm_eval_model:HFResizeLM")
    except Exception:  # noqa: BLE001  (a broken hook must never break lm_eval itself)
        return
    args = sys.argv[1:]
    ours = "hf-resize" in args or "--model=hf-resize" in args
    if ours and _has(args, "--tasks", "-t") and not _has(args, "--include_path"):
        try:
            from hf_resize.evaluation.tasks import task_dir

            sys.argv += ["--include_path", str(task_dir())]
        except Exception:  # noqa: BLE001  (no Austen data: lm_eval then reports the unknown task itself)
            return
