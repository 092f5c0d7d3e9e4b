import numpy as np
import pytest
import torch

from covidal.activelearning.pool import Pool
from covidal.activelearning.scoring import score_pool
from covidal.data.grid import GridMapping
from covidal.data.slices import SliceRecord
from covidal.models.registry import ModelConfig, build_model
from covidal.regions.grid import RegionGrid
from covidal.strategies.entropy import EntropyStrategy
from covidal.strategies.random_regions import RandomRegions
from covidal.uncertainty.mc_dropout import mc_probabilities_naive, sample_dropout_masks
from covidal.uncertainty.measures import predictive_entropy


@pytest.fixture
def pool() -> Pool:
    rng = np.random.default_rng(0)
    shapes = [(40, 48), (33, 33), (40, 48)]
    records = [SliceRecord(str(i), rng.random(s, dtype=np.float32), np.zeros(s, np.uint8), str(i), None)
               for i, s in enumerate(shapes)]
    return Pool.build(records, 32)


@pytest.fixture
def model():
    torch.manual_seed(0)
    return build_model(ModelConfig(width=8, dropout=0.5))


@pytest.mark.parametrize("batch_size", [1, 2, 8])
def test_scores_are_naive_mc_entropy_mapped_to_native(pool, model, batch_size, single_thread_torch):
    indices = [2, 0, 1]
    scores = score_pool(model, pool, indices, EntropyStrategy(RegionGrid(4)), samples=5, seed=11, batch_size=batch_size)
    masks = sample_dropout_masks(model, 5, len(indices), 11)
    expected = predictive_entropy(mc_probabilities_naive(model, pool.images[indices], masks).probs).numpy()
    for position, (index, slice_scores) in enumerate(zip(indices, scores)):
        record = pool.records[index]
        assert slice_scores.key == (record.case_id, record.slice_id)
        assert slice_scores.pixel_scores.shape == record.image.shape
        rows, cols = GridMapping(record.image.shape, 32).native_to_train_indices()
        np.testing.assert_allclose(slice_scores.pixel_scores, expected[position][rows[:, None], cols[None, :]], atol=1e-5)
    assert max(s.pixel_scores.max() for s in scores) > 0


def test_random_strategy_does_not_run_the_model(pool):
    class Exploding(torch.nn.Module):
        classifier = None

    scores = score_pool(Exploding(), pool, [0, 1], RandomRegions(RegionGrid(4)), samples=5, seed=0)
    assert [s.pixel_scores.shape for s in scores] == [(40, 48), (33, 33)]
    assert all(not s.pixel_scores.any() for s in scores)


def test_nothing_to_score_gives_nothing(pool, model):
    assert score_pool(model, pool, [], EntropyStrategy(RegionGrid(4)), samples=3, seed=0) == []
