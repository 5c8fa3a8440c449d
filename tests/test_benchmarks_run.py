"""The benchmark runner on a tiny model: real measurements end to end, table and plots written."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from benchmarks.run import main


@pytest.fixture
def tiny_folder(tmp_path):
    from hf_resize.data.models import resolve_builtin

    tokenizer = AutoTokenizer.from_pretrained(resolve_builtin("smollm2-135m"))
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    LlamaForCausalLM(config).save_pretrained(tmp_path / "tiny")
    tokenizer.save_pretrained(tmp_path / "tiny")
    return tmp_path / "tiny"


def test_runner_writes_json_table_and_plots(tiny_folder, tmp_path):
    config = tmp_path / "bench.yaml"
    config.write_text(
        f"name: tiny\nmodel: {tiny_folder}\ncalibration: {{source: austen, num_samples: 8, seq_len: 64}}\n"
        "evaluation: {windows: 1}\nspeed: {prompt_len: 16, new_tokens: 2, repeats: 1}\n"
        "runs:\n  - {method: magnitude, groups: [mlp], target: width, ratios: [0.25, 0.5]}\n"
    )
    assert main([str(config), "--out", str(tmp_path / "results")]) == 0
    result = json.loads((tmp_path / "results" / "tiny.json").read_text())
    rows = result["rows"]
    assert [r["label"] for r in rows] == ["dense", "magnitude", "magnitude"]
    assert rows[1]["parameters"]["body"] > rows[2]["parameters"]["body"]
    assert all(r["perplexity"] > 1 and r["prefill_tokens_per_s"] > 0 for r in rows)
    assert "benchmarks.run" in result["environment"]["command"]
    table = (tmp_path / "results" / "tiny.md").read_text()
    assert table.count("| magnitude |") == 2
    assert (tmp_path / "results" / "tiny_perplexity.png").stat().st_size > 1000


def test_runner_scores_offline_tasks_when_configured(tiny_folder, tmp_path):
    config = tmp_path / "bench.yaml"
    config.write_text(
        f"name: tasks\nmodel: {tiny_folder}\ncalibration: {{source: austen, num_samples: 8, seq_len: 64}}\n"
        "evaluation: {windows: 1}\ntasks: {names: austen_persuasion_lastword, limit: 3}\n"
        "runs:\n  - {method: magnitude, groups: [mlp], target: width, ratios: [0.5]}\n"
        "  - {method: magnitude, groups: [mlp], target: width, ratios: [0.25], tasks: false, label: untasked}\n"
    )
    assert main([str(config), "--out", str(tmp_path / "results")]) == 0
    rows = json.loads((tmp_path / "results" / "tasks.json").read_text())["rows"]
    assert all(0 <= r["tasks"]["austen_persuasion_lastword"]["acc"] <= 1 for r in rows[:2])
    assert "tasks" not in rows[2] and "prefill_tokens_per_s" not in rows[0]
    table = (tmp_path / "results" / "tasks.md").read_text()
    assert "last-word acc" in table and "| untasked | 0.25 |" in table and "prefill" not in table
