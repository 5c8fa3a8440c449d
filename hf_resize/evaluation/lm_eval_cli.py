"""``hf-resize-lm-eval`` / ``python -m hf_resize.evaluation.lm_eval_cli``: the ``lm_eval`` command with the
``hf-resize`` model type registered and the offline Austen tasks on the include path.

lm-eval 0.4.x discovers model types only from its own table, so a plugin's type must be registered in the same
process before its CLI runs. Arguments are lm_eval's own, e.g.::

    hf-resize-lm-eval --model hf-resize --model_args pretrained=smollm2-135m,method=magnitude,ratio=0.25 \\
        --tasks austen --batch_size 1

When ``--include_path`` is not given, the folder of the generated Austen tasks is added.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from lm_eval.__main__ import cli_evaluate

    import hf_resize.evaluation.lm_eval_model  # noqa: F401  (registers the hf-resize model type)
    from hf_resize.evaluation.tasks import task_dir

    has_tasks = any(a in ("--tasks", "-t") or a.startswith("--tasks=") for a in args)
    has_include = any(a == "--include_path" or a.startswith("--include_path=") for a in args)
    if has_tasks and not has_include:
        args += ["--include_path", str(task_dir())]
    sys.argv = ["lm_eval", *args]
    cli_evaluate()


if __name__ == "__main__":
    main()
