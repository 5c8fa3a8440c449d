"""On-disk cache of calibration statistics: safetensors files keyed by model fingerprint, data and statistic kind.

Layout: ``<statistics_cache_dir()>/<kind>-<key>/`` holding ``statistics.safetensors`` and ``manifest.json``
(sha256 and size of every file, written last). An entry is built in a temporary directory beside it and renamed
into place, so a reader sees a complete entry or none. An entry whose manifest is missing or does not match its
files, or whose safetensors file does not load, is deleted and recomputed — never trusted. Never pickle.

One entry per statistic kind, so a method that needs a subset (or a different ratio of the same method) reuses
what an earlier run collected. Disable with ``cache=False`` or ``HF_RESIZE_NO_CACHE=1``; move with
``HF_RESIZE_STATISTICS_CACHE`` (default ``hf_resize.data.austen.default_cache_dir() / "statistics"``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel

logger = logging.getLogger(__name__)

#: Bump when a collector's semantics change, so old entries stop matching.
FORMAT_VERSION = 1
STATS_FILE = "statistics.safetensors"
MANIFEST = "manifest.json"
_VOLATILE_CONFIG_KEYS = ("_name_or_path", "transformers_version", "_commit_hash", "dtype", "torch_dtype")


def cache_disabled() -> bool:
    return os.environ.get("HF_RESIZE_NO_CACHE", "").strip().lower() not in ("", "0", "false", "no")


def statistics_cache_dir() -> Path:
    env = os.environ.get("HF_RESIZE_STATISTICS_CACHE")
    if env:
        return Path(env).expanduser()
    from hf_resize.data.austen import default_cache_dir

    return default_cache_dir() / "statistics"


def _tensor_bytes(tensor: torch.Tensor) -> memoryview:
    flat = tensor.detach().to("cpu").contiguous().reshape(-1)
    return memoryview(flat.view(torch.uint8).numpy())


def _offloaded(model: PreTrainedModel, name: str) -> torch.Tensor | None:
    """The real value of a parameter that accelerate offloaded (it sits on ``meta``), from its hook's weights map."""
    owner_name, _, local = name.rpartition(".")
    try:
        hook = getattr(model.get_submodule(owner_name), "_hf_hook", None)
        weights = getattr(hook, "weights_map", None)
        return None if weights is None else weights[local]
    except (AttributeError, KeyError):
        return None


def model_fingerprint(model: PreTrainedModel) -> str | None:
    """sha256 over the config (minus load-path/version fields) and every parameter's name, dtype, shape and bytes.

    A full hash (SmolLM2's 135M float32 parameters: well under a second). Parameters that accelerate offloaded are
    read through their hook's weights map; None (no caching) when some value cannot be read at all.
    """
    digest = hashlib.sha256()
    config = model.config.to_dict()
    for key in _VOLATILE_CONFIG_KEYS:
        config.pop(key, None)
    digest.update(json.dumps(config, sort_keys=True, default=str).encode())
    skip = set()
    output = model.get_output_embeddings()
    if getattr(model.config, "tie_word_embeddings", False) and output is not None:
        # Tied to the input embeddings (offloading may show it as a separate meta tensor).
        skip = {f"{name}.weight" for name, module in model.named_modules() if module is output}
    for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
        if name.endswith("inv_freq") or name in skip:
            continue  # derived from the config or from another parameter
        if tensor.device.type == "meta":
            tensor = _offloaded(model, name)
            if tensor is None:
                logger.info("statistics cache off: %s has no readable value", name)
                return None
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(_tensor_bytes(tensor))
    return digest.hexdigest()


def data_fingerprint(tokens: torch.Tensor) -> str:
    digest = hashlib.sha256(f"{tuple(tokens.shape)}|".encode())
    digest.update(_tensor_bytes(tokens.to(torch.int64)))
    return digest.hexdigest()


def entry_dir(model_fp: str, data_fp: str, kind: str, root: Path | None = None, version: int = 1) -> Path:
    """Folder of one cached statistic; ``version`` is the statistic's definition version (bumped when what a kind
    computes changes, so older entries are not reused; version 1 keeps the original keys)."""
    parts = [FORMAT_VERSION, model_fp, data_fp, kind] + ([version] if version != 1 else [])
    key = hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]
    return (root or statistics_cache_dir()) / f"{kind}-{key}"


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _flatten(value: Any, prefix: str, out: dict[str, torch.Tensor]) -> None:
    if isinstance(value, torch.Tensor):
        out[prefix] = value.detach().to("cpu").contiguous()
    elif isinstance(value, dict):
        for key, item in value.items():
            if "/" in str(key):
                raise ValueError(f"statistic key {key!r} contains '/'")
            _flatten(item, f"{prefix}/{key}" if prefix else str(key), out)
    else:
        raise TypeError(f"cannot cache a statistic of type {type(value).__name__}")


def _sorted(node: Any) -> Any:
    if isinstance(node, dict):
        return {key: _sorted(node[key]) for key in sorted(node, key=lambda k: (isinstance(k, str), k))}
    return node


def _unflatten(flat: dict[str, torch.Tensor]) -> dict:
    root: dict = {}
    for key, tensor in flat.items():
        parts = [int(p) if p.isdigit() else p for p in key.split("/")]
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = tensor
    return _sorted(root)


def save_entry(path: Path, kind: str, value: dict, tokens: int, meta: dict[str, str]) -> None:
    """Write one kind's statistics atomically (temp dir + rename; manifest last). Failures only warn."""
    from safetensors.torch import save_file

    flat: dict[str, torch.Tensor] = {}
    _flatten(value, "", flat)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp's 0700 would hide a shared cache from other users
        save_file(flat, str(tmp / STATS_FILE), metadata={"kind": kind, "tokens": str(tokens)})
        manifest = {
            "format_version": FORMAT_VERSION,
            "kind": kind,
            "tokens": tokens,
            **meta,
            "files": {
                STATS_FILE: {
                    "sha256": _file_sha256(tmp / STATS_FILE),
                    "bytes": (tmp / STATS_FILE).stat().st_size,
                }
            },
        }
        with open(tmp / MANIFEST, "w") as f:
            json.dump(manifest, f, indent=2, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        if path.exists():
            shutil.rmtree(path, ignore_errors=True)  # a stale/corrupt entry
        os.rename(tmp, path)
    except OSError as error:  # another process won the race, disk full, read-only cache...
        logger.warning("could not write statistics cache %s: %s", path, error)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def load_entry(path: Path, kind: str, device: torch.device | str = "cpu") -> tuple[dict, int] | None:
    """The cached ``(value, tokens)`` for ``kind`` at ``path``, or None (missing, or corrupt and now deleted)."""
    if not path.is_dir():
        return None
    try:
        from safetensors.torch import load_file

        with open(path / MANIFEST) as f:
            manifest = json.load(f)
        if manifest.get("format_version") != FORMAT_VERSION or manifest.get("kind") != kind:
            raise ValueError("manifest does not match the requested entry")
        for name, info in manifest["files"].items():
            file = path / name
            if file.stat().st_size != info["bytes"] or _file_sha256(file) != info["sha256"]:
                raise ValueError(f"{name} does not match its manifest checksum")
        flat = load_file(str(path / STATS_FILE), device=str(device))
        return _unflatten(flat), int(manifest["tokens"])
    except Exception as error:  # noqa: BLE001 - anything wrong with an entry means recompute
        logger.warning("statistics cache entry %s is unusable (%s); recomputing", path, error)
        shutil.rmtree(path, ignore_errors=True)
        return None
