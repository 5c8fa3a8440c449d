"""Resize a model larger than memory: one decoder layer materialised at a time, read from and written to disk.

The model is built on the meta device (``accelerate.init_empty_weights``); only the embedding and the final
norm are loaded for the cheap pass that captures layer 0's inputs. The layer-sequential calibration pipeline
then, for each layer i, loads its weights from the source safetensors (``layer_scope``), collects the method's
statistics on the layer's real inputs, plans and applies the resize on a one-layer model holding that layer
(the same planners and surgery as ``resize``), feeds the resized layer's outputs to layer i+1, writes the layer
as its own shard through ``export.StreamedExport`` and returns its weights to the meta device. Peak memory is
about one layer in float32, its statistics, the embedding and the calibration activations.

MLP neurons and attention heads only, uniform widths: the hidden width couples every layer at once.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from accelerate import init_empty_weights
from accelerate.utils import set_module_tensor_to_device
from safetensors import safe_open
from tqdm.auto import tqdm
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    PreTrainedTokenizerBase,
)

from hf_resize.adapters import get_adapter
from hf_resize.calibration import collect_statistics
from hf_resize.errors import ConfigError, UnsupportedModelError
from hf_resize.export import StreamedExport
from hf_resize.methods import get_method
from hf_resize.methods.base import MethodConfig
from hf_resize.methods.targets import width_ratio
from hf_resize.modeling.modeling_hf_resize import decoder_layers
from hf_resize.params import parameter_counts
from hf_resize.surgery import apply_plan
from hf_resize.validation import check_calibration_size


class CheckpointTensors:
    """Tensor name → its safetensors file in a local checkpoint folder; loads one tensor at a time."""

    def __init__(self, folder: Path) -> None:
        index = folder / "model.safetensors.index.json"
        if index.exists():
            self.files = {k: folder / v for k, v in json.loads(index.read_text())["weight_map"].items()}
        elif (folder / "model.safetensors").exists():
            with safe_open(folder / "model.safetensors", framework="pt") as f:
                self.files = {k: folder / "model.safetensors" for k in f.keys()}  # noqa: SIM118 (not a dict)
        else:
            raise UnsupportedModelError(f"{folder} has no safetensors weights; streamed resizing reads safetensors only.")

    def get(self, name: str) -> torch.Tensor:
        with safe_open(self.files[name], framework="pt") as f:
            return f.get_tensor(name)

    def names(self, prefix: str = "") -> list[str]:
        return sorted(k for k in self.files if k.startswith(prefix))


def _local_folder(source: str | Path) -> Path:
    folder = Path(source)
    if folder.is_dir():
        return folder
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(str(source), allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt"]))


def _layer_prefix(model, index: int) -> str:
    layers = decoder_layers(model)
    return next(name for name, module in model.named_modules() if module is layers[index]) + "."


def _one_layer_model(model, index: int):
    """A model of the same family holding only decoder layer ``index`` (as its layer 0), for planning/surgery."""
    cfg = copy.deepcopy(model.config)
    cfg.num_hidden_layers = 1
    if getattr(cfg, "layer_types", None):
        cfg.layer_types = [cfg.layer_types[index]]
    with init_empty_weights():
        small = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    decoder_layers(small)[0] = decoder_layers(model)[index]
    return small


def resize_from_disk(
    source: str | Path,
    config: MethodConfig,
    out_dir: str | Path,
    calibration: Any = "austen",
    tokenizer: PreTrainedTokenizerBase | None = None,
    num_samples: int = 8,
    seq_len: int = 128,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Resize the safetensors checkpoint at ``source`` (folder or Hub id) layer by layer into ``out_dir``.

    Returns the output folder (stock config, the source dtype) and records timings in its ``hf_resize.json``.
    """
    started = time.perf_counter()
    folder = _local_folder(source)
    if "hidden" in config.groups:
        raise ConfigError("resize_from_disk reduces MLP neurons and heads only; leave 'hidden' out of groups.")
    model_config = AutoConfig.from_pretrained(folder)  # never trust_remote_code here
    source_dtype = getattr(model_config, "dtype", None) or getattr(model_config, "torch_dtype", None) or torch.float32
    source_dtype = getattr(torch, source_dtype) if isinstance(source_dtype, str) else source_dtype
    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(model_config, dtype=torch.float32)
    model.eval()
    adapter = get_adapter(model)
    spec = get_method(config)
    layer_config = dataclasses.replace(config, ratio=width_ratio(model, config), target="width")
    before = parameter_counts(model)
    tensors = CheckpointTensors(folder)
    tokenizer = tokenizer or AutoTokenizer.from_pretrained(folder)
    from hf_resize.resize import _calibration_tokens

    tokens = _calibration_tokens(calibration, tokenizer, num_samples, seq_len, config.seed)
    if config.needs:
        check_calibration_size(tokens, config.min_calibration_tokens, spec.name)
    prefixes = [_layer_prefix(model, i) for i in range(len(decoder_layers(model)))]
    outside = [n for n in tensors.names() if not any(n.startswith(p) for p in prefixes)]
    lm_head = f"{adapter.lm_head}.weight"
    for name in outside:  # embedding and final norm: needed to capture layer 0's inputs
        if name != lm_head:
            set_module_tensor_to_device(model, name, "cpu", value=tensors.get(name).float())
    resized: dict[str, int] = {}

    with StreamedExport(out_dir, overwrite) as export:

        @contextmanager
        def layer_scope(index: int) -> Iterator[None]:
            if index == 0:  # layer 0's inputs are captured by now: the embedding is no longer needed in memory
                model.get_submodule(adapter.embed).to("meta")
            for name in tensors.names(prefixes[index]):
                set_module_tensor_to_device(model, name, "cpu", value=tensors.get(name).float())
            yield
            layer = decoder_layers(model)[index]
            export.add_shard({prefixes[index] + k: v.to(source_dtype) for k, v in layer.state_dict().items()})
            layer.to("meta")  # release the weights

        def on_layer(index: int, statistics: dict[str, Any]) -> None:
            small = _one_layer_model(model, index)
            stats = {kind: {0: value} for kind, value in statistics.items()}
            stats["tokens"] = int(tokens.numel())
            apply_plan(small, spec.planner(small, layer_config, stats))
            layer = decoder_layers(small)[0]
            if hasattr(getattr(layer, adapter.attn, None), "layer_idx"):
                getattr(layer, adapter.attn).layer_idx = index
            decoder_layers(model)[index] = layer
            for key in (adapter.intermediate_key, adapter.heads_key, adapter.kv_heads_key):
                resized[key] = getattr(small.config, key)

        needs = config.needs
        if needs:
            collect_statistics(model, tokens, needs, mode="sequential", on_layer=on_layer, layer_scope=layer_scope,
                               keep=False, cache=False, progress=progress)
        else:
            for index in tqdm(range(len(prefixes)), desc="resizing layers", disable=not progress):
                with layer_scope(index):
                    on_layer(index, {})
        for name in outside:  # the rest of the checkpoint, one tensor at a time, unchanged
            export.add_shard({name: tensors.get(name)})
        for key, value in resized.items():
            setattr(model_config, key, value)
        model_config.dtype = source_dtype  # the skeleton ran in float32; the shards keep the source dtype
        after = parameter_counts(model)
        summary = {
            "method": spec.name, "config": dataclasses.asdict(config), "pipeline": "layer-sequential, from disk",
            "parameters_before": before.as_dict(), "parameters_after": after.as_dict(),
            "calibration_tokens": list(tokens.shape), "seconds": round(time.perf_counter() - started, 1),
        }
        generation = GenerationConfig.from_pretrained(folder) if (folder / "generation_config.json").exists() else None
        return export.finish(model_config, tokenizer, generation, summary)
