"""Tests for covidal.uncertainty.mc_dropout: the cached path against the naive reference."""

import pytest
import torch

from covidal.models.slices.unet import UNet2D
from covidal.uncertainty.mc_dropout import (
    MCSamples,
    mc_probabilities_cached,
    mc_probabilities_naive,
    sample_dropout_masks,
)

SAMPLES = 5
BATCH = 2
SIZE = 32


def make_unet(dropout: float = 0.5) -> UNet2D:
    torch.manual_seed(0)
    return UNet2D(features=(4, 4, 8, 8, 16, 4), dropout=dropout)


def make_images() -> torch.Tensor:
    return torch.randn(BATCH, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(3))


def count_trunk_calls(model: UNet2D) -> list[int]:
    """Attach a forward hook to the trunk; the returned one-item list counts its calls."""
    calls = [0]

    def hook(*_):
        calls[0] += 1

    model.trunk.register_forward_hook(hook)
    return calls


@pytest.fixture(scope="module")
def model() -> UNet2D:
    return make_unet()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return make_images()


@pytest.fixture(scope="module")
def masks(model) -> torch.Tensor:
    # Fixed masks that include the edge cases: all channels dropped and all kept.
    masks = sample_dropout_masks(model, SAMPLES, BATCH, seed=7)
    masks[0, 0] = 0.0
    masks[1, 1] = 1.0
    return masks


def test_cached_matches_naive(model, images, masks):
    cached = mc_probabilities_cached(model, images, masks)
    naive = mc_probabilities_naive(model, images, masks)
    torch.testing.assert_close(cached.probs, naive.probs, atol=1e-5, rtol=0)
    assert torch.equal(cached.masks, masks) and torch.equal(naive.masks, masks)


@pytest.mark.parametrize("sampler", [mc_probabilities_cached, mc_probabilities_naive])
def test_probs_shape_dtype_and_sum(model, images, masks, sampler):
    result = sampler(model, images, masks)
    assert isinstance(result, MCSamples)
    assert result.probs.shape == (SAMPLES, BATCH, model.num_classes, SIZE, SIZE)
    assert result.probs.dtype == torch.float32
    torch.testing.assert_close(result.probs.sum(dim=2), torch.ones(SAMPLES, BATCH, SIZE, SIZE))


def test_samples_differ_where_masks_differ(model, images, masks):
    probs = mc_probabilities_cached(model, images, masks).probs
    assert not torch.allclose(probs[0, 0], probs[1, 0])


def test_cached_runs_trunk_once_naive_runs_it_per_sample(masks, images):
    model = make_unet()
    calls = count_trunk_calls(model)
    mc_probabilities_cached(model, images, masks)
    assert calls[0] == 1
    mc_probabilities_naive(model, images, masks)
    assert calls[0] == 1 + SAMPLES


def test_sampling_switches_model_to_eval(masks, images):
    model = make_unet()
    model.train()
    mc_probabilities_cached(model, images, masks)
    assert not model.training


def test_zero_dropout_gives_identical_samples(images):
    model = make_unet(dropout=0.0)
    masks = sample_dropout_masks(model, SAMPLES, BATCH, seed=0)
    assert torch.all(masks == 1)
    probs = mc_probabilities_cached(model, images, masks).probs
    for sample in probs[1:]:
        torch.testing.assert_close(sample, probs[0], atol=0, rtol=0)


def test_same_seed_same_masks_other_seed_other_masks(model):
    first = sample_dropout_masks(model, SAMPLES, BATCH, seed=11)
    again = sample_dropout_masks(model, SAMPLES, BATCH, seed=11)
    other = sample_dropout_masks(model, SAMPLES, BATCH, seed=12)
    assert first.shape == (SAMPLES, BATCH, model.feature_channels)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert set(first.unique().tolist()) <= {0.0, 1.0}


def test_masks_do_not_depend_on_global_seed(model):
    torch.manual_seed(1)
    first = sample_dropout_masks(model, SAMPLES, BATCH, seed=5)
    torch.manual_seed(2)
    assert torch.equal(first, sample_dropout_masks(model, SAMPLES, BATCH, seed=5))


@pytest.mark.parametrize(("samples", "batch"), [(0, 2), (-1, 2), (3, 0)])
def test_sample_dropout_masks_rejects_non_positive_counts(model, samples, batch):
    with pytest.raises(ValueError, match="must be >= 1"):
        sample_dropout_masks(model, samples, batch, seed=0)


@pytest.mark.parametrize("sampler", [mc_probabilities_cached, mc_probabilities_naive])
@pytest.mark.parametrize(
    "shape",
    [
        pytest.param((0, BATCH, 4), id="no-samples"),
        pytest.param((SAMPLES, BATCH + 1, 4), id="wrong-batch"),
        pytest.param((SAMPLES, BATCH, 5), id="wrong-channels"),
        pytest.param((BATCH, 4), id="2-dims"),
    ],
)
def test_mask_shape_mismatch_raises(model, images, sampler, shape):
    with pytest.raises(ValueError, match="masks must be"):
        sampler(model, images, torch.ones(shape))
