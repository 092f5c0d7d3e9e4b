"""The strategies' parameters: one typed, validated record, saved with each simulated run and read from a
project's ``strategy_params`` setting by the service."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from covidal.validation import ConfigError, check_int, check_real, config_from_mapping


@dataclass(frozen=True)
class StrategyParams:
    """Parameters of the strategies that have any (each strategy reads its own).

    Attributes:
        beta: ``density``: informativeness times mean similarity to the unlabelled pool to this power, >= 0.
        delta: ``ceal``: the first cycle's pseudo-label threshold on the predicted class probability, in (0.5, 1).
        delta_decay: ``ceal``: how much the threshold falls per cycle, >= 0 (never below 0.5).
        pseudo_weight: ``ceal``: the share of the confident pixels that join the training (a seeded sample),
            so that they weigh that much against answered pixels, in (0, 1].
        top_k: ``suggestive``: K, the most disagreed-on regions the max-cover chooses the cycle's k from, >= 1
            (at least k are taken).
        committee: ``suggestive``: heads fitted on bootstrap resamples of the answered pixels, >= 2.
        head_steps: ``suggestive``: optimiser steps per head, >= 1.
        cost_min_answers: ``cereals``: answers with recorded effort needed before the cost model is fitted
            (before that, and while every answer cost the same, the cost is taken as equal), >= 2.
        vae_steps: ``vaal``: VAE and discriminator steps per cycle, >= 1.
        crop: ``vaal``: the side of the square each region is resized to for the VAE, a multiple of 4, >= 8.

    Raises:
        ConfigError: naming the value out of range.
    """

    beta: float = 1.0
    delta: float = 0.99
    delta_decay: float = 0.005
    pseudo_weight: float = 0.5
    top_k: int = 20
    committee: int = 5
    head_steps: int = 30
    cost_min_answers: int = 20
    vae_steps: int = 100
    crop: int = 16

    def __post_init__(self) -> None:
        check_real("beta", self.beta, minimum=0.0)
        check_real("delta", self.delta, above=0.5, below=1.0)
        check_real("delta_decay", self.delta_decay, minimum=0.0)
        check_real("pseudo_weight", self.pseudo_weight, above=0.0, maximum=1.0)
        check_int("top_k", self.top_k, minimum=1)
        check_int("committee", self.committee, minimum=2)
        check_int("head_steps", self.head_steps, minimum=1)
        check_int("cost_min_answers", self.cost_min_answers, minimum=2)
        check_int("vae_steps", self.vae_steps, minimum=1)
        check_int("crop", self.crop, minimum=8)
        if self.crop % 4:
            raise ConfigError(f"crop must be a multiple of 4, got {self.crop}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: object) -> StrategyParams:
        """Parameters from a JSON object; missing keys take their defaults.

        Raises:
            ConfigError: not an object, an unknown key, or a value out of range.
        """
        return config_from_mapping(cls, data, "strategy params")
