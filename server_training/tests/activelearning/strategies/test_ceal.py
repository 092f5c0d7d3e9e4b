"""CEAL: entropy queries, and the confident pixels as pseudo-labels whose threshold decays per cycle."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from strategy_testing import images, tiny_model

from covidal.activelearning.strategies import StrategyName, build_strategy
from covidal.activelearning.strategies.ceal import Ceal
from covidal.activelearning.strategies.params import StrategyParams
from covidal.uncertainty.measures import predictive_entropy


@pytest.mark.parametrize(
    ("delta", "decay", "cycle", "threshold"),
    [(0.99, 0.005, 1, 0.99), (0.99, 0.005, 3, 0.98), (0.9, 0.1, 4, 0.6), (0.9, 0.1, 9, 0.5), (0.8, 0.0, 50, 0.8)],
)
def test_the_threshold_decays_per_cycle_and_never_below_one_half(delta, decay, cycle, threshold):
    assert Ceal(delta, decay, 1.0).threshold(cycle) == pytest.approx(threshold)


def confident_model(background_logit: float):
    """A model whose head predicts background with softmax probability sigmoid(2 * logit) everywhere."""
    model = tiny_model()
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor([background_logit, -background_logit]))
    return model


def test_pixels_above_the_threshold_become_pseudo_labels_and_the_rest_stay_unknown(single_thread_torch):
    pool = images()
    sure = Ceal(0.95, 0.0, 1.0).pseudo_labels(confident_model(3.0), pool, 1, seed=0)  # p(background) = 0.9975
    assert sure.labels.shape == (4, 32, 32) and np.all(sure.labels == 0)
    assert sure.record() == {"cycle": 1, "threshold": 0.95, "seed": sure.seed, "pixels": 4 * 32 * 32, "slices": 4}
    unsure = Ceal(0.999, 0.0, 1.0).pseudo_labels(confident_model(3.0), pool, 1, seed=0)
    assert np.all(unsure.labels == -1) and unsure.pixels == 0
    decayed = Ceal(0.999, 0.001, 1.0).pseudo_labels(confident_model(3.0), pool, 3, seed=0)
    assert np.all(decayed.labels == 0) and decayed.threshold == pytest.approx(0.997)


def test_the_weight_keeps_a_seeded_share_of_the_confident_pixels(single_thread_torch):
    labels = Ceal(0.95, 0.0, 0.3).pseudo_labels(confident_model(3.0), images(), 1, seed=4).labels
    assert (labels == 0).mean() == pytest.approx(0.3, abs=0.03)
    again = Ceal(0.95, 0.0, 0.3).pseudo_labels(confident_model(3.0), images(), 1, 4).labels
    np.testing.assert_array_equal(labels, again)
    other_cycle = Ceal(0.95, 0.0, 0.3).pseudo_labels(confident_model(3.0), images(), 2, 4).labels
    assert not np.array_equal(labels, other_cycle)  # drawn afresh each cycle


def test_ceal_queries_by_entropy_and_only_ceal_pseudo_labels():
    ceal = build_strategy("ceal", StrategyParams(delta=0.9))
    assert ceal.measure is predictive_entropy and ceal.delta == 0.9 and ceal.adds_pseudo_labels
    assert not any(build_strategy(name).adds_pseudo_labels for name in StrategyName if name != "ceal")
    assert build_strategy("entropy").pseudo_labels(tiny_model(), images(), 1, 0) is None
