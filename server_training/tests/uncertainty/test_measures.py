"""Tests for covidal.uncertainty.measures on hand-made Monte-Carlo probability maps."""

import math

import pytest
import torch

from covidal.uncertainty.measures import bald, least_confidence, margin, predictive_entropy, vote_entropy

LN2 = math.log(2.0)
LN3 = math.log(3.0)
MEASURES = [predictive_entropy, bald, least_confidence, margin, vote_entropy]


def one_pixel(*samples: tuple[float, ...]) -> torch.Tensor:
    """``[T, 1, C, 1, 1]`` from T per-sample class distributions of a single pixel."""
    return torch.tensor(samples, dtype=torch.float32)[:, None, :, None, None]


def binary_entropy(p: float) -> float:
    return -(p * math.log(p) + (1 - p) * math.log(1 - p))


# (samples, entropy, bald, least confidence, margin), computed by hand.
TABLE = [
    pytest.param([(0.5, 0.5), (0.5, 0.5)], LN2, 0.0, 0.5, 1.0, id="uniform-agreeing"),
    pytest.param([(1.0, 0.0), (1.0, 0.0)], 0.0, 0.0, 0.0, 0.0, id="confident-agreeing"),
    pytest.param([(0.0, 1.0), (0.0, 1.0)], 0.0, 0.0, 0.0, 0.0, id="confident-foreground"),
    pytest.param([(1.0, 0.0), (0.0, 1.0)], LN2, LN2, 0.5, 1.0, id="confident-disagreeing"),
    pytest.param(
        [(0.8, 0.2), (0.6, 0.4)],
        binary_entropy(0.7),
        binary_entropy(0.7) - (binary_entropy(0.8) + binary_entropy(0.6)) / 2,
        0.3,
        1.0 - (0.7 - 0.3),
        id="mild-disagreement",
    ),
    pytest.param([(1.0, 0.0, 0.0), (0.0, 1.0, 0.0)], LN2, LN2, 0.5, 1.0, id="3class-disagree"),
    pytest.param([(1 / 3, 1 / 3, 1 / 3)] * 2, LN3, 0.0, 2 / 3, 1.0, id="3class-uniform"),
    pytest.param(
        [(0.5, 0.3, 0.2)] * 2,
        -(0.5 * math.log(0.5) + 0.3 * math.log(0.3) + 0.2 * math.log(0.2)),
        0.0,
        0.5,
        1.0 - (0.5 - 0.3),
        id="3class-agreeing",
    ),
]


@pytest.mark.parametrize(("samples", "entropy", "mutual", "least", "narrow"), TABLE)
def test_measures_hand_computed(samples, entropy, mutual, least, narrow):
    probs = one_pixel(*samples)
    assert predictive_entropy(probs).item() == pytest.approx(entropy, abs=1e-6)
    assert bald(probs).item() == pytest.approx(mutual, abs=1e-6)
    assert least_confidence(probs).item() == pytest.approx(least, abs=1e-6)
    assert margin(probs).item() == pytest.approx(narrow, abs=1e-6)


def test_pixels_are_scored_independently():
    # 1x2 image: left pixel disagreeing samples, right pixel confident agreeing samples.
    probs = torch.tensor(
        [
            [[[1.0, 1.0]], [[0.0, 0.0]]],  # sample 0: class 0 at both pixels
            [[[0.0, 1.0]], [[1.0, 0.0]]],  # sample 1: class 1 left, class 0 right
        ]
    )[:, None]  # [T=2, B=1, C=2, H=1, W=2]
    torch.testing.assert_close(predictive_entropy(probs), torch.tensor([[[LN2, 0.0]]]))
    torch.testing.assert_close(bald(probs), torch.tensor([[[LN2, 0.0]]]))
    torch.testing.assert_close(least_confidence(probs), torch.tensor([[[0.5, 0.0]]]))
    torch.testing.assert_close(margin(probs), torch.tensor([[[1.0, 0.0]]]))


@pytest.mark.parametrize("measure", MEASURES)
def test_output_shape_is_batch_height_width(measure):
    probs = torch.randn(3, 2, 4, 5, 6, generator=torch.Generator().manual_seed(0)).softmax(dim=2)
    assert measure(probs).shape == (2, 5, 6)


