"""Wanda-sp: activation-aware structured pruning, optionally with a least-squares refit of the consumer."""

from hf_resize.methods.wanda_sp.method import WandaSPConfig, least_squares_refit, wanda_sp_plan

__all__ = ["WandaSPConfig", "least_squares_refit", "wanda_sp_plan"]
