"""Shared helpers for the reliability tests (bad input, interruption, determinism, numerics)."""

from __future__ import annotations

import hashlib
from pathlib import Path


def word_tokenizer():
    """A word-level tokenizer inside the tiny models' 97 ids (words a..z; anything else is [UNK])."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[UNK]": 0, **{chr(97 + i): i + 1 for i in range(26)}}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="[UNK]", bos_token="[UNK]", eos_token="[UNK]")


def file_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file in ``folder`` (by relative name)."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(folder).iterdir()) if p.is_file()}


def run_cli_with_env(env: dict[str, str], argv: list[str]) -> int:
    """``hf_resize.cli.main(argv)`` after setting ``env`` (for forked children, which keep the server's env)."""
    import os

    os.environ.update(env)
    from hf_resize.cli import main

    return main(argv)
