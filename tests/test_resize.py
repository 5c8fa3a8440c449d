"""The one-call API: statistics reuse gives the same model; missing statistics are refused; info is recorded."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_model

import hf_resize
from hf_resize.calibration import collect_statistics
from hf_resize.errors import CalibrationError


def test_precomputed_statistics_give_the_same_model():
    tokens = torch.randint(3, 97, (32, 64), generator=torch.Generator().manual_seed(0))
    config = hf_resize.WandaSPConfig(ratio=0.25, groups=("mlp", "heads"))
    direct = hf_resize.resize(tiny_model("llama"), config, calibration=tokens)
    model = tiny_model("llama")
    stats = collect_statistics(model, tokens, config.needs)
    reused = hf_resize.resize(model, config, statistics=stats)
    a, b = direct.state_dict(), reused.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    info = reused.hf_resize_info
    assert info["method"] == "wanda_sp" and info["parameters_after"]["body"] < info["parameters_before"]["body"]


def test_missing_statistics_are_refused():
    with pytest.raises(CalibrationError, match="attn_gram"):
        hf_resize.resize(tiny_model("llama"), hf_resize.WandaSPConfig(ratio=0.25), statistics={"mlp_gram": {}})
