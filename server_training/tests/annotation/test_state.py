import json

import numpy as np
import pytest

from covidal.annotation.state import AnnotationState, Answer, RegionLabel, region_rng
from covidal.errors import CovidalError
from covidal.regions.grid import Box, RegionGrid, RegionId

# 10x7 with K=4: row edges 0, 5, 10; col edges round_half_up(0, 3.5, 7) = 0, 4, 7.
AWKWARD = ("ct1", "ct1:40")
SQUARE = ("12", "12")
SHAPES = {AWKWARD: (10, 7), SQUARE: (8, 8)}


def _state(shapes=SHAPES, regions=4) -> AnnotationState:
    return AnnotationState(RegionGrid(regions), shapes)


def _bg(key, index) -> RegionLabel:
    return RegionLabel(RegionId(*key, index), Answer.BACKGROUND)


def _inf(key, index, *points) -> RegionLabel:
    return RegionLabel(RegionId(*key, index), Answer.INFECTION, points)


def _awkward_state() -> AnnotationState:
    """Region 1 (rows 0-4, cols 4-6) background; region 2 (rows 5-9, cols 0-3) clicked at (6, 1) and (9, 3)."""
    state = _state()
    state.add(_bg(AWKWARD, 1))
    state.add(_inf(AWKWARD, 2, (6, 1), (9, 3)))
    return state


# --- RegionLabel -----------------------------------------------------------------


def test_region_label_normalises_answer_and_points():
    label = RegionLabel(RegionId("a", "a", 0), "infection", [[2, np.int64(3)]])
    assert label.answer is Answer.INFECTION
    assert label.points == ((2, 3),) and type(label.points[0][1]) is int
    assert label.key == ("a", "a")


@pytest.mark.parametrize(
    ("answer", "points", "message"),
    [
        (Answer.INFECTION, (), "at least one"),
        (Answer.BACKGROUND, ((1, 1),), "no points"),
        (Answer.INFECTION, ((-1, 0),), "non-negative"),
        (Answer.INFECTION, ((1.0, 0),), "non-negative"),
        (Answer.INFECTION, ((True, 0),), "non-negative"),
        (Answer.INFECTION, ((1, 2, 3),), "pair"),
        (Answer.INFECTION, ((1, 2), (1, 2)), "twice"),
        ("maybe", (), "maybe"),
    ],
)
def test_region_label_rejects_bad_input(answer, points, message):
    with pytest.raises(ValueError, match=message):
        RegionLabel(RegionId("a", "a", 0), answer, points)


def test_region_label_needs_region_id():
    with pytest.raises(ValueError, match="RegionId"):
        RegionLabel(("a", "a", 0), Answer.BACKGROUND)


# --- adding and queries ----------------------------------------------------------


def test_queries_after_adding():
    state = _awkward_state()
    state.add(_bg(SQUARE, 3))
    state.add(_bg(AWKWARD, 0))
    assert len(state) == 4
    assert state.labelled == {RegionId(*AWKWARD, 0), RegionId(*AWKWARD, 1), RegionId(*AWKWARD, 2), RegionId(*SQUARE, 3)}
    # RegionId order: case "12" sorts before "ct1"; regions by index within a slice.
    assert [label.region for label in state.labels()] == [
        RegionId(*SQUARE, 3),
        RegionId(*AWKWARD, 0),
        RegionId(*AWKWARD, 1),
        RegionId(*AWKWARD, 2),
    ]
    assert state.label_of(RegionId(*AWKWARD, 2)) == _inf(AWKWARD, 2, (6, 1), (9, 3))
    assert state.label_of(RegionId(*AWKWARD, 3)) is None
    assert state.labelled_slices() == [SQUARE, AWKWARD]
    assert state.counts() == {"background": 3, "infection": 1}


def test_empty_state():
    state = _state()
    assert len(state) == 0 and state.labelled == frozenset() and state.labels() == []
    assert state.labelled_slices() == [] and state.counts() == {"background": 0, "infection": 0}


@pytest.mark.parametrize(
    ("label", "message"),
    [
        (_bg(("ct9", "ct9:1"), 0), "not in the pool"),
        (_bg(AWKWARD, 4), "out of range"),
        # (4, 3) is in region 0 (rows 0-4, cols 0-3), not region 1 (cols 4-6).
        (_inf(AWKWARD, 1, (4, 3)), "outside"),
        (_inf(AWKWARD, 3, (10, 5)), "outside"),
        (_inf(AWKWARD, 3, (5, 7)), "outside"),
    ],
)
def test_add_refuses_bad_labels(label, message):
    state = _state()
    with pytest.raises(ValueError, match=message):
        state.add(label)
    assert len(state) == 0


