"""Quality and speed measurements of dense and resized models."""

from hf_resize.evaluation.harness import evaluate
from hf_resize.evaluation.perplexity import perplexity
from hf_resize.evaluation.speed import measure_speed
from hf_resize.evaluation.tasks import task_dir


def register_lm_eval_model() -> None:
    """Register lm-eval's ``hf-resize`` model type lazily (the class is imported on first use)."""
    try:
        import lm_eval.models  # noqa: F401  (lm-eval fills its own table only while its registry is empty)
        from lm_eval.api.registry import model_registry
    except ImportError:  # lm-eval not installed: nothing to register
        return
    if "hf-resize" not in model_registry:
        model_registry.register("hf-resize", target="hf_resize.evaluation.lm_eval_model:HFResizeLM")


register_lm_eval_model()

__all__ = ["evaluate", "measure_speed", "perplexity", "register_lm_eval_model", "task_dir"]
