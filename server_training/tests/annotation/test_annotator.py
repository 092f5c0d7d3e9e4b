import numpy as np
import pytest
from scipy import ndimage

from covidal.annotation.annotator import SimulatedAnnotator
from covidal.annotation.state import AnnotationState, Answer, RegionLabel
from covidal.regions.grid import RegionGrid, RegionId

KEY = ("12", "12")


def _blob_mask(shape: tuple[int, int], seed: int) -> np.ndarray:
    """uint8 ``[H, W]``: smoothed noise thresholded into a few irregular blobs (about a quarter infected)."""
    noise = ndimage.gaussian_filter(np.random.default_rng(seed).normal(size=shape), sigma=3)
    return (noise > np.quantile(noise, 0.75)).astype(np.uint8)


def _hand_mask() -> np.ndarray:
    """8x8, K=4: infection only at (5, 6) and (6, 6), both in region 3 (rows 4-7, cols 4-7)."""
    mask = np.zeros((8, 8), dtype=bool)
    mask[5, 6] = mask[6, 6] = True
    return mask


def test_hand_mask_answers():
    annotator = SimulatedAnnotator({KEY: _hand_mask()}, RegionGrid(4), seed=3)
    assert annotator.seed == 3
    answers = annotator.answer_slice(KEY)
    assert [label.region for label in answers] == [RegionId(*KEY, index) for index in range(4)]
    assert answers[:3] == [RegionLabel(RegionId(*KEY, index), Answer.BACKGROUND) for index in range(3)]
    assert answers[3].answer is Answer.INFECTION and answers[3].points in (((5, 6),), ((6, 6),))


@pytest.mark.parametrize(("shape", "regions"), [((40, 33), 9), ((37, 48), 16)])
def test_points_lie_on_infection_inside_their_region(shape, regions):
    grid = RegionGrid(regions)
    seen = set()
    for seed in range(8):
        mask = _blob_mask(shape, seed)
        annotator = SimulatedAnnotator({KEY: mask}, grid, seed=seed)
        answers = annotator.answer_slice(KEY)
        for box, label in zip(grid.boxes(shape), answers, strict=True):
            seen.add(label.answer)
            if mask[box.slices].any():
                assert label.answer is Answer.INFECTION and len(label.points) == 1
                row, col = label.points[0]
                assert mask[row, col] == 1
                assert box.row0 <= row < box.row1 and box.col0 <= col < box.col1
            else:
                assert label == RegionLabel(label.region, Answer.BACKGROUND)
        # The answers are valid input for the annotation state.
        state = AnnotationState(grid, annotator.slice_shapes)
        state.add_many(answers)
        assert state.counts()["infection"] == sum(mask[box.slices].any() for box in grid.boxes(shape))
    assert seen == set(Answer)  # both branches were exercised


def test_answers_do_not_depend_on_call_order():
    masks = {KEY: _blob_mask((40, 40), 1), ("ct1", "ct1:3"): _blob_mask((40, 40), 2)}
    regions = [RegionId(case, slice_id, index) for case, slice_id in masks for index in range(16)]
    forward = SimulatedAnnotator(masks, RegionGrid(16), seed=7)
    backward = SimulatedAnnotator(masks, RegionGrid(16), seed=7)
    answers = [forward.answer(region) for region in regions]
    assert [backward.answer(region) for region in reversed(regions)] == answers[::-1]
    assert [forward.answer(region) for region in regions] == answers  # asking again changes nothing
    only_second = SimulatedAnnotator({("ct1", "ct1:3"): masks[("ct1", "ct1:3")]}, RegionGrid(16), seed=7)
    assert only_second.answer_slice(("ct1", "ct1:3")) == answers[16:]


def test_different_seeds_usually_click_different_points():
    # One 6x6 lesion per 8x8 region: 36 candidate pixels, so two seeds agree on about 1 region in 36.
    mask = np.zeros((32, 32), dtype=np.uint8)
    for top in range(0, 32, 8):
        for left in range(0, 32, 8):
            mask[top + 1 : top + 7, left + 1 : left + 7] = 1
    first = SimulatedAnnotator({KEY: mask}, RegionGrid(16), seed=0).answer_slice(KEY)
    second = SimulatedAnnotator({KEY: mask}, RegionGrid(16), seed=1).answer_slice(KEY)
    same = sum(a.points == b.points for a, b in zip(first, second, strict=True))
    assert same <= 4


def test_clicks_are_spread_over_the_infected_pixels():
    # Region 3 holds 2 infected pixels: over 200 seeds each should be clicked about 100 times.
    region = RegionId(*KEY, 3)
    clicks = [
        SimulatedAnnotator({KEY: _hand_mask()}, RegionGrid(4), seed=seed).answer(region).points[0]
        for seed in range(200)
    ]
    assert set(clicks) == {(5, 6), (6, 6)}
    assert 60 <= clicks.count((5, 6)) <= 140


def test_slice_shapes():
    masks = {KEY: np.zeros((10, 7)), ("a", "b"): np.zeros((8, 9), dtype=bool)}
    assert SimulatedAnnotator(masks, RegionGrid(4), seed=0).slice_shapes == {KEY: (10, 7), ("a", "b"): (8, 9)}


def test_unknown_slice_or_region_raises():
    annotator = SimulatedAnnotator({KEY: _hand_mask()}, RegionGrid(4), seed=0)
    with pytest.raises(ValueError, match="no reference mask"):
        annotator.answer(RegionId("12", "13", 0))
    with pytest.raises(ValueError, match="no reference mask"):
        annotator.answer_slice(("x", "y"))
    with pytest.raises(ValueError, match="out of range"):
        annotator.answer(RegionId(*KEY, 4))


@pytest.mark.parametrize("seed", [-1, 1.5, True, "0"])
def test_bad_seed_raises(seed):
    with pytest.raises(ValueError, match="seed"):
        SimulatedAnnotator({KEY: _hand_mask()}, RegionGrid(4), seed=seed)


@pytest.mark.parametrize("mask", [np.zeros((2, 8, 8)), np.zeros(8), np.zeros((1, 8))])
def test_bad_mask_raises(mask):
    with pytest.raises(ValueError):
        SimulatedAnnotator({KEY: mask}, RegionGrid(4), seed=0)


def test_the_mask_protocol_outlines_every_infected_pixel_and_tags_empty_regions():
    annotator = SimulatedAnnotator({KEY: _hand_mask()}, RegionGrid(4), seed=3, protocol="mask")
    answers = annotator.answer_slice(KEY)
    assert answers[:3] == [RegionLabel(RegionId(*KEY, index), Answer.BACKGROUND) for index in range(3)]
    assert answers[3] == RegionLabel(RegionId(*KEY, 3), Answer.INFECTION, ((5, 6), (6, 6)), outlined=True)
    state = AnnotationState(RegionGrid(4), {KEY: (8, 8)})
    state.add_many(answers)
    target = state.label_map(KEY)
    assert target[5, 6] == target[6, 6] == 1 and (target == 1).sum() == 2 and (target == -1).sum() == 0


def test_an_unknown_protocol_is_refused():
    with pytest.raises(ValueError, match="protocol"):
        SimulatedAnnotator({KEY: _hand_mask()}, RegionGrid(4), seed=0, protocol="scribble")
