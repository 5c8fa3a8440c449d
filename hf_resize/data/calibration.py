"""Calibration batches: token windows drawn at seeded random, non-overlapping offsets from a text source."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import torch

from hf_resize.data.austen import CALIBRATION_BOOKS, DEBIAN_PACKAGE, calibration_text
from hf_resize.errors import CalibrationError, ConfigError

if TYPE_CHECKING:
    import datasets
    from transformers import PreTrainedTokenizerBase

CalibrationSource = Union[str, Path, "datasets.Dataset", list[str]]

BUILTIN_SOURCES = ("austen",)
_LOCAL_SUFFIXES = (".txt", ".jsonl", ".json")
_CHUNK_CHARS = 200_000  # tokenize in pieces: avoids "sequence too long" warnings and huge buffers


def _looks_local(name: str) -> bool:
    """A string meant as a file (so a missing file is an error, not a Hub lookup)."""
    return name.lower().endswith(_LOCAL_SUFFIXES) or name.startswith(("/", "./", "../", "~"))


def _texts_from_jsonl(path: Path) -> list[str]:
    texts: list[str] = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CalibrationError(
                f"{path}:{lineno} is not valid JSON ({exc.msg}); write one JSON object per line."
            ) from exc
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise CalibrationError(
                f'{path}:{lineno} has no string "text" field; write lines like {{"text": "..."}}.'
            )
        texts.append(record["text"])
    return texts


def _texts_from_dataset(ds: Any, what: str) -> list[str]:
    if hasattr(ds, "keys") and "train" in ds:  # DatasetDict: calibrate on the train split
        ds = ds["train"]
    columns = getattr(ds, "column_names", None) or []
    if "text" not in columns:
        raise CalibrationError(
            f'{what} has no "text" column (columns: {columns}); rename the text column to "text".'
        )
    texts = ds["text"]
    if not all(isinstance(t, str) for t in texts):
        raise CalibrationError(f'{what}: the "text" column must hold strings; convert it to text first.')
    return list(texts)


def _texts_from_hub(name: str) -> list[str]:
    import datasets

    dataset_name, _, config = name.partition(":")  # "name:config" selects a config
    # Offline or missing datasets raise many unrelated types (ConnectionError, FileNotFoundError, ...).
    try:
        ds = datasets.load_dataset(dataset_name, config or None, split="train")
    except Exception as exc:
        raise CalibrationError(
            f"Could not load the Hub dataset {name!r} ({exc.__class__.__name__}: {str(exc)[:200]}). "
            f"Offline? Use the built-in 'austen' corpus, a local .txt file, or a .jsonl file with a \"text\" field."
        ) from exc
    return _texts_from_dataset(ds, f"Hub dataset {name!r}")


def load_texts(source: CalibrationSource) -> list[str]:
    """Turn any supported source into a list of documents."""
    if isinstance(source, list):
        if not all(isinstance(t, str) for t in source):
            raise CalibrationError("A list calibration source must hold only strings.")
        return source
    if isinstance(source, (str, Path)):
        name = str(source)
        if name in BUILTIN_SOURCES and not Path(name).exists():
            return [calibration_text()]  # never Persuasion: that book is held out for evaluation
        path = Path(name).expanduser()
        if path.is_file():
            if path.suffix.lower() in (".jsonl", ".json"):
                return _texts_from_jsonl(path)
            try:
                return [path.read_text(encoding="utf-8")]
            except UnicodeDecodeError as exc:
                raise CalibrationError(
                    f"{path} is not UTF-8 text; pass a plain-text .txt or a .jsonl file."
                ) from exc
        if path.exists() or _looks_local(name):
            raise CalibrationError(
                f"Calibration file {path} not found (or not a file); pass an existing .txt/.jsonl file, or 'austen'."
            )
        return _texts_from_hub(name)
    if hasattr(source, "column_names"):
        return _texts_from_dataset(source, "The dataset")
    raise CalibrationError(
        f"Unsupported calibration source of type {type(source).__name__}; pass 'austen', a .txt/.jsonl path, "
        'a datasets.Dataset with a "text" column, or a Hub dataset name.'
    )


def _needs_bos(tokenizer: PreTrainedTokenizerBase) -> bool:
    """True when the tokenizer itself puts BOS first (Gemma, Llama-2 style); such models expect it."""
    bos = tokenizer.bos_token_id
    if bos is None:
        return False
    ids = tokenizer("a").input_ids
    return len(ids) > 0 and ids[0] == bos


def _chunks(text: str) -> list[str]:
    """Split long text at line breaks into pieces of about _CHUNK_CHARS characters."""
    pieces: list[str] = []
    start = 0
    while start < len(text):
        end = min(start + _CHUNK_CHARS, len(text))
        if end < len(text):
            cut = text.rfind("\n", start, end)
            end = cut + 1 if cut > start else end
        pieces.append(text[start:end])
        start = end
    return pieces


def tokenize_stream(texts: list[str], tokenizer: PreTrainedTokenizerBase) -> torch.Tensor:
    """One long 1-D stream of token ids without special tokens; documents separated by a blank line."""
    joined = "\n\n".join(t for t in texts if t.strip())
    ids: list[int] = []
    for piece in _chunks(joined):
        ids.extend(tokenizer(piece, add_special_tokens=False).input_ids)
    return torch.tensor(ids, dtype=torch.long)


def sample_calibration(
    source: CalibrationSource,
    tokenizer: PreTrainedTokenizerBase,
    num_sequences: int = 128,
    seq_len: int = 512,
    seed: int = 0,
) -> torch.LongTensor:
    """``[num_sequences, seq_len]`` token ids from non-overlapping windows at seeded random offsets.

    If the tokenizer adds BOS by itself, every row starts with BOS (so position 0 looks as in training).
    """
    if num_sequences < 1 or seq_len < 2:
        raise ConfigError(f"Need num_sequences >= 1 and seq_len >= 2 (got {num_sequences}, {seq_len}).")
    stream = tokenize_stream(load_texts(source), tokenizer)
    bos = _needs_bos(tokenizer)
    window = seq_len - 1 if bos else seq_len
    needed = num_sequences * window
    if stream.numel() == 0:
        raise CalibrationError(
            f"Calibration source {describe_source(source)} is empty; pass text with content."
        )
    if stream.numel() < needed:
        raise CalibrationError(
            f"Calibration text has {stream.numel()} tokens but {num_sequences} windows of {seq_len} need {needed}. "
            "Pass more text, or lower --num-sequences / --seq-len."
        )
    gen = torch.Generator().manual_seed(seed)
    # Non-overlapping random windows: split the slack into sorted random gaps before each window.
    slack = stream.numel() - needed
    gaps = torch.sort(torch.randint(0, slack + 1, (num_sequences,), generator=gen)).values
    starts = gaps + torch.arange(num_sequences) * window
    starts = starts[torch.randperm(num_sequences, generator=gen)]  # mix sources across the batch
    rows = stream[starts[:, None] + torch.arange(window)[None, :]]
    if bos:
        rows = torch.cat(
            [torch.full((num_sequences, 1), tokenizer.bos_token_id, dtype=torch.long), rows], dim=1
        )
    return rows  # type: ignore[return-value]


def describe_source(source: CalibrationSource) -> str:
    """A short, stable description for model cards and fingerprints (content hash for local files)."""
    if isinstance(source, list):
        digest = hashlib.sha256("\x00".join(source).encode("utf-8")).hexdigest()[:16]
        return f"list of {len(source)} texts (sha256:{digest})"
    if isinstance(source, (str, Path)):
        name = str(source)
        if name in BUILTIN_SOURCES and not Path(name).exists():
            return f"austen (Debian {DEBIAN_PACKAGE}; books: {', '.join(CALIBRATION_BOOKS)})"
        path = Path(name).expanduser()
        if path.is_file():
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
            return f"file {path.name} (sha256:{digest})"
        return f"hub dataset {name} (split train)"
    fingerprint = getattr(source, "_fingerprint", None)
    rows = getattr(source, "num_rows", "?")
    return f"datasets.Dataset ({rows} rows, fingerprint {fingerprint})"
