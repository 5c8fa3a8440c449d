"""Run a benchmark config: every (method, ratio) on one model, against the dense model, side by side.

    python -m benchmarks.run benchmarks/configs/smollm2_mlp.yaml [--windows N] [--out benchmarks/results]

Writes <name>.json (numbers, exact command, versions, machine), <name>.md (table) and <name>_*.png (plots).
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import torch
import yaml

import hf_resize
from hf_resize.calibration import collect_statistics
from hf_resize.data.austen import evaluation_text
from hf_resize.data.calibration import sample_calibration
from hf_resize.data.models import load_model
from hf_resize.evaluation import measure_speed, perplexity
from hf_resize.evaluation.harness import evaluate
from hf_resize.methods import get_method


def _environment() -> dict[str, Any]:
    packages = ("hf_resize", "torch", "transformers", "accelerate", "pot")
    return {
        "command": " ".join([Path(sys.executable).name, "-m", "benchmarks.run", *sys.argv[1:]]),
        "python": platform.python_version(),
        "packages": {p: version(p) for p in packages},
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "torch_threads": torch.get_num_threads()},
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def _label(run: dict) -> str:
    return run.get("label", run["method"])


def run_benchmark(config: dict, windows: int | None = None) -> dict[str, Any]:
    dense, tokenizer = load_model(config["model"])
    text = evaluation_text()
    cal = config["calibration"]
    tokens = sample_calibration(cal["source"], tokenizer, cal["num_samples"], cal["seq_len"], seed=0)
    needs = frozenset().union(*(get_method(r["method"]).config_class.needs for r in config["runs"]))
    # Every run starts from the same dense model and data, so one calibration pass serves them all.
    statistics = collect_statistics(dense, tokens, needs, cache=True) if needs else {}
    windows = windows if windows is not None else config["evaluation"].get("windows")
    dense_counts = hf_resize.parameter_counts(dense)
    rows = [{"label": "dense", "method": "dense", "ratio": 0.0, "parameters": dense_counts.as_dict(),
             "perplexity": perplexity(dense, tokenizer, text, max_windows=windows)}]
    task_cfg = config.get("tasks")

    def score_tasks(model) -> dict[str, Any]:
        scores = evaluate(model, task_cfg["names"], tokenizer=tokenizer, limit=task_cfg.get("limit"),
                          bootstrap_iters=0)
        return {task: metrics for task, metrics in scores.items() if task != "raw"}

    if task_cfg:
        rows[0]["tasks"] = score_tasks(dense)
    models = {"dense": dense}
    for run in config["runs"]:
        spec = get_method(run["method"])
        for ratio in run["ratios"]:
            values = {"ratio": ratio, "groups": tuple(run["groups"]), "target": run.get("target", "width"),
                      **run.get("options", {})}
            method_config = spec.config_class.from_dict(values)
            model = copy.deepcopy(dense)
            started = time.perf_counter()
            hf_resize.resize(model, method_config, calibration=tokens, statistics=statistics)
            seconds = time.perf_counter() - started
            counts = hf_resize.parameter_counts(model)
            name = f"{_label(run)} @ {ratio:g}"
            rows.append({
                "label": _label(run), "method": run["method"], "ratio": ratio, "config": method_config.to_dict(),
                "parameters": counts.as_dict(), "body_removed": 1 - counts.body / dense_counts.body,
                "resize_seconds": seconds, "perplexity": perplexity(model, tokenizer, text, max_windows=windows),
            })
            schedule = getattr(model, "hf_resize_info", {}).get("schedule")
            if schedule:  # interleaved runs: KFAC spectral-radius estimates and LoRA losses per step
                rows[-1]["schedule"] = schedule
            if task_cfg and run.get("tasks", True):
                rows[-1]["tasks"] = score_tasks(model)
            if config.get("speed"):
                models[name] = model  # kept for the side-by-side speed run
            print(f"{name}: perplexity {rows[-1]['perplexity']:.2f}, body removed {rows[-1]['body_removed']:.1%}, "
                  f"{seconds:.1f} s", flush=True)
    speed_cfg = config.get("speed")
    if speed_cfg:
        speed = measure_speed(models, **speed_cfg)
        for row, name in zip(rows, models, strict=True):
            row.update(speed[name])
            # Prefill: every prompt token runs the body; the LM head scores only the last position and the
            # embedding is a lookup, so linear FLOPs per prompt token are 2 x body parameters.
            row["flops_per_token"] = 2 * row["parameters"]["body"]
    scope = "all of Persuasion" if windows is None else f"first {windows} x 1024-token windows of Persuasion"
    return {"name": config["name"], "model": config["model"], "evaluation": scope, "calibration": cal,
            "config": config, "environment": _environment(), "rows": rows}


TASK_COLUMNS = (  # (task, metric, header) shown when a run scored the offline lm-eval tasks
    ("austen_persuasion_ppl", "word_perplexity", "chapter word ppl"),
    ("austen_persuasion_lastword", "acc", "last-word acc"),
    ("austen_persuasion_nextsent", "acc_norm", "next-sentence acc_norm"),
)


def _cell(row: dict, task: str, metric: str) -> str:
    value = row.get("tasks", {}).get(task, {}).get(metric)
    return "-" if value is None else f"{value:.3f}" if metric.startswith("acc") else f"{value:.2f}"


def write_markdown(result: dict, path: Path) -> None:
    dense = result["rows"][0]
    speed = "prefill_tokens_per_s" in dense
    tasks = any("tasks" in row for row in result["rows"])
    header = ["method", "target ratio", "body params", "body removed", "perplexity"]
    if tasks:
        header += [h for _, _, h in TASK_COLUMNS]
    if speed:
        header += ["prefill tok/s", "speedup", "FLOP ratio", "decode tok/s"]
    lines = [
        f"# {result['name']}: {result['model']}",
        "",
        f"Perplexity on {result['evaluation']} (float32); calibration {result['calibration']['num_samples']} x "
        f"{result['calibration']['seq_len']} tokens of {result['calibration']['source']} (never Persuasion).",
    ]
    if tasks:
        limit = (result["config"].get("tasks") or {}).get("limit")
        lines.append(f"Offline lm-eval tasks built from Persuasion (`austen` group), at most {limit} documents each; "
                     "'-' = not scored for that row.")
    if speed:
        lines.append("Speed: prefill/decode tokens/s, median of interleaved repeats in one process; the FLOP ratio "
                     "counts 2 x body parameters per prompt token (prefill scores only the last position; attention score FLOPs "
                     "excluded).")
    lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in result["rows"]:
        cells = [row["label"], f"{row['ratio']:g}", f"{row['parameters']['body']:,}", f"{row.get('body_removed', 0):.1%}",
                 f"{row['perplexity']:.2f}"]
        if tasks:
            cells += [_cell(row, task, metric) for task, metric, _ in TASK_COLUMNS]
        if speed:
            prefill = row.get("prefill_tokens_per_s", 0)
            cells += [f"{prefill:.1f}", f"{prefill / dense['prefill_tokens_per_s']:.2f}x",
                      f"{dense['flops_per_token'] / row['flops_per_token']:.2f}x", f"{row.get('decode_tokens_per_s', 0):.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    env = result["environment"]
    lines += ["", f"Command: `{env['command']}`", "", f"Environment: {json.dumps(env['packages'])}, {env['machine']}, {env['date']}", ""]
    path.write_text("\n".join(lines))


def write_plots(result: dict, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for key, ylabel, log in (("perplexity", "perplexity on Persuasion (log)", True),
                             ("prefill_tokens_per_s", "prefill tokens/s", False)):
        if not all(key in r for r in result["rows"]):
            continue
        fig, ax = plt.subplots(figsize=(6, 4))
        by_label: dict[str, list[dict]] = {}
        for row in result["rows"]:
            by_label.setdefault(row["label"], []).append(row)
        for label, rows in by_label.items():
            xs = [r["parameters"]["body"] / 1e6 for r in rows]
            ax.plot(xs, [r[key] for r in rows], marker="o", label=label)
        ax.set_xlabel("body parameters (millions)")
        ax.set_ylabel(ylabel)
        if log:
            ax.set_yscale("log")
        ax.set_title(f"{result['model']}: {key.replace('_', ' ')} vs body parameters")
        ax.grid(alpha=0.3)
        ax.legend()
        path = out / f"{result['name']}_{key}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", type=Path)
    parser.add_argument("--windows", type=int, default=None, help="score only the first N windows (default: config)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    config = yaml.safe_load(args.config.read_text())
    result = run_benchmark(config, args.windows)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{result['name']}.json").write_text(json.dumps(result, indent=2, default=str))
    write_markdown(result, args.out / f"{result['name']}.md")
    write_plots(result, args.out)
    print((args.out / f"{result['name']}.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
