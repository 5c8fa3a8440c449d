"""lm-eval integration: evaluate() on a tiny random llama with the real SmolLM2 tokenizer, and the hf-resize
model type that resizes on the fly."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

import hf_resize
from hf_resize.errors import ConfigError, DataUnavailableError
from hf_resize.evaluation import tasks as T
from hf_resize.evaluation.harness import evaluate, format_scores

LIMIT = 2


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from hf_resize.data.models import resolve_builtin

    try:
        folder = resolve_builtin("smollm2-135m")
    except DataUnavailableError as exc:
        pytest.skip(f"SmolLM2 tokenizer unavailable: {exc}")
    return AutoTokenizer.from_pretrained(folder)


def _tiny(tokenizer):
    torch.manual_seed(0)
    config = AutoConfig.for_model(
        "llama", vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    return AutoModelForCausalLM.from_config(config).eval()


@pytest.fixture(scope="module")
def tiny_dir(tokenizer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny") / "model"
    _tiny(tokenizer).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _check_scores(scores: dict, tasks: tuple[str, ...]) -> None:
    assert set(scores) == {*tasks, "raw"}
    for task in tasks:
        assert scores[task] and all(math.isfinite(v) for v in scores[task].values()), scores[task]
    assert scores["raw"]["results"][tasks[0]]["sample_len"] <= LIMIT


def test_evaluate_in_memory_all_three(tokenizer) -> None:
    scores = hf_resize.evaluate(_tiny(tokenizer), tasks="austen", tokenizer=tokenizer, limit=1, max_length=1024)
    _check_scores(scores, T.TASKS)
    assert {"word_perplexity", "byte_perplexity", "bits_per_byte"} <= set(scores[T.PPL_TASK])
    assert {"acc", "perplexity"} <= set(scores[T.LASTWORD_TASK])
    assert {"acc", "acc_norm"} <= set(scores[T.NEXTSENT_TASK])
    assert scores[T.PPL_TASK]["byte_perplexity"] > 1.0
    table = format_scores(scores)
    assert T.NEXTSENT_TASK in table and "acc_norm" in table


def test_evaluate_folder(tiny_dir: Path) -> None:
    scores = evaluate(tiny_dir, tasks=[T.NEXTSENT_TASK], limit=LIMIT, max_length=256)
    _check_scores(scores, (T.NEXTSENT_TASK,))


def test_evaluate_rejects_bad_input(tokenizer) -> None:
    with pytest.raises(ConfigError, match="tokenizer"):
        evaluate(_tiny(tokenizer), tasks="austen")
    with pytest.raises(ConfigError, match="tasks"):
        evaluate(_tiny(tokenizer), tasks=" , ", tokenizer=tokenizer)
    with pytest.raises(ConfigError, match="PreTrainedModel"):
        evaluate(42, tokenizer=tokenizer)  # type: ignore[arg-type]


def test_hf_resize_model_type_resizes_on_the_fly(tiny_dir: Path) -> None:
    from lm_eval.api.registry import get_model

    get_model("hf")  # lm-eval's own types still resolve after our lazy registration
    cls = get_model("hf-resize")
    assert cls.__name__ == "HFResizeLM"
    lm = cls.create_from_arg_string(f"pretrained={tiny_dir},method=magnitude,ratio=0.25,groups=mlp", {"batch_size": 1})
    assert lm.model.config.intermediate_size == 48
    assert all(layer.mlp.down_proj.in_features == 48 for layer in lm.model.model.layers)
    assert lm.max_length == 1024
    assert lm.get_model_info()["hf_resize"]["method"] == "magnitude"
    scores = evaluate(lm, tasks=[T.LASTWORD_TASK], limit=LIMIT)
    _check_scores(scores, (T.LASTWORD_TASK,))
    dense = cls.create_from_arg_string(f"pretrained={tiny_dir},max_length=128")
    assert dense.model.config.intermediate_size == 64 and dense.max_length == 128
    with pytest.raises(ConfigError, match="method"):
        cls.create_from_arg_string(f"pretrained={tiny_dir},ratio=0.25")


def test_cli_eval_prints_task_table(tiny_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from hf_resize.cli import main

    code = main(["eval", str(tiny_dir), "--max-windows", "1", "--window", "128",
                 "--tasks", T.NEXTSENT_TASK, "--limit", str(LIMIT), "--max-length", "256"])
    out = capsys.readouterr().out
    assert code == 0
    assert "perplexity" in out and T.NEXTSENT_TASK in out and "acc_norm" in out
