"""Run by test_calibration_pipeline under torchrun: collect statistics as one of N processes, rank 0 saves them."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).parent))
from conftest import tiny_model  # noqa: E402

from hf_resize.calibration import collect_statistics  # noqa: E402
from hf_resize.calibration.cache import _flatten  # noqa: E402


def main(out: str) -> None:
    model = tiny_model("llama")
    tokens = torch.randint(3, 97, (7, 16), generator=torch.Generator().manual_seed(0))
    whole = collect_statistics(model, tokens, frozenset({"mlp_gram", "attn_gram", "kfac"}), batch_size=2)
    seq = collect_statistics(model, tokens, frozenset({"mlp_gram"}), batch_size=2, mode="sequential")
    import torch.distributed as dist

    flat: dict[str, torch.Tensor] = {}
    _flatten({k: v for k, v in whole.items() if k != "tokens"}, "whole", flat)
    _flatten({k: v for k, v in seq.items() if k != "tokens"}, "seq", flat)
    if dist.get_rank() == 0:
        save_file(flat, out, metadata={"world": str(dist.get_world_size()), "tokens": str(whole["tokens"])})
    dist.barrier()


if __name__ == "__main__":
    main(sys.argv[1])
