"""Scale benchmark: resize a Llama-3.1-8B-shaped model (random bf16 weights, ~16 GB on disk) by 25% of body
parameters through the layer-sequential from-disk pipeline, and check the output loads and generates.

    python benchmarks/scale_llama8b.py --work /path/with/40GB/free [--method wanda_sp]

Steps, each in its own process so peak RSS is measured per step (ru_maxrss of the child):
1. write the random checkpoint (one tensor at a time; SmolLM2's tokenizer, whose ids fit the vocabulary);
2. ``hf_resize.streaming.resize_from_disk`` with 8 x 128 calibration tokens of the Austen novels;
3. load the output (bf16) and generate a few tokens.
Writes benchmarks/results/scale_llama8b.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

LLAMA_8B = dict(
    vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
    num_key_value_heads=8, max_position_embeddings=8192, rope_theta=500000.0, rms_norm_eps=1e-5,
    tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
)


def write_checkpoint(folder: Path) -> None:
    import torch
    from accelerate import init_empty_weights
    from safetensors.torch import save_file
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from hf_resize.data.models import resolve_builtin

    config = LlamaConfig(**LLAMA_8B, dtype="bfloat16")
    with init_empty_weights():
        skeleton = LlamaForCausalLM(config)
    folder.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(0)
    weight_map, total, shard, shard_tensors, shard_bytes = {}, 0, 0, {}, 0

    def flush() -> None:
        nonlocal shard, shard_tensors, shard_bytes
        if shard_tensors:
            shard += 1
            name = f"model-{shard:05d}.safetensors"
            save_file(shard_tensors, str(folder / name), metadata={"format": "pt"})
            weight_map.update({k: name for k in shard_tensors})
            shard_tensors, shard_bytes = {}, 0

    for name, param in skeleton.named_parameters():
        if "norm" in name:
            value = torch.ones(param.shape, dtype=torch.bfloat16)
        else:
            value = (torch.randn(param.shape, generator=gen) * 0.02).to(torch.bfloat16)
        shard_tensors[name] = value
        shard_bytes += value.numel() * 2
        total += value.numel() * 2
        if shard_bytes > 2 * 2**30:
            flush()
    flush()
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    config.save_pretrained(folder)
    AutoTokenizer.from_pretrained(resolve_builtin("smollm2-135m")).save_pretrained(folder)


def resize(source: Path, out: Path, method: str) -> None:
    import hf_resize
    from hf_resize.methods import get_method
    from hf_resize.streaming import resize_from_disk

    options = {"compensate": "none"} if method in ("wanda_sp", "flap") else {}
    config = get_method(method).config_class(ratio=0.25, groups=("mlp",), target="body", **options)
    resize_from_disk(source, config, out, calibration="austen", num_samples=8, seq_len=128, overwrite=True)
    print(json.dumps(json.loads((out / "hf_resize.json").read_text())))
    del hf_resize


def generate(out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(out, dtype="auto").eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    ids = tokenizer("It is a truth universally acknowledged", return_tensors="pt").input_ids
    started = time.perf_counter()
    with torch.no_grad():
        new = model.generate(ids, max_new_tokens=4, min_new_tokens=4, do_sample=False)
    print(json.dumps({"dtype": str(model.dtype), "intermediate_size": model.config.intermediate_size,
                      "generated_tokens": int(new.shape[1] - ids.shape[1]),
                      "generate_seconds": round(time.perf_counter() - started, 1),
                      "parameters": sum(p.numel() for p in model.parameters())}))


def _step(args: list[str]) -> dict:
    started = time.perf_counter()
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    values = {k: v for line in lines for k, v in json.loads(line).items()}
    return {"seconds": round(time.perf_counter() - started, 1), **values}


def _report_peak() -> None:
    """The step's own peak resident memory (ru_maxrss of this process, KiB on Linux)."""
    print(json.dumps({"peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--method", default="wanda_sp")
    parser.add_argument("--step", choices=["write", "resize", "generate"], help=argparse.SUPPRESS)
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    source, out = args.work / "llama8b-random", args.work / "llama8b-resized"
    if args.step:
        {"write": lambda: write_checkpoint(source), "resize": lambda: resize(source, out, args.method),
         "generate": lambda: generate(out)}[args.step]()
        return _report_peak()
    steps = {}
    if not (source / "model.safetensors.index.json").exists():
        steps["write"] = _step(["--work", str(args.work), "--step", "write"])
    steps["resize"] = _step(["--work", str(args.work), "--method", args.method, "--step", "resize"])
    steps["generate"] = _step(["--work", str(args.work), "--step", "generate"])
    size = lambda folder: sum(p.stat().st_size for p in folder.glob("*.safetensors"))  # noqa: E731
    result = {"model": "Llama-3.1-8B-shaped, random bf16", "method": args.method, "steps": steps,
              "source_bytes": size(source), "output_bytes": size(out),
              "command": " ".join(["python", "benchmarks/scale_llama8b.py", *sys.argv[1:]]),
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                          "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)},
              "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "scale_llama8b.json").write_text(json.dumps(result, indent=2))
    r = steps["resize"]
    lines = ["# Scale: Llama-3.1-8B-shaped model resized from disk", "",
             f"Random bf16 weights, {result['source_bytes'] / 1e9:.1f} GB on disk -> {result['output_bytes'] / 1e9:.1f} GB; "
             f"method {args.method} (no refit), MLP, 25% of body parameters, 8 x 128 calibration tokens, "
             "layer-sequential from disk (`hf_resize.streaming.resize_from_disk`).", "",
             "| step | wall time (s) | peak RSS (GiB) |", "|---|---|---|"]
    for name, step in steps.items():
        lines.append(f"| {name} | {step['seconds']} | {step['peak_rss_gib']} |")
    lines += ["", f"Body parameters: {r.get('parameters_before', {}).get('body', 0):,} -> "
              f"{r.get('parameters_after', {}).get('body', 0):,}; generated {steps['generate'].get('generated_tokens')} "
              f"tokens from the output in {steps['generate'].get('generate_seconds')} s.", "",
              f"Command: `{result['command']}`", "", f"Machine: {result['machine']}, {result['date']}", ""]
    (args.results / "scale_llama8b.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