def test_ordering_invariants_on_random_samples():
    num_classes = 3
    logits = torch.randn(4, 2, num_classes, 8, 8, generator=torch.Generator().manual_seed(1)) * 3
    probs = logits.softmax(dim=2)
    entropy, mutual = predictive_entropy(probs), bald(probs)
    assert torch.all(mutual >= 0)
    assert torch.all(mutual <= entropy + 1e-6)
    assert torch.all(entropy <= math.log(num_classes) + 1e-6)
    for bounded in (least_confidence(probs), margin(probs)):
        assert torch.all((bounded >= 0) & (bounded <= 1))


def test_single_sample_has_zero_bald():
    probs = torch.randn(1, 2, 2, 4, 4, generator=torch.Generator().manual_seed(2)).softmax(dim=2)
    assert torch.all(bald(probs) == 0)


def test_low_precision_input_is_accepted():
    probs = one_pixel((0.5, 0.5), (0.5, 0.5)).to(torch.bfloat16)
    assert predictive_entropy(probs).item() == pytest.approx(LN2, abs=1e-6)
    assert predictive_entropy(probs).dtype == torch.float32


@pytest.mark.parametrize("measure", MEASURES)
@pytest.mark.parametrize(
    ("probs", "message"),
    [
        pytest.param(torch.full((2, 2, 4, 4), 0.5), "5 dims", id="4-dims"),
        pytest.param(torch.full((2, 1, 2, 1, 1, 1), 0.5), "5 dims", id="6-dims"),
        pytest.param(torch.ones(2, 1, 1, 1, 1), "at least 2 classes", id="one-class"),
        pytest.param(one_pixel((0.6, 0.6), (0.5, 0.5)), "sum to 1", id="sum-1.2"),
        pytest.param(one_pixel((2.0, -1.5), (0.5, 0.5)), "sum to 1", id="logits"),
        pytest.param(one_pixel((0.5, 0.502), (0.5, 0.5)), "sum to 1", id="just-over-tolerance"),
        pytest.param(one_pixel((float("nan"), 0.5), (0.5, 0.5)), "sum to 1", id="nan"),
    ],
)
def test_bad_input_raises(measure, probs, message):
    with pytest.raises(ValueError, match=message):
        measure(probs)


def test_sum_within_tolerance_is_accepted():
    probs = one_pixel((0.5, 0.5009), (0.5, 0.5))
    assert predictive_entropy(probs).shape == (1, 1, 1)


def votes(*winners: int, classes: int = 2, confidence: float = 0.9) -> torch.Tensor:
    """``[T, 1, C, 1, 1]`` samples, member t voting for class ``winners[t]`` with probability ``confidence``."""
    probs = torch.full((len(winners), 1, classes, 1, 1), (1 - confidence) / (classes - 1))
    for member, winner in enumerate(winners):
        probs[member, 0, winner] = confidence
    return probs


@pytest.mark.parametrize(
    ("winners", "classes", "expected"),
    [
        ((0, 0, 0, 0), 2, 0.0),  # every member agrees: 0, however unsure each one is
        ((1, 1, 1), 2, 0.0),
        ((0, 1), 2, LN2),  # a split vote: the maximum for two classes
        ((0, 0, 1, 1), 2, LN2),
        ((0, 0, 0, 1), 2, -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))),
        ((0, 1, 2), 3, math.log(3)),
        ((2, 2, 1, 0, 0, 0), 3, -sum(share * math.log(share) for share in (3 / 6, 1 / 6, 2 / 6))),
    ],
)
def test_vote_entropy_is_the_entropy_of_the_vote_shares(winners, classes, expected):
    assert vote_entropy(votes(*winners, classes=classes)).item() == pytest.approx(expected, abs=1e-6)


def test_vote_entropy_ignores_confidence_when_the_votes_agree():
    """Unlike predictive entropy, members that all lean the same way (p = 0.55) give 0."""
    unsure = votes(0, 0, 0, confidence=0.55)
    assert vote_entropy(unsure).item() == 0.0 and predictive_entropy(unsure).item() > 0.6
