import numpy as np
import pytest
import torch

from covidal.regions.grid import RegionGrid, RegionId
from covidal.strategies.base import Reduction, ScoredRegion, SliceScores, Strategy

# K = 4 regions on a 4x4 slice: each region is a 2x2 quadrant.
QUADRANT_MAP = np.array(
    [
        [1, 2, 0, 0],
        [3, 4, 0, 8],
        [5, 5, 9, 9],
        [5, 5, 9, 1],
    ],
    dtype=float,
)


class PixelStrategy(Strategy):
    """The base pipeline with a trivial pixel score (mean foreground probability)."""

    def pixel_scores(self, probs: torch.Tensor) -> torch.Tensor:
        return probs.mean(dim=0)[:, 1]


def make_strategy(regions: int = 4, reduction: Reduction | str = Reduction.MAX) -> Strategy:
    return PixelStrategy(RegionGrid(regions), reduction)


def ids(selected: list[ScoredRegion]) -> list[tuple[str, str, int]]:
    return [(s.region.case, s.region.slice, s.region.region) for s in selected]


def constant_slice(case: str, slice_id: str, region_values: list[float]) -> SliceScores:
    """4x4 slice whose K=4 quadrants hold the given constant values."""
    quadrants = np.array(region_values, dtype=float).reshape(2, 2)
    return SliceScores(case, slice_id, np.kron(quadrants, np.ones((2, 2))))


@pytest.mark.parametrize(
    ("reduction", "expected"),
    [
        (Reduction.MAX, [4.0, 8.0, 5.0, 9.0]),
        (Reduction.MEAN, [2.5, 2.0, 5.0, 7.0]),
        ("mean", [2.5, 2.0, 5.0, 7.0]),
    ],
)
def test_region_scores_reduce_each_quadrant(reduction, expected):
    scored = make_strategy(reduction=reduction).region_scores(SliceScores("c", "3", QUADRANT_MAP))
    assert [s.region for s in scored] == [RegionId("c", "3", r) for r in range(4)]
    assert [s.score for s in scored] == pytest.approx(expected)


def test_region_mean_weighted_by_region_size_is_the_slice_mean_on_uneven_shapes():
    grid = RegionGrid(9)
    pixel_scores = np.random.default_rng(0).random((7, 11))
    scored = PixelStrategy(grid, Reduction.MEAN).region_scores(SliceScores("c", "0", pixel_scores))
    sizes = np.bincount(grid.label_map((7, 11)).ravel(), minlength=9)
    weighted = sum(s.score * size for s, size in zip(scored, sizes, strict=True)) / sizes.sum()
    assert weighted == pytest.approx(pixel_scores.mean())


def test_region_max_over_all_regions_is_the_slice_max():
    pixel_scores = np.random.default_rng(1).random((9, 10))
    scored = make_strategy(9).region_scores(SliceScores("c", "0", pixel_scores))
    assert max(s.score for s in scored) == pytest.approx(pixel_scores.max())


def test_select_ranks_slices_by_their_best_region():
    slices = [
        constant_slice("a", "1", [1, 9, 2, 3]),
        constant_slice("b", "1", [3, 1, 0, 0]),
        constant_slice("c", "7", [6, 5, 0, 0]),
    ]
    selected = make_strategy().select(slices, labelled=set(), per_cycle=2)
    assert ids(selected) == [("a", "1", 1), ("c", "7", 0)]
    assert [s.score for s in selected] == [9.0, 6.0]


def test_select_ranks_by_best_unlabelled_region():
    slices = [constant_slice("a", "1", [1, 9, 2, 3]), constant_slice("c", "7", [6, 5, 0, 0])]
    labelled = {RegionId("a", "1", 1)}
    selected = make_strategy().select(slices, labelled, per_cycle=2)
    assert ids(selected) == [("c", "7", 0), ("a", "1", 3)]


def test_select_takes_regions_per_slice_best_first():
    slices = [constant_slice("a", "1", [1, 9, 2, 3]), constant_slice("c", "7", [6, 5, 0, 0])]
    selected = make_strategy().select(slices, set(), per_cycle=2, regions_per_slice=2)
    assert ids(selected) == [("a", "1", 1), ("a", "1", 3), ("c", "7", 0), ("c", "7", 1)]


def test_ties_are_broken_by_region_id_order():
    slices = [constant_slice("b", "2", [5, 5, 5, 5]), constant_slice("a", "9", [5, 5, 5, 5])]
    selected = make_strategy().select(slices, {RegionId("a", "9", 0)}, per_cycle=2, regions_per_slice=2)
    assert ids(selected) == [("a", "9", 1), ("a", "9", 2), ("b", "2", 0), ("b", "2", 1)]


