"""Width targets: granularity rounding, refusals, and body-parameter targets."""

from __future__ import annotations

import pytest
from conftest import tiny_model

import hf_resize
from hf_resize.errors import ConfigError
from hf_resize.groups import NeuronGroup
from hf_resize.methods.base import kept_units
from hf_resize.methods.targets import width_ratio


def test_kept_units_rounds_to_granularity():
    heads = NeuronGroup("heads", 0, 9, unit_size=64, kv_width=3)
    assert kept_units(heads, 0.34) == (6, 3)
    assert kept_units(heads, 0.34, "kv_groups") == (6, 2)
    assert kept_units(NeuronGroup("mlp", 0, 1536), 0.25) == (1152, None)


def test_unreachable_ratio_is_refused():
    heads = NeuronGroup("heads", 0, 9, unit_size=64, kv_width=3)
    with pytest.raises(ConfigError, match="granularity cannot meet"):
        kept_units(heads, 0.1)
    with pytest.raises(ConfigError, match="remove all"):
        kept_units(NeuronGroup("heads", 0, 2, 8, 2), 0.9)


def test_body_target_is_met_closely():
    model = tiny_model("llama", intermediate_size=256)
    config = hf_resize.MagnitudeConfig(ratio=0.2, groups=("mlp",), target="body")
    ratio = width_ratio(model, config)
    before = hf_resize.parameter_counts(model).body
    hf_resize.resize(model, config)
    after = hf_resize.parameter_counts(model).body
    assert abs((before - after) / before - 0.2) < 0.01
    assert ratio > 0.2  # MLP alone must lose more than 20% of its width


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, "a"])
def test_ratio_outside_range(bad):
    with pytest.raises(ConfigError, match=r"\[0, 1\)"):
        hf_resize.MagnitudeConfig(ratio=bad)


def test_unknown_options_are_refused():
    with pytest.raises(ConfigError, match="no option"):
        hf_resize.MagnitudeConfig.from_dict({"ratio": 0.1, "ratioo": 2})
    with pytest.raises(ConfigError, match="groups"):
        hf_resize.MagnitudeConfig(groups=("mlp", "experts"))


def test_hidden_width_rounds_to_head_multiple():
    from hf_resize.methods.targets import planned_widths

    model = tiny_model("llama", hidden_size=60, num_attention_heads=6)
    widths = planned_widths(model, hf_resize.MagnitudeConfig(ratio=0.34, groups=("hidden",)))
    assert widths["hidden"][0] % 6 == 0 and widths["hidden"][0] == 36
    widths = planned_widths(model, hf_resize.MagnitudeConfig(ratio=0.34, groups=("hidden", "heads")))
    assert widths["hidden"][0] % 4 == 0


def test_round_to_gives_aligned_mlp_widths_and_still_meets_the_body_target():
    from hf_resize.methods.targets import mlp_kept, planned_widths

    assert mlp_kept(NeuronGroup("mlp", 0, 1536), 0.25, 64) == 1152
    assert mlp_kept(NeuronGroup("mlp", 0, 1536), 0.2, 64) == 1216  # 1228.8 -> nearest multiple of 64
    model = tiny_model("llama", intermediate_size=256)
    config = hf_resize.MagnitudeConfig(ratio=0.2, groups=("mlp",), target="body", round_to=32)
    widths = planned_widths(model, config)
    assert all(units % 32 == 0 for name, (units, _) in widths.items() if name.startswith("mlp"))
    before = hf_resize.parameter_counts(model).body
    hf_resize.resize(model, config)
    assert abs((before - hf_resize.parameter_counts(model).body) / before - 0.2) < 0.05
    assert model.config.intermediate_size % 32 == 0


@pytest.mark.parametrize("bad", [0, -64, 1.5, True])
def test_round_to_must_be_a_positive_integer(bad):
    with pytest.raises(ConfigError, match="round_to must be a positive integer"):
        hf_resize.MagnitudeConfig(round_to=bad)


def test_round_to_that_removes_nothing_is_refused():
    from hf_resize.methods.targets import mlp_kept

    with pytest.raises(ConfigError, match="removes nothing"):
        mlp_kept(NeuronGroup("mlp", 0, 64), 0.1, 64)
