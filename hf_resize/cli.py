"""The ``hf-resize`` command line: resize, eval, info, demo. User errors print one line, never a traceback."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from hf_resize.errors import HFResizeError

EXAMPLES = """examples:
  hf-resize demo                                    resize the built-in SmolLM2 and compare before/after
  hf-resize info smollm2-135m                       families, neuron groups, widths, parameter counts
  hf-resize resize smollm2-135m --method magnitude --ratio 0.2 --out small
  hf-resize resize smollm2-135m --method wanda_sp --ratio 0.2 --target body --calibration austen --out small
  hf-resize eval small                              perplexity on Persuasion (held out from calibration)
  hf-resize push small me/smollm2-small --dry-run staged   write the folder + model card that would be uploaded

MODEL is a built-in name (smollm2-135m, gemma3-270m), a local folder, or a Hub id (needs a network).
"""


def _parse_option(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--option expects key=value, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _ratio(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"ratio must be a number in [0, 1), got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hf-resize",
        description="Make a Hugging Face causal LM narrower (fewer MLP neurons, heads, hidden width).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    r = sub.add_parser("resize", help="resize a model and save it", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    r.add_argument("model", metavar="MODEL", help="built-in name, local folder or Hub id")
    r.add_argument("--method", default="magnitude", help="resizing method (see `hf-resize info --methods`)")
    r.add_argument("--ratio", type=_ratio, required=True, help="fraction to remove, in [0, 1)")
    r.add_argument("--groups", default="mlp", help="comma-separated widths to reduce: mlp, heads, hidden")
    r.add_argument("--target", default="width", choices=["width", "body"],
                   help="ratio of each group's width, or of body parameters (all but embeddings)")
    r.add_argument("--head-mode", default="query_per_group", choices=["query_per_group", "kv_groups"])
    r.add_argument("--calibration", default="austen", help="calibration text: 'austen', a .txt/.jsonl file or a Hub dataset")
    r.add_argument("--num-samples", type=int, default=128, help="calibration sequences")
    r.add_argument("--seq-len", type=int, default=512, help="tokens per calibration sequence")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--round-to", type=int, default=1, help="round MLP widths to a multiple of this (64: faster kernels)")
    r.add_argument("--option", action="append", type=_parse_option, default=[], metavar="KEY=VALUE",
                   help="extra method option, repeatable (e.g. --option compensate=none)")
    r.add_argument("--out", required=True, help="output folder (must not exist unless --overwrite)")
    r.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    r.add_argument("--trust-remote-code", action="store_true", help="allow the model's own code to run (off by default)")
    r.add_argument("--from-disk", action="store_true",
                   help="layer by layer from the safetensors checkpoint (models larger than memory; MLP/heads)")

    e = sub.add_parser("eval", help="perplexity of a model on the held-out evaluation text",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    e.add_argument("model", metavar="MODEL")
    e.add_argument("--max-windows", type=int, default=None, help="score only the first N windows (default: all)")
    e.add_argument("--window", type=int, default=1024, help="tokens per non-overlapping window")
    e.add_argument("--speed", action="store_true", help="also measure prefill/decode tokens/s")
    e.add_argument("--tasks", default=None,
                   help="also score lm-eval tasks, comma-separated: 'austen' (offline, Persuasion) or any lm-eval task")
    e.add_argument("--limit", type=float, default=None, help="lm-eval: at most N documents per task (<1: a fraction)")
    e.add_argument("--max-length", type=int, default=1024, help="lm-eval context length in tokens")
    e.add_argument("--trust-remote-code", action="store_true")

    i = sub.add_parser("info", help="family, neuron groups, widths and parameter counts of a model")
    i.add_argument("model", metavar="MODEL", nargs="?")
    i.add_argument("--methods", action="store_true", help="list the available methods")
    i.add_argument("--trust-remote-code", action="store_true")

    d = sub.add_parser("demo", help="resize the built-in SmolLM2 and show before/after quality, size and speed",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    d.add_argument("--model", default="smollm2-135m")
    d.add_argument("--method", default="turbo_vbi")
    d.add_argument("--ratio", type=_ratio, default=0.2, help="fraction of body parameters to remove (MLP neurons)")
    d.add_argument("--out", default="demo-out")
    d.add_argument("--overwrite", action="store_true")
    d.add_argument("--eval-windows", type=int, default=24, help="1024-token windows of Persuasion to score (0 = all)")
    d.add_argument("--num-samples", type=int, default=128)
    d.add_argument("--seq-len", type=int, default=512)

    p = sub.add_parser("push", help="upload a resized folder with a generated model card to the Hub (one commit)")
    p.add_argument("folder", metavar="DIR", help="folder written by `hf-resize resize ... --out DIR`")
    p.add_argument("repo", metavar="REPO", help="Hub repository id, e.g. me/smollm2-wanda20")
    p.add_argument("--dry-run", metavar="OUT", default=None, help="write exactly the folder that would be uploaded to OUT; upload nothing")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --dry-run folder")
    p.add_argument("--private", action="store_true", help="create the repository private")
    p.add_argument("--token", default=None, help="Hub token with write access (default: stored login or HF_TOKEN)")
    p.add_argument("--plot", default=None, metavar="PNG", help="embed this plot in the card")
    p.add_argument("--base-model", default=None, help="Hub id of the source model (default: from hf_resize.json)")
    p.add_argument("--license", default=None, help="license id (default: inherited from the base model)")
    p.add_argument("--message", default=None, help="commit message")
    return parser


def _cmd_resize(args: argparse.Namespace) -> None:
    from hf_resize.data.models import load_model
    from hf_resize.export import save_resized
    from hf_resize.methods import get_method
    from hf_resize.resize import resize
    from hf_resize.validation import check_output_dir

    spec = get_method(args.method)
    values = {"ratio": args.ratio, "groups": args.groups, "target": args.target, "head_mode": args.head_mode,
              "seed": args.seed, "round_to": args.round_to, **dict(args.option)}
    config = spec.config_class.from_dict(values)
    check_output_dir(args.out, args.overwrite)
    if args.from_disk:
        from hf_resize.data.models import BUILTIN_MODELS, resolve_builtin
        from hf_resize.streaming import resize_from_disk

        source = resolve_builtin(args.model) if args.model in BUILTIN_MODELS else args.model
        out = resize_from_disk(source, config, args.out, calibration=args.calibration,
                               num_samples=args.num_samples, seq_len=args.seq_len, overwrite=args.overwrite)
        print(f"{args.method}: written layer by layer to {out}")
        return
    model, tokenizer = load_model(args.model, trust_remote_code=args.trust_remote_code)
    resize(model, config, calibration=args.calibration, tokenizer=tokenizer, num_samples=args.num_samples, seq_len=args.seq_len)
    info = model.hf_resize_info
    summary = {**info, "source": args.model}
    if info.get("calibration_tokens"):  # for the model card: what the statistics were computed on
        from hf_resize.data.calibration import describe_source

        summary.update(calibration=describe_source(args.calibration), calibration_source=args.calibration)
    out = save_resized(model, args.out, tokenizer=tokenizer, overwrite=args.overwrite, summary=summary)
    before, after = info["parameters_before"], info["parameters_after"]
    print(f"{args.method}: body parameters {before['body']:,} -> {after['body']:,} "
          f"({1 - after['body'] / before['body']:.1%} removed), total {before['total']:,} -> {after['total']:,}")
    print(f"saved to {out}")


def _cmd_eval(args: argparse.Namespace) -> None:
    from hf_resize.data.austen import evaluation_text
    from hf_resize.data.models import load_model
    from hf_resize.evaluation import measure_speed, perplexity
    from hf_resize.params import parameter_counts

    model, tokenizer = load_model(args.model, trust_remote_code=args.trust_remote_code)
    ppl = perplexity(model, tokenizer, evaluation_text(), window=args.window, max_windows=args.max_windows)
    counts = parameter_counts(model)
    scope = "all windows" if args.max_windows is None else f"first {args.max_windows} windows"
    print(f"{args.model}: perplexity {ppl:.3f} on Persuasion ({scope} of {args.window} tokens); "
          f"parameters total {counts.total:,}, body {counts.body:,}")
    if args.speed:
        speed = measure_speed({"model": model})["model"]
        print(f"prefill {speed['prefill_tokens_per_s']:.1f} tokens/s, decode {speed['decode_tokens_per_s']:.1f} tokens/s")
    if args.tasks:
        from hf_resize.evaluation.harness import evaluate, format_scores

        limit = None if args.limit is None else (int(args.limit) if args.limit >= 1 else args.limit)
        scores = evaluate(model, tasks=args.tasks, tokenizer=tokenizer, limit=limit, max_length=args.max_length)
        print(format_scores(scores))


def _cmd_info(args: argparse.Namespace) -> None:
    from hf_resize.adapters import get_adapter, supported_model_types
    from hf_resize.methods import available_methods, get_method

    if args.methods or not args.model:
        print("methods:")
        for name in available_methods():
            print(f"  {name:12} {get_method(name).description}")
        print("families: " + ", ".join(supported_model_types()))
        if not args.model:
            return
    from hf_resize.data.models import load_model
    from hf_resize.groups import neuron_groups
    from hf_resize.params import parameter_counts

    model, _ = load_model(args.model, trust_remote_code=args.trust_remote_code)
    adapter = get_adapter(model)
    groups = neuron_groups(model)
    counts = parameter_counts(model)
    mlp = [g for g in groups if g.kind == "mlp"]
    heads = [g for g in groups if g.kind == "heads"]
    hidden = next(g for g in groups if g.kind == "hidden")
    print(f"model: {args.model}  family: {model.config.model_type} (adapter {adapter.model_types[0]})  layers: {model.config.num_hidden_layers}")
    print(f"MLP groups: {len(mlp)}, widths {_summary([g.width for g in mlp])}")
    print(f"head groups: {len(heads)}, heads {_summary([g.width for g in heads])} in KV groups "
          f"{_summary([g.kv_width for g in heads])}, head_dim {heads[0].unit_size}")
    print(f"hidden width: {hidden.width}")
    print(f"parameters: total {counts.total:,}, embedding {counts.embedding:,}, body {counts.body:,}")


def _summary(values: list[int]) -> str:
    return str(values[0]) if len(set(values)) == 1 else ", ".join(map(str, values))


def _cmd_demo(args: argparse.Namespace) -> None:
    from hf_resize.demo import run_demo

    run_demo(args.model, args.method, args.ratio, args.out, args.overwrite,
             None if args.eval_windows == 0 else args.eval_windows, args.num_samples, args.seq_len)


def _cmd_push(args: argparse.Namespace) -> None:
    from hf_resize.publish import push_folder

    options = {k: v for k, v in (("base_model", args.base_model), ("license", args.license)) if v is not None}
    result = push_folder(args.folder, args.repo, token=args.token, private=args.private, dry_run_dir=args.dry_run,
                         commit_message=args.message, plot=args.plot, overwrite=args.overwrite, **options)
    where = f"wrote {result.dry_run_dir} (nothing uploaded)" if result.dry_run_dir else f"uploaded to {result.repo_url}"
    print(f"{where}: {', '.join(result.files)}")
    if result.left_out:
        print(f"left out: {', '.join(result.left_out)}")
    if result.commit_url:
        print(f"commit: {result.commit_url}")


COMMANDS = {"resize": _cmd_resize, "eval": _cmd_eval, "info": _cmd_info, "demo": _cmd_demo, "push": _cmd_push}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 0
    try:
        COMMANDS[args.command](args)
    except HFResizeError as error:
        print(f"hf-resize: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("hf-resize: interrupted; no output was written.", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
