"""The main job on the built-in default: resize SmolLM2, compare quality, size and speed, write the model."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import torch

from hf_resize.data.austen import evaluation_text
from hf_resize.data.models import DEFAULT_MODEL, load_model
from hf_resize.evaluation import measure_speed, perplexity
from hf_resize.export import save_resized
from hf_resize.methods import get_method
from hf_resize.params import parameter_counts
from hf_resize.resize import resize
from hf_resize.validation import check_output_dir


def run_demo(
    model_name: str = DEFAULT_MODEL,
    method: str = "turbo_vbi",
    ratio: float = 0.2,
    out: str | Path = "demo-out",
    overwrite: bool = False,
    eval_windows: int | None = 24,
    num_samples: int = 128,
    seq_len: int = 512,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Resize ``model_name`` by ``ratio`` of its body parameters (MLP neurons), measure and save.

    Returns the measured numbers; prints them as it goes.
    """
    spec = get_method(method)
    config = spec.config_class.from_dict({"ratio": ratio, "groups": ("mlp",), "target": "body", **(options or {})})
    out = check_output_dir(out, overwrite)  # fail before the long work, not after
    model, tokenizer = load_model(model_name)
    dense = copy.deepcopy(model)
    text = evaluation_text()
    started = time.perf_counter()
    resize(model, config, calibration="austen", tokenizer=tokenizer, num_samples=num_samples, seq_len=seq_len)
    seconds = time.perf_counter() - started
    results: dict[str, Any] = {"model": model_name, "method": method, "config": config.to_dict(), "resize_seconds": seconds}
    print(f"Resized {model_name} with {method} in {seconds:.1f} s")
    for name, m in (("dense", dense), ("resized", model)):
        counts = parameter_counts(m)
        ppl = perplexity(m, tokenizer, text, max_windows=eval_windows)
        results[name] = {"parameters": counts.as_dict(), "perplexity": ppl}
    speed = measure_speed({"dense": dense, "resized": model}, repeats=3)
    for name in ("dense", "resized"):
        results[name].update(speed[name])
    scope = "all of Persuasion" if eval_windows is None else f"the first {eval_windows} x 1024 tokens of Persuasion"
    print(f"\n{'':10}{'total params':>14}{'body params':>14}{'perplexity':>12}{'prefill tok/s':>15}{'decode tok/s':>14}")
    for name in ("dense", "resized"):
        r = results[name]
        print(
            f"{name:10}{r['parameters']['total']:>14,}{r['parameters']['body']:>14,}{r['perplexity']:>12.2f}"
            f"{r['prefill_tokens_per_s']:>15.1f}{r['decode_tokens_per_s']:>14.1f}"
        )
    body = 1 - results["resized"]["parameters"]["body"] / results["dense"]["parameters"]["body"]
    print(f"\nBody parameters removed: {body:.1%}; perplexity measured on {scope}, float32, torch threads {torch.get_num_threads()}.")
    save_resized(model, out, tokenizer=tokenizer, overwrite=overwrite, summary={**model.hf_resize_info, "demo": results})
    print(f"Saved to {out}/ — load it with AutoModelForCausalLM.from_pretrained({str(out)!r})")
    return results