def test_select_returns_fewer_when_few_regions_are_unlabelled():
    slices = [constant_slice("a", "1", [1, 2, 3, 4]), constant_slice("b", "1", [4, 3, 2, 1])]
    labelled = {RegionId("a", "1", r) for r in range(4)} | {RegionId("b", "1", r) for r in (0, 2, 3)}
    selected = make_strategy().select(slices, labelled, per_cycle=5, regions_per_slice=3)
    assert ids(selected) == [("b", "1", 1)]
    all_labelled = labelled | {RegionId("b", "1", 1)}
    assert make_strategy().select(slices, all_labelled, per_cycle=5) == []
    assert make_strategy().select([], set(), per_cycle=5) == []


@pytest.mark.parametrize("seed", range(20))
def test_select_properties_on_random_maps(seed):
    rng = np.random.default_rng(seed)
    grid_regions = 9
    slices = [SliceScores(f"case{i % 2}", str(i), rng.random((12, 12))) for i in range(6)]
    every_region = [RegionId(s.case, s.slice, r) for s in slices for r in range(grid_regions)]
    labelled = {region for region in every_region if rng.random() < 0.6}
    per_cycle = int(rng.integers(1, 8))
    regions_per_slice = int(rng.integers(1, 5))
    strategy = make_strategy(grid_regions, Reduction.MEAN if seed % 2 else Reduction.MAX)

    selected = strategy.select(slices, labelled, per_cycle, regions_per_slice)

    chosen = [s.region for s in selected]
    assert not set(chosen) & labelled
    assert len(set(chosen)) == len(chosen)
    unlabelled = {
        s.key: sorted(
            (r for r in strategy.region_scores(s) if r.region not in labelled), key=lambda r: (-r.score, r.region)
        )
        for s in slices
    }
    ranked_keys = sorted((k for k in unlabelled if unlabelled[k]), key=lambda k: (-unlabelled[k][0].score, k))
    expected = [r for k in ranked_keys[:per_cycle] for r in unlabelled[k][:regions_per_slice]]
    assert selected == expected
    # Every queried slice beats every slice left out.
    left_out_best = [unlabelled[k][0].score for k in ranked_keys[per_cycle:]]
    queried_best = [unlabelled[k][0].score for k in ranked_keys[:per_cycle]]
    if left_out_best:
        assert min(queried_best) >= max(left_out_best)


@pytest.mark.parametrize(
    ("per_cycle", "regions_per_slice"), [(0, 1), (1, 0), (-2, 1), (True, 1), (1.5, 1)]
)
def test_select_rejects_bad_counts(per_cycle, regions_per_slice):
    with pytest.raises(ValueError, match="must be an integer >= 1"):
        make_strategy().select([constant_slice("a", "1", [1, 2, 3, 4])], set(), per_cycle, regions_per_slice)


def test_select_rejects_a_slice_given_twice():
    slices = [constant_slice("a", "1", [1, 2, 3, 4]), constant_slice("a", "1", [4, 3, 2, 1])]
    with pytest.raises(ValueError, match="more than once"):
        make_strategy().select(slices, set(), per_cycle=1)


@pytest.mark.parametrize("reduction", ["median", "", None])
def test_unknown_reduction_is_rejected(reduction):
    with pytest.raises(ValueError, match="unknown region reduction"):
        make_strategy(reduction=reduction)


def test_reduction_string_is_normalised_to_the_enum():
    assert make_strategy(reduction="mean").reduction is Reduction.MEAN


@pytest.mark.parametrize(
    "pixel_scores",
    [np.zeros((4,)), np.zeros((1, 4, 4)), np.array([[0.0, np.nan], [0.0, 0.0]]), np.full((2, 2), np.inf)],
)
def test_slice_scores_reject_bad_maps(pixel_scores):
    with pytest.raises(ValueError, match="pixel_scores"):
        SliceScores("a", "1", pixel_scores)


def test_slice_scores_store_float64():
    scores = SliceScores("a", "1", np.ones((2, 2), dtype=np.int32))
    assert scores.pixel_scores.dtype == np.float64
    assert scores.key == ("a", "1")


def test_slice_smaller_than_the_grid_is_rejected():
    with pytest.raises(ValueError):
        make_strategy(64).region_scores(SliceScores("a", "1", np.zeros((4, 4))))
