"""Export contract: stock loading for uniform widths, hf_resize / remote-code loading for per-layer widths."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import logits, tiny_model
from transformers import AutoModelForCausalLM

import hf_resize
from hf_resize.errors import OutputExistsError
from hf_resize.groups import neuron_groups
from hf_resize.plan import GroupPlan, Plan
from hf_resize.surgery import apply_plan

GROUP_SETS = [("mlp",), ("heads",), ("hidden",), ("mlp", "heads", "hidden")]


@pytest.mark.parametrize("groups", GROUP_SETS, ids="+".join)
def test_uniform_round_trip_is_stock(family, groups, input_ids, tmp_path):
    model = tiny_model(family)
    hf_resize.resize(model, hf_resize.MagnitudeConfig(ratio=0.5, groups=groups))
    expected = logits(model, input_ids)
    out = hf_resize.save_resized(model, tmp_path / "out")
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == family  # stock config: any tool that reads the family loads it
    assert not (out / "modeling_hf_resize.py").exists()
    assert sorted(p.name for p in out.iterdir() if p.suffix in (".bin", ".pt", ".pth")) == []
    loaded = AutoModelForCausalLM.from_pretrained(out).eval()
    assert (logits(loaded, input_ids) - expected).abs().max() <= 1e-6
    assert hf_resize.parameter_counts(loaded) == hf_resize.parameter_counts(model)


def _per_layer_model(family: str):
    model = tiny_model(family)
    plans = [GroupPlan(g, keep=torch.arange(g.width - 8 * (g.layer + 1))) for g in neuron_groups(model, ("mlp",))]
    heads = neuron_groups(model, ("heads",))[1]
    if heads.queries_per_kv > 1:
        per = heads.queries_per_kv
        plans.append(GroupPlan(heads, keep=torch.cat([torch.arange(per - 1) + k * per for k in range(heads.kv_width)])))
    return apply_plan(model, Plan("test", plans))


def test_per_layer_round_trip_with_hf_resize(family, input_ids, tmp_path):
    model = _per_layer_model(family)
    expected = logits(model, input_ids)
    out = hf_resize.save_resized(model, tmp_path / "out")
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "hf_resize" and config["base_model_type"] == family
    assert "AutoModelForCausalLM" in config["auto_map"]
    loaded = AutoModelForCausalLM.from_pretrained(out).eval()
    assert (logits(loaded, input_ids) - expected).abs().max() <= 1e-6
    resaved = loaded.save_pretrained(tmp_path / "again") or tmp_path / "again"
    again = AutoModelForCausalLM.from_pretrained(resaved).eval()
    assert (logits(again, input_ids) - expected).abs().max() <= 1e-6


LOAD_WITHOUT_PACKAGE = textwrap.dedent(
    """
    import sys, torch
    sys.modules["hf_resize"] = None  # the package must not be importable here
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(sys.argv[1], trust_remote_code=sys.argv[2] == "1").eval()
    ids = torch.load(sys.argv[3])
    with torch.no_grad():
        torch.save(model(input_ids=ids).logits, sys.argv[4])
    print(type(model).__name__)
    """
)


def _load_elsewhere(out, trust: bool, input_ids, tmp_path) -> tuple[subprocess.CompletedProcess, torch.Tensor | None]:
    torch.save(input_ids, tmp_path / "ids.pt")
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", LOAD_WITHOUT_PACKAGE, str(out), "1" if trust else "0", str(tmp_path / "ids.pt"), str(tmp_path / "l.pt")],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )
    result = torch.load(tmp_path / "l.pt") if proc.returncode == 0 else None
    return proc, result


@pytest.mark.parametrize("family_name", ["llama", "phi3", "gemma3_text"])
def test_per_layer_loads_with_remote_code_only(family_name, input_ids, tmp_path):
    model = _per_layer_model(family_name)
    expected = logits(model, input_ids)
    out = hf_resize.save_resized(model, tmp_path / "out")
    proc, result = _load_elsewhere(out, True, input_ids, tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (result - expected).abs().max() <= 1e-6
    refused, _ = _load_elsewhere(out, False, input_ids, tmp_path)
    assert refused.returncode != 0  # no code runs unless the user opts in


def test_uniform_loads_without_package(input_ids, tmp_path):
    model = tiny_model("llama")
    hf_resize.resize(model, hf_resize.MagnitudeConfig(ratio=0.25, groups=("mlp", "hidden")))
    out = hf_resize.save_resized(model, tmp_path / "out")
    proc, result = _load_elsewhere(out, False, input_ids, tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (result - logits(model, input_ids)).abs().max() <= 1e-6


def test_existing_output_is_refused_and_untouched(tmp_path):
    model = tiny_model("llama")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("user data")
    with pytest.raises(OutputExistsError, match="overwrite"):
        hf_resize.save_resized(model, out)
    assert (out / "keep.txt").read_text() == "user data"
    hf_resize.save_resized(model, out, overwrite=True)
    assert not (out / "keep.txt").exists() and (out / "model.safetensors").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no staging or trash folders left


def test_failed_save_leaves_nothing(tmp_path, monkeypatch):
    model = tiny_model("llama")

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(type(model), "save_pretrained", boom)
    with pytest.raises(RuntimeError):
        hf_resize.save_resized(model, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_nan_model_is_never_written(tmp_path):
    model = tiny_model("llama")
    with torch.no_grad():
        model.model.layers[0].mlp.down_proj.weight[0, 0] = float("nan")
    with pytest.raises(hf_resize.HFResizeError, match="NaN"):
        hf_resize.save_resized(model, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []
