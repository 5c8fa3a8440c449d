"""Wall time and peak memory of collecting each method's calibration statistics on one model.

Each method runs in a fresh subprocess (so peak RSS is its own), with the statistics cache disabled, on the
same calibration sample (default: SmolLM2-135M, 128 x 512 tokens of the Austen calibration novels).

    python benchmarks/calibration_cost.py [--model smollm2-135m] [--num-samples 128] [--seq-len 512]

Writes benchmarks/results/calibration_cost.{json,md}.
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


def _child(model_name: str, method: str, num_samples: int, seq_len: int, mode: str) -> None:
    from hf_resize.calibration import collect_statistics
    from hf_resize.data.calibration import sample_calibration
    from hf_resize.data.models import load_model
    from hf_resize.methods import get_method

    model, tokenizer = load_model(model_name)
    tokens = sample_calibration("austen", tokenizer, num_samples, seq_len, seed=0)
    needs = get_method(method).config_class().needs  # what a default-config run collects
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    collect_statistics(model, tokens, needs, mode=mode, cache=False, progress=False)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"method": method, "mode": mode, "needs": sorted(needs), "seconds": round(seconds, 1),
                      "peak_rss_gib": round(peak / 2**20, 2), "rss_after_load_gib": round(rss_before / 2**20, 2)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--num-samples", type=int, default=128)
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--methods", default="wanda_sp,flap,pca_slice,dotresize")
    parser.add_argument("--modes", default="whole,sequential")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--child", nargs=2, metavar=("METHOD", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.model, args.child[0], args.num_samples, args.seq_len, args.child[1])
        return
    rows = []
    for method in args.methods.split(","):
        for mode in args.modes.split(","):
            cmd = [sys.executable, __file__, "--model", args.model, "--num-samples", str(args.num_samples),
                   "--seq-len", str(args.seq_len), "--child", method, mode]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, env={**os.environ, "HF_RESIZE_NO_CACHE": "1"})
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
    result = {"model": args.model, "tokens": [args.num_samples, args.seq_len], "rows": rows,
              "command": " ".join(["python", "benchmarks/calibration_cost.py", *sys.argv[1:]]),
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
              "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "calibration_cost.json").write_text(json.dumps(result, indent=2))
    lines = [f"# Calibration cost: {args.model}, {args.num_samples} x {args.seq_len} tokens", "",
             "Statistics each method needs, collected with the cache off, one fresh process per row (peak RSS "
             "includes the float32 model).", "",
             "| method | statistics | pipeline | wall time (s) | peak RSS (GiB) | RSS after model load (GiB) |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['method']} | {', '.join(r['needs'])} | {r['mode']} | {r['seconds']} | {r['peak_rss_gib']} | "
                     f"{r['rss_after_load_gib']} |")
    lines += ["", f"Command: `{result['command']}`", "", f"Machine: {result['machine']}, {result['date']}", ""]
    (args.out / "calibration_cost.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
