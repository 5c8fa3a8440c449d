"""Calibration sampler: sources, determinism, BOS handling, clear errors. Uses a tiny offline byte tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from hf_resize.data.calibration import describe_source, load_texts, sample_calibration
from hf_resize.errors import CalibrationError, ConfigError


def byte_tokenizer(with_bos: bool = False) -> PreTrainedTokenizerFast:
    """One token per UTF-8 byte (ids 0-255) plus <s>=256, so token counts equal byte counts."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet, key=lambda c: ord(c)))}
    vocab["<s>"] = 256
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    if with_bos:
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 256)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>")


TEXT = "".join(f"Line {i}: it is a truth universally acknowledged.\n" for i in range(400))  # ~20k bytes


@pytest.fixture(scope="module")
def tok() -> PreTrainedTokenizerFast:
    return byte_tokenizer()


@pytest.fixture
def txt_file(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def test_byte_tokenizer_counts_bytes(tok: PreTrainedTokenizerFast) -> None:
    assert len(tok("héllo", add_special_tokens=False).input_ids) == len("héllo".encode())
    assert tok("a").input_ids[0] != tok.bos_token_id


def test_shape_dtype_and_windows_come_from_text(tok: PreTrainedTokenizerFast, txt_file: Path) -> None:
    out = sample_calibration(txt_file, tok, num_sequences=8, seq_len=64, seed=0)
    assert out.shape == (8, 64) and out.dtype == torch.long
    for row in out:
        assert tok.decode(row) in TEXT


def test_same_seed_same_tensor_different_seed_differs(tok: PreTrainedTokenizerFast, txt_file: Path) -> None:
    a = sample_calibration(txt_file, tok, num_sequences=8, seq_len=64, seed=0)
    b = sample_calibration(txt_file, tok, num_sequences=8, seq_len=64, seed=0)
    c = sample_calibration(txt_file, tok, num_sequences=8, seq_len=64, seed=1)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_windows_do_not_overlap(tok: PreTrainedTokenizerFast) -> None:
    text = "".join(f"{i:05d}" for i in range(2000))  # every 16-byte substring occurs once
    out = sample_calibration([text], tok, num_sequences=50, seq_len=16, seed=3)
    starts = sorted(text.index(tok.decode(r)) for r in out)
    assert all(b - a >= 16 for a, b in zip(starts, starts[1:], strict=False))
    # With no slack the windows must tile the text exactly.
    tight = text[: 10 * 16]
    rows = sample_calibration([tight], tok, num_sequences=10, seq_len=16, seed=3)
    assert sorted(tok.decode(r) for r in rows) == sorted(tight[i * 16 : (i + 1) * 16] for i in range(10))


def test_bos_kept_at_position_zero(txt_file: Path) -> None:
    tok = byte_tokenizer(with_bos=True)
    out = sample_calibration(txt_file, tok, num_sequences=4, seq_len=32, seed=0)
    assert out.shape == (4, 32)
    assert (out[:, 0] == 256).all()
    assert (out[:, 1:] != 256).all()  # BOS only at the start, not inside windows


def test_too_short_text_names_the_fix(tok: PreTrainedTokenizerFast, tmp_path: Path) -> None:
    path = tmp_path / "short.txt"
    path.write_text("too short", encoding="utf-8")
    with pytest.raises(CalibrationError, match="Pass more text"):
        sample_calibration(path, tok, num_sequences=4, seq_len=16)


def test_empty_text(tok: PreTrainedTokenizerFast, tmp_path: Path) -> None:
    path = tmp_path / "empty.txt"
    path.write_text("  \n", encoding="utf-8")
    with pytest.raises(CalibrationError, match="empty"):
        sample_calibration(path, tok, num_sequences=1, seq_len=4)


def test_jsonl_source(tok: PreTrainedTokenizerFast, tmp_path: Path) -> None:
    path = tmp_path / "docs.jsonl"
    path.write_text(
        "".join(json.dumps({"text": line, "id": i}) + "\n" for i, line in enumerate(TEXT.splitlines()))
    )
    assert load_texts(path)[:2] == TEXT.splitlines()[:2]
    out = sample_calibration(str(path), tok, num_sequences=4, seq_len=64, seed=0)
    assert out.shape == (4, 64)


def test_jsonl_without_text_field(tok: PreTrainedTokenizerFast, tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"body": "hello"}) + "\n")
    with pytest.raises(CalibrationError, match='"text" field'):
        sample_calibration(path, tok, num_sequences=1, seq_len=4)