def test_add_refuses_a_second_answer_for_a_region():
    state = _awkward_state()
    with pytest.raises(ValueError, match="already answered.*final"):
        state.add(_inf(AWKWARD, 1, (0, 4)))
    with pytest.raises(ValueError, match="already answered"):
        state.add(_bg(AWKWARD, 1))
    assert state.label_of(RegionId(*AWKWARD, 1)).answer is Answer.BACKGROUND


def test_add_accepts_points_on_box_corners():
    state = _state()
    state.add(_inf(AWKWARD, 3, (5, 4), (9, 6), (5, 6), (9, 4)))
    assert len(state) == 1


def test_add_many_is_all_or_nothing():
    state = _state()
    with pytest.raises(ValueError, match="outside"):
        state.add_many([_bg(AWKWARD, 0), _inf(AWKWARD, 1, (9, 9))])
    assert len(state) == 0
    with pytest.raises(ValueError, match="twice in this batch"):
        state.add_many([_bg(AWKWARD, 0), _inf(AWKWARD, 0, (1, 1))])
    assert len(state) == 0
    state.add(_bg(AWKWARD, 0))
    with pytest.raises(ValueError, match="already answered"):
        state.add_many([_bg(AWKWARD, 1), _bg(AWKWARD, 0)])
    assert state.labelled == {RegionId(*AWKWARD, 0)}
    state.add_many(iter([_bg(AWKWARD, 1), _bg(SQUARE, 0)]))
    assert len(state) == 3


@pytest.mark.parametrize("shapes", [{("a",): (8, 8)}, {("a", 1): (8, 8)}, {("a", "a"): (1, 8)}, {("a", "a"): (8,)}])
def test_constructor_rejects_bad_pool(shapes):
    with pytest.raises(ValueError):
        AnnotationState(RegionGrid(4), shapes)


# --- label maps ------------------------------------------------------------------


def test_native_label_map_hand_computed():
    expected = np.array(
        [
            [-1, -1, -1, -1, 0, 0, 0],
            [-1, -1, -1, -1, 0, 0, 0],
            [-1, -1, -1, -1, 0, 0, 0],
            [-1, -1, -1, -1, 0, 0, 0],
            [-1, -1, -1, -1, 0, 0, 0],
            [-1, -1, -1, -1, -1, -1, -1],
            [-1, 1, -1, -1, -1, -1, -1],
            [-1, -1, -1, -1, -1, -1, -1],
            [-1, -1, -1, -1, -1, -1, -1],
            [-1, -1, -1, 1, -1, -1, -1],
        ]
    )
    target = _awkward_state().label_map(AWKWARD)
    assert target.dtype == np.int64
    assert np.array_equal(target, expected)


def test_label_map_of_unlabelled_pool_slice_is_all_ignored():
    state = _awkward_state()
    assert np.array_equal(state.label_map(SQUARE), np.full((8, 8), -1))
    assert np.array_equal(state.label_map_on_grid(SQUARE, 16), np.full((16, 16), -1))


def test_label_map_of_unknown_slice_raises():
    with pytest.raises(ValueError, match="not in the pool"):
        _awkward_state().label_map(("x", "y"))
    with pytest.raises(ValueError, match="not in the pool"):
        _awkward_state().label_map_on_grid(("x", "y"), 8)


@pytest.mark.parametrize(
    ("train_size", "background_box", "points"),
    [
        # S=8: training row t -> native (2t+1)*10//16 = 0,1,3,4 | 5,6,8,9 -> row edges 0, 4, 8;
        # col t -> (2t+1)*7//16 = 0,1,2,3,3 | 4,5,6 -> col edges 0, 5, 8.
        # Points: row (2r+1)*8//20 -> 6:5, 9:7; col (2c+1)*8//14 -> 1:1, 3:4.
        (8, Box(0, 4, 5, 8), [(5, 1), (7, 4)]),
        # S=16: row edges 0, 8, 16; col edges 0, 9, 16. Points: row 6:10, 9:15; col 1:3, 3:8.
        (16, Box(0, 8, 9, 16), [(10, 3), (15, 8)]),
    ],
)
def test_training_grid_label_map_hand_computed(train_size, background_box, points):
    expected = np.full((train_size, train_size), -1)
    expected[background_box.slices] = 0
    for point in points:
        expected[point] = 1
    target = _awkward_state().label_map_on_grid(AWKWARD, train_size)
    assert target.dtype == np.int64 and target.shape == (train_size, train_size)
    assert np.array_equal(target, expected)


def test_point_next_to_band_edge_wins_over_neighbouring_background():
    # 13x13, K=4: native edges 0, 7, 13. On S=8, training row t -> native (2t+1)*13//16 = ..., 5 | 7, ...,
    # so training rows 4-7 belong to the lower band, yet native row 6 (upper band) maps to training row
    # (2*6+1)*8//26 = 4. A click at native (6, 0) of region 0 lands in region 2's training box.
    key = ("c", "c:1")
    state = AnnotationState(RegionGrid(4), {key: (13, 13)})
    state.add(_inf(key, 0, (6, 0)))
    state.add(_bg(key, 2))
    expected = np.full((8, 8), -1)
    expected[4:8, 0:4] = 0
    expected[4, 0] = 1
    assert np.array_equal(state.label_map_on_grid(key, 8), expected)


