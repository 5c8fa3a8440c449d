"""Why DOTResize's producer merge loses to pruning on SwiGLU MLPs: one layer, measured directly.

Takes real inputs of one SmolLM2 MLP layer (calibration text), reduces its 1536 neurons to 1229 (20%), and
reports the relative output error ||H' W'ᵀ − H Wᵀ||² / ||H Wᵀ||² on held-out tokens of the same batches for:
pruning to the targets + least-squares refit; OT merge with the refit the planner uses (linearised: a merged
neuron's activation taken as the mix of its sources'); OT merge with an exact refit on the merged neurons' true
activations; OT merge with the plain transport consumer.

    python benchmarks/layer_merge_study.py [--layer 10] [--out benchmarks/results/layer_merge_study.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch.nn.functional import silu

from hf_resize.data.calibration import sample_calibration
from hf_resize.data.models import load_model
from hf_resize.methods.dotresize.transport import (
    choose_targets,
    cost_matrix,
    merge_matrix,
    output_gram,
    spread_matrix,
    transport_plan,
)
from hf_resize.methods.refit import least_squares_refit, merged_least_squares


def _inputs(model, tokens: torch.Tensor, layer: int) -> torch.Tensor:
    captured = []
    mlp = model.model.layers[layer].mlp
    hook = mlp.register_forward_pre_hook(lambda m, a: captured.append(a[0].reshape(-1, a[0].shape[-1])))
    with torch.no_grad():
        for i in range(0, tokens.shape[0], 4):
            model.model(input_ids=tokens[i : i + 4], use_cache=False)
    hook.remove()
    return torch.cat(captured).double()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layer", type=int, default=10)
    parser.add_argument("--keep", type=int, default=1229)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/layer_merge_study.json"))
    args = parser.parse_args()
    model, tokenizer = load_model("smollm2-135m")
    x = _inputs(model, sample_calibration("austen", tokenizer, 16, 512, seed=0), args.layer)
    fit, test = x[:6000], x[6000:]
    mlp = model.model.layers[args.layer].mlp
    gate, up, down = (p.weight.detach().double() for p in (mlp.gate_proj, mlp.up_proj, mlp.down_proj))

    def act(inputs, g, u):
        return silu(inputs @ g.T) * (inputs @ u.T)

    h_fit, h_test = act(fit, gate, up), act(test, gate, up)
    gram = h_fit.T @ h_fit
    target = h_test @ down.T

    def error(h, w) -> float:
        return float((h @ w.T - target).pow(2).sum() / target.pow(2).sum())

    targets = choose_targets(output_gram(gram, down), args.keep, "activation_norm", 0)
    rows = {"prune to targets + least-squares refit": error(h_test[:, targets], least_squares_refit(down, gram, targets, 0.01))}
    for solver, eps in (("emd", None), ("sinkhorn", 0.05), ("sinkhorn", 0.01)):
        plan = transport_plan(cost_matrix(output_gram(gram, down), targets, "sqeuclidean"), solver, eps or 0.05, 2000)
        producer = merge_matrix(plan)
        g2, u2 = producer @ gate, producer @ up
        m_fit, m_test = act(fit, g2, u2), act(test, g2, u2)
        m_gram = m_fit.T @ m_fit
        ridge = 0.01 * m_gram.diagonal().mean() * torch.eye(args.keep, dtype=m_gram.dtype)
        exact = down @ (h_fit.T @ m_fit) @ torch.linalg.inv(m_gram + ridge)
        name = f"OT merge ({solver}{'' if eps is None else f', eps={eps}'})"
        rows[f"{name} + linearised refit (planner)"] = error(m_test, merged_least_squares(down, gram, producer, 0.01))
        rows[f"{name} + exact refit on merged activations"] = error(m_test, exact)
        rows[f"{name} + transport consumer"] = error(m_test, down @ spread_matrix(plan).to(down.dtype))
    result = {"layer": args.layer, "neurons": [down.shape[1], args.keep], "fit_tokens": len(fit),
              "test_tokens": len(test), "relative_output_error": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    for name, value in rows.items():
        print(f"{value:.4f}  {name}")


if __name__ == "__main__":
    main()
