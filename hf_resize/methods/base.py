"""Method configs, width targets and the method registry. Methods turn statistics into Plans; never edit modules."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from transformers import PreTrainedModel

from hf_resize.errors import ConfigError
from hf_resize.groups import GROUP_KINDS, NeuronGroup
from hf_resize.plan import Plan

HEAD_MODES = ("query_per_group", "kv_groups")
TARGETS = ("width", "body")


@dataclass
class MethodConfig:
    """Options every method shares.

    Args:
        ratio: fraction to remove, in [0, 1). With ``target="width"`` it is the fraction of each selected group's
            width; with ``target="body"`` it is the fraction of body parameters (all parameters minus embeddings),
            reached by one uniform width ratio over the selected groups.
        groups: which widths to reduce: any of ``"mlp"``, ``"heads"``, ``"hidden"``.
        target: ``"width"`` or ``"body"`` (see ``ratio``).
        head_mode: ``"query_per_group"`` removes the same number of query heads from every KV group;
            ``"kv_groups"`` removes whole KV groups with their query heads.
        seed: seed for anything random in the method.
        round_to: MLP widths kept are rounded to a multiple of this (e.g. 64: matrix kernels run faster on
            aligned shapes); 1 keeps the exact width. Heads are whole units already.
    """

    method_name: ClassVar[str] = ""
    needs: ClassVar[frozenset[str]] = frozenset()  # calibration statistics the method reads
    min_calibration_tokens: ClassVar[int] = 0

    ratio: float = 0.2
    groups: tuple[str, ...] = ("mlp",)
    target: str = "width"
    head_mode: str = "query_per_group"
    seed: int = 0
    round_to: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.groups, str):
            self.groups = tuple(g.strip() for g in self.groups.split(",") if g.strip())
        if not isinstance(self.groups, (list, tuple, set, frozenset)):
            raise ConfigError(f"groups must be a comma-separated string or a list such as ('mlp', 'heads'); got {self.groups!r}.")
        self.groups = tuple(self.groups)
        if isinstance(self.round_to, bool) or not isinstance(self.round_to, int) or self.round_to < 1:
            raise ConfigError(f"round_to must be a positive integer (1 = no rounding, e.g. 64); got {self.round_to!r}.")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ConfigError(f"seed must be an integer; got {self.seed!r}.")
        if not isinstance(self.ratio, (int, float)) or not 0.0 <= float(self.ratio) < 1.0:
            raise ConfigError(f"ratio must be in [0, 1), got {self.ratio!r}: 0.25 removes a quarter.")
        self.ratio = float(self.ratio)
        unknown = [g for g in self.groups if g not in GROUP_KINDS]
        if unknown or not self.groups:
            raise ConfigError(f"groups must be a non-empty subset of {', '.join(GROUP_KINDS)}; got {self.groups!r}.")
        if self.target not in TARGETS:
            raise ConfigError(f"target must be one of {', '.join(TARGETS)}; got {self.target!r}.")
        if self.head_mode not in HEAD_MODES:
            raise ConfigError(f"head_mode must be one of {', '.join(HEAD_MODES)}; got {self.head_mode!r}.")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> MethodConfig:
        """Build from a dict, rejecting keys the config does not have."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"{cls.__name__} has no option(s) {', '.join(unknown)}; valid: {', '.join(sorted(names))}.")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method_name, **dataclasses.asdict(self)}


def require_choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    """ConfigError naming the allowed values unless ``value`` is one of them."""
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}; got {value!r}.")


def require_number(name: str, value: object, low: float, example: str, strict: bool = False) -> float:
    """``value`` as a float if it is a number >= ``low`` (> with ``strict``); a ConfigError with an example if not."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and (value > low if strict else value >= low)
    if not ok:
        raise ConfigError(f"{name} must be a number {'>' if strict else '>='} {low:g} (e.g. {example}); got {value!r}.")
    return float(value)


def require_int(name: str, value: object, example: str, minimum: int = 1) -> int:
    """``value`` if it is an integer >= ``minimum`` (not a bool); a ConfigError with an example if not."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum} (e.g. {example}); got {value!r}.")
    return value


Planner = Callable[[PreTrainedModel, MethodConfig, dict[str, float], dict], Plan]


@dataclass(frozen=True)
class MethodSpec:
    name: str
    config_class: type[MethodConfig]
    planner: Planner
    description: str = ""
    extra: dict = field(default_factory=dict)
    #: Optional ``check(model, config)`` raising ConfigError for a model the method cannot handle; runs before
    #: any calibration work.
    check: Callable[[PreTrainedModel, MethodConfig], None] | None = None


_METHODS: dict[str, MethodSpec] = {}


def register_method(spec: MethodSpec) -> MethodSpec:
    _METHODS[spec.name] = spec
    return spec


def available_methods() -> list[str]:
    return sorted(_METHODS)


def get_method(name_or_config: str | MethodConfig) -> MethodSpec:
    name = name_or_config if isinstance(name_or_config, str) else name_or_config.method_name
    if name not in _METHODS:
        raise ConfigError(f"Unknown method {name!r}. Available: {', '.join(available_methods())}.")
    return _METHODS[name]


def kept_units(group: NeuronGroup, ratio: float, head_mode: str = "query_per_group") -> tuple[int, int | None]:
    """How many units (and KV heads, for head groups) remain after removing ``ratio`` of ``group``.

    Rounds to the group's granularity and refuses a ratio that granularity cannot meet.
    """
    if group.kind == "heads":
        if head_mode == "kv_groups":
            kv = round(group.kv_width * (1 - ratio))
            units, total, what = kv * group.queries_per_kv, group.kv_width, f"{group.kv_width} KV groups"
            kept, kv_kept = kv, kv
        else:
            per_group = round(group.queries_per_kv * (1 - ratio))
            units, total, what = per_group * group.kv_width, group.queries_per_kv, f"{group.queries_per_kv} query heads per KV group"
            kept, kv_kept = per_group, group.kv_width
    else:
        units = round(group.width * (1 - ratio))
        total, what, kept, kv_kept = group.width, f"{group.width} units", units, None
    if kept < 1:
        raise ConfigError(f"ratio {ratio:g} would remove all {what} of {group.name}; use a smaller ratio.")
    if ratio > 0 and kept == total:
        raise ConfigError(
            f"ratio {ratio:g} removes nothing from {group.name} ({what}): the granularity cannot meet it. "
            f"Use a ratio of at least {1 / (2 * total):.3g}, or leave {group.kind!r} out of groups."
        )
    return units, kv_kept