def test_region_with_empty_training_box_contributes_nothing():
    # 9x9 with K=81 (1-pixel regions) on S=8: training rows map to native rows 0,1,2,3,5,6,7,8, so native
    # row 4 (regions 36-44) has no training pixel.
    key = ("c", "c:1")
    state = AnnotationState(RegionGrid(81), {key: (9, 9)})
    assert RegionGrid(81).boxes_on_training_grid((9, 9), 8)[36] == Box(4, 4, 0, 1)
    state.add(_bg(key, 36))
    assert np.array_equal(state.label_map_on_grid(key, 8), np.full((8, 8), -1))
    assert np.array_equal(state.label_map_on_grid(key, 8, background_sample=3), np.full((8, 8), -1))
    assert np.count_nonzero(state.label_map(key) == 0) == 1


# --- background sampling ---------------------------------------------------------


def _sampled(labels, sample, seed=0, train_size=16):
    state = _state()
    for label in labels:
        state.add(label)
    return state.label_map_on_grid(SQUARE, train_size, background_sample=sample, seed=seed)


def test_background_sample_count_inside_box():
    # 8x8, K=4, S=16: each region is an 8x8 training box of 64 pixels.
    target = _sampled([_bg(SQUARE, 0), _bg(SQUARE, 3), _inf(SQUARE, 1, (1, 6))], sample=10)
    assert np.count_nonzero(target[0:8, 0:8] == 0) == 10
    assert np.count_nonzero(target[8:16, 8:16] == 0) == 10
    assert np.count_nonzero(target == 0) == 20
    assert np.array_equal(np.argwhere(target == 1), [[3, 13]])  # (2*1+1)*16//16, (2*6+1)*16//16
    assert np.all(target[0:8, 8:16][target[0:8, 8:16] != 1] == -1)
    assert np.all(target[8:16, 0:8] == -1)


def test_background_sample_ignores_answer_order_and_other_regions():
    forward = _sampled([_bg(SQUARE, 0), _bg(SQUARE, 3)], sample=7, seed=5)
    backward = _sampled([_bg(SQUARE, 3), _bg(SQUARE, 0)], sample=7, seed=5)
    alone = _sampled([_bg(SQUARE, 3)], sample=7, seed=5)
    assert np.array_equal(forward, backward)
    assert np.array_equal(forward[8:16, 8:16], alone[8:16, 8:16])


def test_background_sample_follows_the_seed():
    first = _sampled([_bg(SQUARE, 0)], sample=7, seed=0)
    assert np.array_equal(first, _sampled([_bg(SQUARE, 0)], sample=7, seed=0))
    assert not np.array_equal(first, _sampled([_bg(SQUARE, 0)], sample=7, seed=1))


@pytest.mark.parametrize("sample", [64, 1000])
def test_background_sample_larger_than_box_takes_all(sample):
    target = _sampled([_bg(SQUARE, 2)], sample=sample)
    assert np.all(target[8:16, 0:8] == 0) and np.count_nonzero(target == 0) == 64


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"background_sample": 0}, "background_sample"),
        ({"background_sample": -3}, "background_sample"),
        ({"background_sample": 2.5}, "background_sample"),
        ({"background_sample": True}, "background_sample"),
        ({"seed": -1}, "seed"),
    ],
)
def test_label_map_on_grid_rejects_bad_options(options, message):
    with pytest.raises(ValueError, match=message):
        _awkward_state().label_map_on_grid(AWKWARD, 8, **options)


def test_label_map_on_grid_rejects_small_training_grid():
    with pytest.raises(ValueError, match="training grid size"):
        _awkward_state().label_map_on_grid(AWKWARD, 4)


def test_region_rng_depends_on_seed_and_region_only():
    region = RegionId("ct1", "ct1:40", 5)
    assert region_rng(3, region).integers(1 << 30) == region_rng(3, RegionId("ct1", "ct1:40", 5)).integers(1 << 30)
    others = [
        region_rng(4, region),
        region_rng(3, RegionId("ct1", "ct1:41", 5)),
        region_rng(3, RegionId("ct1", "ct1:40", 6)),
    ]
    draws = {int(rng.integers(1 << 62)) for rng in [region_rng(3, region), *others]}
    assert len(draws) == 4


# --- persistence -----------------------------------------------------------------