def test_dataset_source(tok: PreTrainedTokenizerFast) -> None:
    ds = datasets.Dataset.from_dict({"text": TEXT.splitlines(), "n": list(range(400))})
    out = sample_calibration(ds, tok, num_sequences=4, seq_len=64, seed=0)
    assert out.shape == (4, 64)
    assert "400 rows" in describe_source(ds)


def test_dataset_without_text_column(tok: PreTrainedTokenizerFast) -> None:
    ds = datasets.Dataset.from_dict({"label": [1, 2, 3]})
    with pytest.raises(CalibrationError, match="rename"):
        sample_calibration(ds, tok, num_sequences=1, seq_len=4)


def test_not_text_sources(tok: PreTrainedTokenizerFast, tmp_path: Path) -> None:
    binary = tmp_path / "blob.txt"
    binary.write_bytes(b"\xff\xfe\x00\x81" * 100)
    with pytest.raises(CalibrationError, match="UTF-8"):
        sample_calibration(binary, tok, num_sequences=1, seq_len=4)
    with pytest.raises(CalibrationError, match="Unsupported"):
        sample_calibration(123, tok)  # type: ignore[arg-type]
    with pytest.raises(CalibrationError, match="not found"):
        sample_calibration(tmp_path / "missing.txt", tok)


def test_bad_sizes_are_config_errors(tok: PreTrainedTokenizerFast, txt_file: Path) -> None:
    with pytest.raises(ConfigError):
        sample_calibration(txt_file, tok, num_sequences=0)
    with pytest.raises(ConfigError):
        sample_calibration(txt_file, tok, seq_len=1)


def test_hub_name_offline_gives_clear_error(
    tok: PreTrainedTokenizerFast, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Never touch the Hub in tests: make load_dataset fail the way it does offline.
    def offline(*args: object, **kwargs: object) -> None:
        raise ConnectionError("offline")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(CalibrationError, match="austen"):
        sample_calibration("someone/some-dataset", tok)


def test_hub_name_uses_train_split(tok: PreTrainedTokenizerFast, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[object, ...]] = []

    def fake(name: str, config: str | None = None, split: str | None = None) -> datasets.Dataset:
        calls.append((name, config, split))
        return datasets.Dataset.from_dict({"text": [TEXT]})

    monkeypatch.setattr(datasets, "load_dataset", fake)
    out = sample_calibration("wikitext:wikitext-2-raw-v1", tok, num_sequences=2, seq_len=32)
    assert out.shape == (2, 32)
    assert calls == [("wikitext", "wikitext-2-raw-v1", "train")]


def test_describe_source_is_stable(txt_file: Path) -> None:
    assert describe_source(txt_file) == describe_source(str(txt_file))
    assert "sha256:" in describe_source(txt_file)
    assert "persuasion" not in describe_source("austen")
    assert describe_source("org/name").startswith("hub dataset")


def test_austen_source_excludes_evaluation_book(tok: PreTrainedTokenizerFast) -> None:
    from hf_resize.data.austen import evaluation_text

    texts = load_texts("austen")
    persuasion_line = "Sir Walter Elliot, of Kellynch Hall"
    assert persuasion_line in evaluation_text()
    assert all(persuasion_line not in t for t in texts)
    assert "It is a truth universally acknowledged" in texts[0]
    out = sample_calibration("austen", tok, num_sequences=4, seq_len=128, seed=0)
    assert out.shape == (4, 128)
