"""Model cards: Hub metadata that validates offline and round-trips; the body renders widths, sizes, scores, plot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import tiny_model
from huggingface_hub import ModelCard, ModelCardData, metadata_load

import hf_resize
from hf_resize.errors import HFResizeError
from hf_resize.groups import neuron_groups
from hf_resize.plan import GroupPlan, Plan
from hf_resize.publish import (
    HUB_BASE_MODEL_RELATIONS,
    build_model_card,
    template_path,
    validate_card_metadata,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def uniform_dir(tmp_path_factory) -> Path:
    model = tiny_model("llama")
    hf_resize.resize(model, hf_resize.MagnitudeConfig(ratio=0.25, groups=("mlp", "heads")))
    folder = tmp_path_factory.mktemp("card") / "uniform"
    return hf_resize.save_resized(model, folder, summary={**model.hf_resize_info, "source": "smollm2-135m"})


def test_metadata_validates_and_round_trips(uniform_dir, tmp_path):
    card = build_model_card(uniform_dir, repo_id="me/tiny-magnitude")
    meta = card.data.to_dict()
    assert meta == {
        "base_model": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "base_model_relation": "finetune",  # the Hub has no "pruned" relation; tagged pruned instead
        "license": "apache-2.0",
        "library_name": "transformers",
        "pipeline_tag": "text-generation",
        "tags": ["hf_resize", "pruned", "magnitude"],
    }
    assert validate_card_metadata(card) == meta
    card.save(tmp_path / "README.md")
    assert metadata_load(tmp_path / "README.md") == meta  # the YAML header parses back unchanged
    loaded = ModelCard.load(tmp_path / "README.md")
    assert loaded.data.to_dict() == meta and ModelCardData(**meta).to_dict() == meta
    assert loaded.text == card.text


def test_builtin_gemma_inherits_its_license(uniform_dir):
    summary = json.loads((uniform_dir / "hf_resize.json").read_text()) | {"source": "gemma3-270m"}
    card = build_model_card(uniform_dir, summary=summary)
    assert card.data.base_model == "google/gemma-3-270m" and card.data.license == "gemma"
    assert "Gemma Terms of Use" in card.text


def test_relation_the_hub_rejects_is_refused(uniform_dir):
    assert "pruned" not in HUB_BASE_MODEL_RELATIONS
    with pytest.raises(HFResizeError, match="finetune"):
        build_model_card(uniform_dir, base_model_relation="pruned")
    bad = "---\nbase_model: a/b\nbase_model_relation: pruned\n---\n# x\n"
    with pytest.raises(HFResizeError, match="base_model_relation"):
        validate_card_metadata(bad)
    with pytest.raises(HFResizeError, match="base_model"):
        validate_card_metadata("---\nbase_model: not a repo id\n---\n# x\n")
    assert "base_model_relation" not in build_model_card(uniform_dir, base_model_relation=None).data.to_dict()


def _per_layer(tmp_path: Path) -> tuple[Path, Path]:
    """A dense source folder with its own README license, and a per-layer-width model resized from it."""
    model = tiny_model("llama")
    base = tmp_path / "base"
    model.save_pretrained(base)
    (base / "README.md").write_text("---\nlicense: mit\n---\n# base\n")
    groups = neuron_groups(model, ("mlp",))
    apply = [GroupPlan(g, keep=torch.arange(g.width - 8 * (g.layer + 1))) for g in groups]
    hf_resize.apply_plan(model, Plan("test", apply))
    summary = {"method": "magnitude", "config": {"ratio": 0.2}, "source": str(base),
               "parameters_before": {"total": 100, "embedding": 20, "body": 80},
               "parameters_after": hf_resize.parameter_counts(model).as_dict(),
               "demo": {"dense": {"perplexity": 31.8, "prefill_tokens_per_s": 1000.0},
                        "resized": {"perplexity": 40.4, "prefill_tokens_per_s": 1300.0}}}
    return base, hf_resize.save_resized(model, tmp_path / "out", summary=summary)


def test_body_renders_widths_sizes_scores_plot_and_loading(tmp_path):
    base, folder = _per_layer(tmp_path)
    plain = build_model_card(base)  # a folder without hf_resize.json still gets a valid (sparser) card
    assert plain.data.tags == ["hf_resize", "pruned"] and "| parameters, total | — | 35,616 |" in plain.text
    (tmp_path / "curve.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    evaluation = {"before": {"austen_lastword": {"acc": 0.5}}, "after": {"austen_lastword": {"acc": 0.4}},
                  "note": "Scored on Persuasion."}
    card = build_model_card(folder, repo_id="me/tiny-per-layer", plot=tmp_path / "curve.png", evaluation=evaluation)
    text = card.text
    assert card.data.license == "mit" and card.data.base_model is None  # a local source has no Hub id
    assert "| layer | MLP neurons | attention heads | KV heads |" in text
    assert "| 0 | 64 → 56 | 6 | 2 |" in text and "| 1 | 64 → 48 | 6 | 2 |" in text
    assert "Hidden (residual) width: 48" in text
    assert "| perplexity | 31.8 | 40.4 | +27.0% |" in text
    assert "| austen_lastword/acc | 0.5 | 0.4 | -20.0% |" in text and "Scored on Persuasion." in text
    assert "| prefill (tokens/s) | 1,000 | 1,300 | 1.30× |" in text
    assert "| parameters, body | 80 |" in text
    assert "![" in text and "](curve.png)" in text
    assert 'from_pretrained("me/tiny-per-layer", trust_remote_code=True)' in text and "import hf_resize" in text
    assert "\n\n\n" not in text
    validate_card_metadata(card)


def test_card_from_in_memory_model_and_uniform_loading(uniform_dir):
    model = tiny_model("qwen2")
    hf_resize.resize(model, hf_resize.MagnitudeConfig(ratio=0.5, groups=("mlp",)))
    card = build_model_card(model, base_model="Qwen/Qwen2-0.5B", license="apache-2.0")
    assert card.data.base_model == "Qwen/Qwen2-0.5B" and "magnitude" in card.data.tags
    assert "stock `qwen2` checkpoint" in card.text and "trust_remote_code" not in card.text
    assert "| 0 | 32 | 6 | 2 |" in card.text


def test_bad_plot_and_folder_are_clear_errors(uniform_dir, tmp_path):
    with pytest.raises(HFResizeError, match="png"):
        build_model_card(uniform_dir, plot=tmp_path / "nope.png")
    with pytest.raises(HFResizeError, match="config.json"):
        build_model_card(tmp_path)


def test_template_ships_with_the_package_and_top_level_folder_points_to_it():
    packaged = template_path()
    assert packaged.is_file() and packaged.read_text().startswith("---\n{{ card_data }}\n---")
    assert (ROOT / "model_cards" / "hf_resize_card.md").read_text() == packaged.read_text()