def test_to_dict_documented_format():
    document = _awkward_state().to_dict()
    assert document == {
        "format": "covidal.annotations",
        "version": 1,
        "regions": 4,
        "labels": [
            {"case": "ct1", "slice": "ct1:40", "region": 1, "answer": "background", "points": []},
            {"case": "ct1", "slice": "ct1:40", "region": 2, "answer": "infection", "points": [[6, 1], [9, 3]]},
        ],
    }


def test_save_load_round_trip(tmp_path):
    state = _awkward_state()
    state.add(_bg(SQUARE, 0))
    path = tmp_path / "sub" / "annotations.json"
    state.save(path)
    assert json.loads(path.read_text())["format"] == "covidal.annotations"
    loaded = AnnotationState.load(path, RegionGrid(4), SHAPES)
    assert loaded.labels() == state.labels()
    assert loaded.to_dict() == state.to_dict()
    for key in SHAPES:
        assert np.array_equal(loaded.label_map_on_grid(key, 16), state.label_map_on_grid(key, 16))
    assert [p.name for p in path.parent.iterdir()] == ["annotations.json"]  # no temporary file left


def test_from_dict_round_trip_and_errors():
    state = _awkward_state()
    assert AnnotationState.from_dict(state.to_dict(), RegionGrid(4), SHAPES).labels() == state.labels()
    with pytest.raises(CovidalError, match="not a covidal.annotations document"):
        AnnotationState.from_dict([], RegionGrid(4), SHAPES)


def _document(**changes):
    document = _awkward_state().to_dict()
    document.update(changes)
    return document


def _label_entry(**changes):
    entry = {"case": "ct1", "slice": "ct1:40", "region": 0, "answer": "infection", "points": [[1, 1]]}
    entry.update(changes)
    return entry


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "cannot be read or is not valid JSON"),
        (json.dumps({"format": "covidal.points", "version": 1}), "not a covidal.annotations document"),
        (json.dumps(_document(version=2)), "version 2"),
        (json.dumps(_document(version="1")), "version"),
        (json.dumps(_document(regions=9)), "9 regions"),
        (json.dumps(_document(labels={})), "list"),
        (json.dumps(_document(labels=[[]])), "label #0"),
        (json.dumps(_document(labels=[{"case": "ct1"}])), "lacks"),
        (json.dumps(_document(labels=[_label_entry(answer="maybe")])), "maybe"),
        (json.dumps(_document(labels=[_label_entry(region="0")])), "region"),
        (json.dumps(_document(labels=[_label_entry(case=3)])), "case"),
        (json.dumps(_document(labels=[_label_entry(points=[1, 1])])), "points"),
        (json.dumps(_document(labels=[_label_entry(points=[[1, -1]])])), "non-negative"),
        (json.dumps(_document(labels=[_label_entry(points=[[1, 5]])])), "outside"),
        (json.dumps(_document(labels=[_label_entry(slice="ct1:99")])), "not in the pool"),
        (json.dumps(_document(labels=[_label_entry(region=7)])), "out of range"),
        (json.dumps(_document(labels=[_label_entry(), _label_entry(points=[[2, 2]])])), "twice"),
    ],
)
def test_load_refuses_bad_files(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(CovidalError, match=message) as error:
        AnnotationState.load(path, RegionGrid(4), SHAPES)
    assert "bad.json" in str(error.value)


def test_load_refuses_missing_file(tmp_path):
    with pytest.raises(CovidalError, match="missing.json"):
        AnnotationState.load(tmp_path / "missing.json", RegionGrid(4), SHAPES)
    with pytest.raises(CovidalError, match="not a file"):
        AnnotationState.load(tmp_path, RegionGrid(4), SHAPES)


def test_an_outlined_label_trains_its_pixels_and_round_trips(tmp_path):
    """An outline (the simulated mask protocol) marks its points as infection and the rest of the box as
    background, on the native and the training grid, and survives save and load."""
    grid, key = RegionGrid(4), ("c", "s")
    state = AnnotationState(grid, {key: (8, 8)})
    state.add(RegionLabel(RegionId(*key, 0), Answer.INFECTION, ((1, 1), (1, 2)), outlined=True))
    native = state.label_map(key)
    assert (native[:4, :4] == 0).sum() == 14 and native[1, 1] == native[1, 2] == 1 and (native[4:] == -1).all()
    on_grid = state.label_map_on_grid(key, 16)
    assert (on_grid[:8, :8] >= 0).all() and on_grid[2:4, 2:6].max() == 1 and (on_grid[8:] == -1).all()
    state.save(tmp_path / "a.json")
    loaded = AnnotationState.load(tmp_path / "a.json", grid, {key: (8, 8)})
    assert loaded.labels() == state.labels()


def test_a_background_tag_cannot_be_outlined():
    with pytest.raises(ValueError, match="outline"):
        RegionLabel(RegionId("c", "s", 0), Answer.BACKGROUND, (), outlined=True)
