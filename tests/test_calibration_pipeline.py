"""Calibration pipelines: layer-sequential = whole-model; KFAC = direct autograd; on-disk cache; 2 processes = 1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import FAMILIES, tiny_model
from torch import nn
from torch.nn import functional as F

import hf_resize
from hf_resize.adapters import get_adapter
from hf_resize.calibration import cache as stats_cache
from hf_resize.calibration import collect_statistics, collectors, estimate_memory
from hf_resize.errors import CalibrationError
from hf_resize.modeling.modeling_hf_resize import decoder_layers

GRAMS = frozenset({"mlp_gram", "attn_gram"})


def _tokens(n: int = 7, length: int = 24, seed: int = 0) -> torch.Tensor:
    # 24 > gemma3's sliding window of 16, so its sliding and full layers see different masks.
    return torch.randint(3, 97, (n, length), generator=torch.Generator().manual_seed(seed))


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def _assert_close(got, expected, tol: float = 1e-6) -> None:
    if isinstance(expected, dict):
        assert sorted(got, key=str) == sorted(expected, key=str)
        for key in expected:
            _assert_close(got[key], expected[key], tol)
    else:
        assert got.dtype == torch.float64 and got.shape == expected.shape
        assert _rel(got, expected) <= tol


def _count_forwards(model) -> list[int]:
    calls = [0]

    def hook(module, args):
        calls[0] += 1

    model.get_input_embeddings().register_forward_pre_hook(hook)
    return calls


# --- layer-sequential --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_sequential_equals_whole_model(family: str) -> None:
    model = tiny_model(family)
    tokens = _tokens()
    whole = collect_statistics(model, tokens, GRAMS, batch_size=3, progress=False)
    seq = collect_statistics(model, tokens, GRAMS, batch_size=3, mode="sequential", progress=False)
    assert seq["tokens"] == whole["tokens"] == tokens.numel()
    for kind in GRAMS:
        assert sorted(seq[kind]) == list(range(model.config.num_hidden_layers))
        _assert_close(seq[kind], whole[kind])
    for layer in decoder_layers(model):  # stubs and hooks are gone
        assert "forward" not in layer.__dict__
        assert all(not m._forward_pre_hooks for m in layer.modules())


def test_on_layer_resizes_before_the_next_layer_is_calibrated() -> None:
    model, reference = tiny_model("llama"), tiny_model("llama")
    adapter = get_adapter(model)
    tokens = _tokens()
    seen: list[int] = []
    first = collect_statistics(reference, tokens, GRAMS, progress=False)

    def on_layer(index: int, layer_stats: dict) -> None:
        seen.append(index)
        assert set(layer_stats) == GRAMS
        if index == 0:
            _assert_close(layer_stats["mlp_gram"], first["mlp_gram"][0])
            with torch.no_grad():
                decoder_layers(model)[0].get_submodule(f"{adapter.mlp}.{adapter.down_proj}").weight.zero_()

    seq = collect_statistics(model, tokens, GRAMS, mode="sequential", on_layer=on_layer, progress=False)
    assert seen == [0, 1]
    with torch.no_grad():
        decoder_layers(reference)[0].get_submodule(f"{adapter.mlp}.{adapter.down_proj}").weight.zero_()
    after = collect_statistics(reference, tokens, GRAMS, progress=False)
    _assert_close(seq["mlp_gram"][1], after["mlp_gram"][1])  # layer 1 saw the resized layer 0
    assert _rel(after["mlp_gram"][1], first["mlp_gram"][1]) > 1e-3


def test_sequential_restores_layers_after_an_error() -> None:
    model = tiny_model("llama")
    with pytest.raises(IndexError):
        collect_statistics(model, torch.full((2, 8), 10_000), GRAMS, mode="sequential", progress=False)
    assert all("forward" not in layer.__dict__ for layer in decoder_layers(model))
    assert all(not m._forward_pre_hooks for m in model.modules())


@pytest.mark.parametrize(
    "kwargs", [dict(mode="bogus"), dict(on_layer=lambda i, s: None), dict(mode="sequential", needs={"kfac"})]
)
def test_bad_pipeline_arguments(kwargs: dict) -> None:
    needs = kwargs.pop("needs", GRAMS)
    with pytest.raises(CalibrationError):
        collect_statistics(tiny_model("llama"), _tokens(), needs, **kwargs)


# --- KFAC ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["llama", "gemma3_text"])
def test_kfac_matches_direct_autograd(family: str) -> None:
    model = tiny_model(family)
    tokens = _tokens(5, 16)
    stats = collect_statistics(model, tokens, frozenset({"kfac"}), batch_size=2, progress=False)
    assert all(p.grad is None and p.requires_grad for p in model.parameters())

    # Direct: one pass over all sequences, keep every linear's input and output, autograd.grad of the summed loss.
    inputs, outputs, handles = {}, {}, []
    for index, layer in enumerate(decoder_layers(model)):
        for name, module in layer.named_modules():
            if isinstance(module, nn.Linear):

                def hook(m, args, out, key=(index, name)):
                    inputs[key], outputs[key] = args[0], out

                handles.append(module.register_forward_hook(hook))
    logits = model(input_ids=tokens, use_cache=False).logits
    for handle in handles:
        handle.remove()
    loss = F.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1), reduction="sum"
    )
    keys = sorted(outputs)
    grads = torch.autograd.grad(loss, [outputs[k] for k in keys])
    assert len(keys) == 7 * model.config.num_hidden_layers
    for key, grad in zip(keys, grads, strict=True):
        x = inputs[key].detach().reshape(-1, inputs[key].shape[-1]).double()
        g = grad.reshape(-1, grad.shape[-1]).double()
        got = stats["kfac"][key[0]][key[1]]
        _assert_close(got["A"], x.T @ x)
        _assert_close(got["G"], g.T @ g, tol=1e-5)


# --- cache --------------------------------------------------------------------------------------------------------


@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("HF_RESIZE_STATISTICS_CACHE", str(tmp_path))
    monkeypatch.delenv("HF_RESIZE_NO_CACHE", raising=False)
    return tmp_path


def _entries(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def test_cache_hit_does_no_forward_pass_and_subsets_reuse(cache_dir: Path) -> None:
    needs = frozenset({"mlp_gram", "attn_gram", "kfac"})
    tokens = _tokens()
    cold = collect_statistics(tiny_model("llama"), tokens, needs, cache=True, progress=False)
    assert [p.name.split("-")[0] for p in _entries(cache_dir)] == ["attn_gram", "kfac", "mlp_gram"]
    manifest = json.loads((_entries(cache_dir)[0] / "manifest.json").read_text())
    assert manifest["tokens"] == tokens.numel() and "statistics.safetensors" in manifest["files"]
    model = tiny_model("llama")  # a fresh copy: same weights, same fingerprint
    calls = _count_forwards(model)
    warm = collect_statistics(model, tokens, needs, cache=True, progress=False)
    assert calls[0] == 0
    assert warm["tokens"] == cold["tokens"]
    for kind in needs:
        _assert_close(warm[kind], cold[kind], tol=0.0)
    collect_statistics(model, tokens, frozenset({"mlp_gram"}), cache=True, progress=False)  # another method
    assert calls[0] == 0
    # Different data, different weights, disabled cache: all compute.
    collect_statistics(model, _tokens(seed=1), frozenset({"mlp_gram"}), cache=True, progress=False)
    assert calls[0] > 0
    before = calls[0]
    with torch.no_grad():
        next(model.parameters()).add_(1e-3)
    collect_statistics(model, tokens, frozenset({"mlp_gram"}), cache=True, progress=False)
    assert calls[0] > before


def test_a_new_statistic_version_is_not_served_old_entries(cache_dir: Path, monkeypatch) -> None:
    import dataclasses

    from hf_resize.calibration.collectors import STATISTICS

    tokens = _tokens()
    collect_statistics(tiny_model("llama"), tokens, frozenset({"mlp_gram"}), cache=True, progress=False)
    model = tiny_model("llama")
    calls = _count_forwards(model)
    monkeypatch.setitem(STATISTICS, "mlp_gram", dataclasses.replace(STATISTICS["mlp_gram"], version=2))
    collect_statistics(model, tokens, frozenset({"mlp_gram"}), cache=True, progress=False)
    assert calls[0] > 0  # recomputed, into a second entry
    assert len(_entries(cache_dir)) == 2


def test_cache_disabled_by_env(cache_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_RESIZE_NO_CACHE", "1")
    collect_statistics(tiny_model("llama"), _tokens(), GRAMS, cache=True, progress=False)
    assert not list(cache_dir.iterdir())


@pytest.mark.parametrize("damage", ["truncate", "flip", "no_manifest", "garbage"])
def test_damaged_cache_is_recomputed(cache_dir: Path, damage: str) -> None:
    tokens = _tokens()
    cold = collect_statistics(
        tiny_model("llama"), tokens, frozenset({"mlp_gram"}), cache=True, progress=False
    )
    (entry,) = _entries(cache_dir)
    data = entry / "statistics.safetensors"
    raw = data.read_bytes()
    if damage == "truncate":
        data.write_bytes(raw[: len(raw) // 2])
    elif damage == "flip":
        data.write_bytes(raw[:-9] + bytes([raw[-9] ^ 0xFF]) + raw[-8:])
    elif damage == "no_manifest":  # a partial entry
        (entry / "manifest.json").unlink()
    else:  # a consistent manifest over a file that is not safetensors
        data.write_bytes(b"not safetensors")
        manifest = json.loads((entry / "manifest.json").read_text())
        manifest["files"]["statistics.safetensors"] = {
            "sha256": stats_cache._file_sha256(data),
            "bytes": data.stat().st_size,
        }
        (entry / "manifest.json").write_text(json.dumps(manifest))
    model = tiny_model("llama")
    calls = _count_forwards(model)
    again = collect_statistics(model, tokens, frozenset({"mlp_gram"}), cache=True, progress=False)
    assert calls[0] > 0  # recomputed, not trusted
    _assert_close(again["mlp_gram"], cold["mlp_gram"])
    assert stats_cache.load_entry(entry, "mlp_gram") is not None  # and rewritten whole


def test_resize_uses_the_cache(cache_dir: Path, monkeypatch) -> None:
    tokens = torch.randint(3, 97, (32, 64), generator=torch.Generator().manual_seed(0))
    config = hf_resize.WandaSPConfig(ratio=0.25, groups=("mlp", "heads"))
    first = hf_resize.resize(tiny_model("llama"), config, calibration=tokens)
    assert len(_entries(cache_dir)) == 2

    def no_calibration(*args, **kwargs):
        raise AssertionError("calibration ran despite a cache hit")

    monkeypatch.setattr(collectors, "_whole", no_calibration)
    again = hf_resize.resize(tiny_model("llama"), hf_resize.WandaSPConfig(ratio=0.5), calibration=tokens)
    assert again.hf_resize_info["parameters_after"]["body"] < first.hf_resize_info["parameters_after"]["body"]
    with pytest.raises(AssertionError, match="cache hit"):
        hf_resize.resize(tiny_model("llama"), config, calibration=tokens, cache=False)


def test_fingerprint_ignores_load_path_but_not_weights() -> None:
    a, b = tiny_model("llama"), tiny_model("llama")
    b.config._name_or_path = "/somewhere/else"
    assert stats_cache.model_fingerprint(a) == stats_cache.model_fingerprint(b)
    assert stats_cache.model_fingerprint(a) != stats_cache.model_fingerprint(tiny_model("llama", seed=1))


def test_memory_estimate() -> None:
    model = tiny_model("llama")
    est = estimate_memory(model, _tokens(), frozenset({"mlp_gram", "attn_gram", "kfac"}), mode="sequential")
    assert est["mlp_gram"] == 2 * 8 * 64**2 and est["attn_gram"] == 2 * 8 * 48**2
    assert est["layer inputs+outputs"] == 2 * 7 * 24 * 48 * 4
    assert est["kfac"] > est["mlp_gram"]


# --- processes ----------------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_equal_one(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    out = tmp_path / "two.safetensors"
    worker = Path(__file__).parent / "calibration_worker.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_RESIZE_NO_CACHE": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    command += ["--master_addr", "127.0.0.1", "--master_port", str(_free_port()), str(worker), str(out)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    two = load_file(str(out))

    model = tiny_model("llama")
    tokens = torch.randint(3, 97, (7, 16), generator=torch.Generator().manual_seed(0))
    whole = collect_statistics(
        model, tokens, frozenset({"mlp_gram", "attn_gram", "kfac"}), batch_size=2, progress=False
    )
    seq = collect_statistics(
        model, tokens, frozenset({"mlp_gram"}), batch_size=2, mode="sequential", progress=False
    )
    one: dict[str, torch.Tensor] = {}
    stats_cache._flatten({k: v for k, v in whole.items() if k != "tokens"}, "whole", one)
    stats_cache._flatten({k: v for k, v in seq.items() if k != "tokens"}, "seq", one)
    assert sorted(two) == sorted(one)
    for key in one:
        assert _rel(two[key], one[key]) <= 1e-9, key


# --- accelerate placement -----------------------------------------------------------------------------------------


def test_disk_offloaded_model(tmp_path: Path) -> None:
    from accelerate import disk_offload

    tokens = _tokens()
    reference = tiny_model("llama")
    expected = collect_statistics(reference, tokens, GRAMS, progress=False)
    model = tiny_model("llama")
    disk_offload(model, str(tmp_path / "offload"), execution_device="cpu")
    assert next(model.parameters()).device.type == "meta"
    assert stats_cache.model_fingerprint(model) == stats_cache.model_fingerprint(reference)
    for mode in ("sequential", "whole"):
        got = collect_statistics(model, tokens, GRAMS, mode=mode, progress=False)
        for kind in GRAMS:
            _assert_close(got[kind], expected[kind])
