"""Pixel-wise uncertainty from Monte-Carlo head dropout: sampling and the measures that rank it."""

from covidal.uncertainty.mc_dropout import (
    MCSamples,
    mc_probabilities_cached,
    mc_probabilities_naive,
    sample_dropout_masks,
)
from covidal.uncertainty.measures import bald, least_confidence, margin, predictive_entropy

__all__ = [
    "MCSamples",
    "bald",
    "least_confidence",
    "margin",
    "mc_probabilities_cached",
    "mc_probabilities_naive",
    "predictive_entropy",
    "sample_dropout_masks",
]
