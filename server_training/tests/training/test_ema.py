"""The average of the weights: decay 0 is the weights themselves, the warm-up's first step by hand, convergence to
weights that stop moving, buffers copied rather than averaged."""

import itertools

import pytest
import torch
from torch import nn

from covidal.training.ema import WeightAverage, warmed_up_decay


def linear(value: float) -> nn.Linear:
    layer = nn.Linear(2, 1)
    with torch.no_grad():
        layer.weight.fill_(value)
        layer.bias.fill_(value)
    return layer


def test_decay_zero_is_the_weights_themselves():
    network = linear(1.0)
    average = WeightAverage(network, decay=0.0)
    for step, value in enumerate((3.0, -2.0, 5.5), start=1):
        with torch.no_grad():
            network.weight.fill_(value)
        average.update(network, step)
        torch.testing.assert_close(average.module.weight, network.weight, rtol=0, atol=0)


def test_first_update_follows_the_warm_up_by_hand():
    network = linear(0.0)
    average = WeightAverage(network, decay=0.99)
    with torch.no_grad():
        network.weight.fill_(11.0)
    average.update(network, step=1)
    # d_1 = min(0.99, 2 / 11): the average moves 9/11 of the way from 0 to 11.
    assert warmed_up_decay(0.99, 1) == pytest.approx(2 / 11)
    torch.testing.assert_close(average.module.weight, torch.full((1, 2), 9.0))


@pytest.mark.parametrize("decay", [0.9, 0.99])
def test_converges_to_weights_that_stop_moving(decay):
    network = linear(1.0).double()  # float64 and a target of 0, so the gap is the average itself, exact
    average = WeightAverage(network, decay)
    with torch.no_grad():
        network.weight.fill_(0.0)
    gaps = []
    for step in range(1, 1001):
        average.update(network, step)
        gaps.append(float(average.module.weight.abs().max()))
    assert all(later < earlier for earlier, later in itertools.pairwise(gaps))  # always closer
    assert gaps[-1] < 1e-6
    # Past the warm-up (step 80 at decay 0.9, 890 at 0.99) the gap shrinks by exactly ``decay`` per step.
    assert gaps[-1] / gaps[-2] == pytest.approx(decay, rel=1e-9)
    assert gaps[0] == pytest.approx(2 / 11)  # the warm-up's first step


def test_buffers_are_copied_not_averaged():
    network = nn.BatchNorm2d(3)
    average = WeightAverage(network, decay=0.99)
    network.train()(torch.randn(4, 3, 5, 5) * 7 + 3)  # moves the running statistics
    average.update(network, step=50)
    torch.testing.assert_close(average.module.running_mean, network.running_mean, rtol=0, atol=0)
    torch.testing.assert_close(average.module.running_var, network.running_var, rtol=0, atol=0)


def test_the_average_is_a_separate_frozen_copy():
    network = linear(1.0)
    average = WeightAverage(network, decay=0.5)
    assert not average.module.training
    assert all(not parameter.requires_grad for parameter in average.module.parameters())
    with torch.no_grad():
        network.weight.fill_(4.0)
    assert float(average.module.weight[0, 0]) == 1.0  # not the same tensors
