"""Compare method settings on held-out *calibration* text (never the evaluation book), to choose defaults.

Validation windows are drawn from the five calibration novels with a different seed than the calibration
sample (windows may overlap it; every setting sees the same data). Prints one JSON line per setting.

    python benchmarks/validate.py --ratio 0.2 '{"method": "wanda_sp"}' '{"method": "dotresize", "epsilon": 0.01}'
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time

import torch

import hf_resize
from hf_resize.calibration.collectors import collect_statistics
from hf_resize.data.calibration import sample_calibration
from hf_resize.data.models import load_model
from hf_resize.methods import get_method


def mean_loss(model, rows: torch.Tensor) -> float:
    total, count = 0.0, 0
    with torch.no_grad():
        for row in rows:
            out = model(input_ids=row[None], labels=row[None], use_cache=False)
            total += float(out.loss) * (row.numel() - 1)
            count += row.numel() - 1
    return total / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("settings", nargs="+", help="JSON objects: method plus its options")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--ratio", type=float, default=0.2)
    parser.add_argument("--groups", default="mlp")
    parser.add_argument("--windows", type=int, default=8)
    args = parser.parse_args()
    dense, tokenizer = load_model(args.model)
    tokens = sample_calibration("austen", tokenizer, 128, 512, seed=0)
    held_out = sample_calibration("austen", tokenizer, args.windows, 1024, seed=1)
    settings = [json.loads(s) for s in args.settings]
    needs = frozenset().union(*(get_method(s["method"]).config_class.needs for s in settings))
    statistics = collect_statistics(dense, tokens, needs, cache=True)
    print(json.dumps({"setting": "dense", "val_ppl": math.exp(mean_loss(dense, held_out))}), flush=True)
    for setting in settings:
        options = {k: v for k, v in setting.items() if k != "method"}
        config = get_method(setting["method"]).config_class.from_dict(
            {"ratio": args.ratio, "groups": args.groups, "target": "body", **options}
        )
        model = copy.deepcopy(dense)
        started = time.perf_counter()
        hf_resize.resize(model, config, calibration=tokens, statistics=statistics)
        seconds = time.perf_counter() - started
        body = hf_resize.parameter_counts(model).body
        print(json.dumps({"setting": setting, "val_ppl": math.exp(mean_loss(model, held_out)), "body": body,
                          "plan_seconds": round(seconds, 1)}), flush=True)


if __name__ == "__main__":
    main()
