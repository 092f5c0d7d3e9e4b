"""Tests for covidal.data.points: click protocol, label maps and the JSON points file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from covidal.data import points as points_module
from covidal.data.points import (
    IGNORE_INDEX,
    PointClass,
    PointLabel,
    derive_points,
    derive_points_for_slices,
    load_points,
    point_label_map,
    points_by_slice,
    save_points,
    validate_points_in_bounds,
)
from covidal.errors import CovidalError

REAL_MASKS = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "covid_semiseg" / "train" / "masks"


def mask_from_pixels(shape: tuple[int, int], pixels: list[tuple[int, int]]) -> np.ndarray:
    mask = np.zeros(shape, dtype=np.uint8)
    for row, col in pixels:
        mask[row, col] = 1
    return mask


def box(rows: range, cols: range) -> list[tuple[int, int]]:
    return [(r, c) for r in rows for c in cols]


def infection_positions(points: list[PointLabel]) -> list[tuple[int, int]]:
    return [(p.row, p.col) for p in points if p.label == PointClass.INFECTION]


def background_points(points: list[PointLabel]) -> list[PointLabel]:
    return [p for p in points if p.label == PointClass.BACKGROUND]


# Rings: pixels at Chebyshev distance 2 or 3 from (4, 4); the centroid (4, 4) is in the hole.
RING = [(r, c) for r in range(1, 8) for c in range(1, 8) if max(abs(r - 4), abs(c - 4)) >= 2]

# (shape, infected pixels, expected infection points) worked out by hand:
# the deepest pixel (Euclidean distance to the nearest non-component pixel,
# image border counting as outside), ties to the first in row-major order.
INFECTION_POINT_CASES = [
    pytest.param((10, 12), box(range(2, 7), range(3, 8)), [(4, 5)], id="5x5-square-centre"),
    pytest.param((6, 6), [(3, 4)], [(3, 4)], id="single-pixel"),
    pytest.param((6, 6), [(2, 2), (3, 3)], [(2, 2)], id="diagonal-neighbours-are-one-component"),
    pytest.param((6, 6), [(2, 2), (2, 4)], [(2, 2), (2, 4)], id="one-pixel-gap-two-components"),
    # Vertical arm rows 1-6 x cols 1-3, horizontal arm rows 4-6 x cols 1-8: the
    # arms' middle lines all have depth 2; (2, 2) comes first.
    pytest.param((8, 10), box(range(1, 7), range(1, 4)) + box(range(4, 7), range(1, 9)), [(2, 2)], id="L-shape"),
    # Thickness-2 ring: only its four inner corners reach depth sqrt(2).
    pytest.param((9, 9), RING, [(2, 2)], id="ring-point-not-in-hole"),
    # A bar on the image's top edge: the border is the lesion's edge, so row 1, not row 0.
    pytest.param((6, 8), box(range(3), range(6)), [(1, 1)], id="touches-image-border"),
    pytest.param(
        (12, 12),
        box(range(1, 6), range(1, 6)) + [(9, 10)],
        [(3, 3), (9, 10)],
        id="square-and-pixel",
    ),
]


@pytest.mark.parametrize(("shape", "pixels", "expected"), INFECTION_POINT_CASES)
def test_infection_points_are_the_deepest_pixel_of_each_component(shape, pixels, expected):
    mask = mask_from_pixels(shape, pixels)
    points = derive_points(mask, "s", np.random.default_rng(0))
    assert infection_positions(points) == expected
    assert all(mask[r, c] for r, c in expected)


def test_mask_values_255_count_as_infection():
    mask = mask_from_pixels((10, 12), box(range(2, 7), range(3, 8))) * 255
    assert infection_positions(derive_points(mask, "s", np.random.default_rng(0))) == [(4, 5)]


def test_background_points_match_infection_count_and_lie_on_background():
    rng = np.random.default_rng(5)
    mask = np.zeros((40, 40), dtype=bool)
    centres = [(5 + 10 * (i // 3), 5 + 10 * (i % 3)) for i in range(7)]
    for row, col in centres:
        mask[row - 1 : row + 2, col - 1 : col + 2] = True
    points = derive_points(mask, "7", rng)
    background = background_points(points)
    assert sorted(infection_positions(points)) == sorted(centres)
    assert len(background) == 7
    assert len({(p.row, p.col) for p in background}) == 7
    assert not any(mask[p.row, p.col] for p in background)
    assert {p.slice_id for p in points} == {"7"}
    assert [(p.row, p.col) for p in background] == sorted((p.row, p.col) for p in background)


def test_slice_without_infection_gets_exactly_one_background_point():
    points = derive_points(np.zeros((16, 16), dtype=np.uint8), "empty", np.random.default_rng(0))
    assert len(points) == 1
    assert points[0].label == PointClass.BACKGROUND


def test_fully_infected_slice_gets_no_background_point():
    points = derive_points(np.ones((8, 8), dtype=bool), "full", np.random.default_rng(0))
    assert [(p.row, p.col, p.label) for p in points] == [(3, 3, PointClass.INFECTION)]


def test_background_sampling_reaches_every_background_pixel():
    mask = mask_from_pixels((3, 3), [(1, 1)])
    seen = set()
    for seed in range(200):
        seen.update((p.row, p.col) for p in background_points(derive_points(mask, "s", np.random.default_rng(seed))))
    assert seen == {(r, c) for r in range(3) for c in range(3)} - {(1, 1)}


@pytest.mark.parametrize("bad_mask", [np.zeros((4, 4, 2)), np.zeros(5), np.zeros((0, 4))])
def test_derive_points_rejects_non_2d_masks(bad_mask):
    with pytest.raises(ValueError, match="2D"):
        derive_points(bad_mask, "s", np.random.default_rng(0))


def sparse_random_mask(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((24, 24)) > 0.93


def test_derive_points_for_slices_is_deterministic_and_order_independent():
    masks = {"b": sparse_random_mask(1), "a": sparse_random_mask(2), "c": np.zeros((24, 24))}
    first = derive_points_for_slices(masks, seed=3)
    reordered = derive_points_for_slices(dict(reversed(list(masks.items()))), seed=3)
    assert first == reordered
    assert [p.slice_id for p in first] == sorted(p.slice_id for p in first)
    assert first != derive_points_for_slices(masks, seed=4)


def test_a_slices_points_do_not_depend_on_other_slices():
    alone = derive_points_for_slices({"a": sparse_random_mask(2)}, seed=9)
    together = derive_points_for_slices({"a": sparse_random_mask(2), "b": sparse_random_mask(1)}, seed=9)
    assert points_by_slice(together)["a"] == alone


@pytest.mark.parametrize("seed", [-1, 1.5, True])
def test_derive_points_for_slices_rejects_bad_seed(seed):
    with pytest.raises(ValueError, match="seed"):
        derive_points_for_slices({"a": np.zeros((4, 4))}, seed=seed)


def test_point_label_validates_and_stores_the_enum():
    point = PointLabel("3", np.int64(4), 5, 1)
    assert point.label is PointClass.INFECTION
    assert type(point.row) is int
    for bad in [("", 0, 0, 0), ("a", -1, 0, 0), ("a", 0, 1.0, 0), ("a", 0, True, 0)]:
        with pytest.raises(ValueError):
            PointLabel(*bad)
    with pytest.raises(ValueError):
        PointLabel("a", 0, 0, 2)


def test_points_by_slice_keeps_first_appearance_and_input_order():
    a1, b1, a2 = PointLabel("a", 1, 1, 1), PointLabel("b", 0, 0, 0), PointLabel("a", 0, 0, 0)
    assert points_by_slice([a1, b1, a2]) == {"a": [a1, a2], "b": [b1]}
    assert list(points_by_slice([b1, a1])) == ["b", "a"]


def test_point_label_map_marks_points_and_ignores_the_rest():
    points = [PointLabel("s", 0, 0, 0), PointLabel("s", 2, 3, 1), PointLabel("s", 1, 1, 1), PointLabel("s", 1, 1, 0)]
    label_map = point_label_map(points, (3, 4))
    expected = np.full((3, 4), IGNORE_INDEX)
    expected[0, 0] = 0
    expected[2, 3] = 1
    expected[1, 1] = 1  # infection wins over background on the same pixel
    assert label_map.dtype == np.int64
    np.testing.assert_array_equal(label_map, expected)
    np.testing.assert_array_equal(point_label_map([], (2, 2)), np.full((2, 2), -1))


@pytest.mark.parametrize(
    ("points", "shape", "message"),
    [
        ([PointLabel("a", 0, 0, 1), PointLabel("b", 0, 0, 1)], (4, 4), "one slice"),
        ([PointLabel("a", 4, 0, 1)], (4, 4), "outside"),
        ([PointLabel("a", 0, 4, 1)], (4, 4), "outside"),
        ([], (0, 4), "positive"),
    ],
)
def test_point_label_map_rejects_bad_input(points, shape, message):
    with pytest.raises(ValueError, match=message):
        point_label_map(points, shape)


def test_validate_points_in_bounds_accepts_edge_pixels():
    validate_points_in_bounds([PointLabel("a", 9, 19, 1), PointLabel("b", 0, 0, 0)], {"a": (10, 20), "b": (1, 1)})


@pytest.mark.parametrize(
    ("point", "message"),
    [
        (PointLabel("z", 0, 0, 1), "'z', which is not in the data set"),
        (PointLabel("a", 10, 0, 1), "outside slice 'a' of size 10x20"),
        (PointLabel("a", 0, 20, 0), "outside slice 'a' of size 10x20"),
    ],
)
def test_validate_points_in_bounds_rejects(point, message):
    with pytest.raises(CovidalError, match=message):
        validate_points_in_bounds([point], {"a": (10, 20)})


SAMPLE_POINTS = [PointLabel("12", 40, 17, 1), PointLabel("12", 3, 5, 0), PointLabel("slice 2", 0, 0, 0)]


def test_save_load_round_trip_and_exact_format(tmp_path):
    path = tmp_path / "points.json"
    save_points(path, SAMPLE_POINTS)
    assert load_points(path) == SAMPLE_POINTS
    document = json.loads(path.read_text(encoding="utf-8"))
    assert document == {
        "format": "covidal.points",
        "version": 1,
        "points": [
            {"slice": "12", "row": 40, "col": 17, "label": 1},
            {"slice": "12", "row": 3, "col": 5, "label": 0},
            {"slice": "slice 2", "row": 0, "col": 0, "label": 0},
        ],
    }
    assert list(tmp_path.iterdir()) == [path]


def test_save_replaces_an_existing_file_and_handles_no_points(tmp_path):
    path = tmp_path / "points.json"
    save_points(path, SAMPLE_POINTS)
    save_points(path, [])
    assert load_points(path) == []


def test_failed_save_keeps_the_old_file_and_leaves_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "points.json"
    save_points(path, SAMPLE_POINTS)
    before = path.read_bytes()

    def broken_dumps(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(points_module.json, "dumps", broken_dumps)
    with pytest.raises(OSError, match="disk full"):
        save_points(path, [PointLabel("1", 1, 1, 1)])
    assert path.read_bytes() == before
    assert list(tmp_path.iterdir()) == [path]


def test_load_ignores_unknown_keys(tmp_path):
    path = tmp_path / "p.json"
    document = {
        "format": "covidal.points",
        "version": 1,
        "author": "x",
        "points": [{"slice": "1", "row": 2, "col": 3, "label": 0, "note": "rim"}],
    }
    path.write_text(json.dumps(document), encoding="utf-8")
    assert load_points(path) == [PointLabel("1", 2, 3, PointClass.BACKGROUND)]


def valid_document(**point_changes) -> dict:
    point = {"slice": "1", "row": 2, "col": 3, "label": 1, **point_changes}
    return {"format": "covidal.points", "version": 1, "points": [point]}


def without_key(key: str) -> dict:
    document = valid_document()
    del document["points"][0][key]
    return document


BAD_DOCUMENTS = [
    pytest.param("[1, 2]", "not a covidal.points document", id="top-level-list"),
    pytest.param({"version": 1, "points": []}, "not a covidal.points document", id="no-format"),
    pytest.param({"format": "other", "version": 1, "points": []}, "not a covidal.points document", id="wrong-format"),
    pytest.param({"format": "covidal.points", "points": []}, "version None", id="no-version"),
    pytest.param({"format": "covidal.points", "version": 2, "points": []}, "version 2", id="version-2"),
    pytest.param({"format": "covidal.points", "version": "1", "points": []}, "version '1'", id="version-string"),
    pytest.param({"format": "covidal.points", "version": True, "points": []}, "version True", id="version-bool"),
    pytest.param({"format": "covidal.points", "version": 1}, "must be a list", id="no-points"),
    pytest.param({"format": "covidal.points", "version": 1, "points": {}}, "must be a list", id="points-object"),
    pytest.param({"format": "covidal.points", "version": 1, "points": [5]}, "point #0 must be an object", id="entry"),
    pytest.param(without_key("slice"), "lacks key\\(s\\) slice", id="missing-slice"),
    pytest.param(without_key("row"), "lacks key\\(s\\) row", id="missing-row"),
    pytest.param(without_key("col"), "lacks key\\(s\\) col", id="missing-col"),
    pytest.param(without_key("label"), "lacks key\\(s\\) label", id="missing-label"),
    pytest.param(valid_document(slice=12), '"slice" must be a non-empty string', id="slice-int"),
    pytest.param(valid_document(slice=""), '"slice" must be a non-empty string', id="slice-empty"),
    pytest.param(valid_document(row=2.0), '"row" must be a non-negative integer', id="row-float"),
    pytest.param(valid_document(row="2"), '"row" must be a non-negative integer', id="row-string"),
    pytest.param(valid_document(row=-1), '"row" must be a non-negative integer', id="row-negative"),
    pytest.param(valid_document(col=True), '"col" must be a non-negative integer', id="col-bool"),
    pytest.param(valid_document(col=None), '"col" must be a non-negative integer', id="col-null"),
    pytest.param(valid_document(label=2), '"label" must be 0 \\(background\\) or 1', id="label-2"),
    pytest.param(valid_document(label=-1), '"label" must be 0 \\(background\\) or 1', id="label-negative"),
    pytest.param(valid_document(label="1"), '"label" must be 0 \\(background\\) or 1', id="label-string"),
    pytest.param(valid_document(label=1.0), '"label" must be 0 \\(background\\) or 1', id="label-float"),
]


@pytest.mark.parametrize(("document", "message"), BAD_DOCUMENTS)
def test_load_rejects_bad_documents(tmp_path, document, message):
    path = tmp_path / "bad.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document), encoding="utf-8")
    with pytest.raises(CovidalError, match=message):
        load_points(path)


def test_load_rejects_missing_file_and_invalid_json(tmp_path):
    with pytest.raises(CovidalError, match="does not exist"):
        load_points(tmp_path / "nope.json")
    with pytest.raises(CovidalError, match="is not a file"):
        load_points(tmp_path)
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": "covidal.points", ', encoding="utf-8")
    with pytest.raises(CovidalError, match="not valid JSON"):
        load_points(broken)
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(CovidalError, match="cannot be read"):
        load_points(binary)


def test_real_masks_points_lie_inside_infection_and_background():
    if not REAL_MASKS.is_dir():
        pytest.skip(f"real masks not found at {REAL_MASKS} (shared data is optional)")
    from PIL import Image

    masks = {path.stem: np.asarray(Image.open(path).convert("L")) > 127 for path in sorted(REAL_MASKS.glob("*.png"))}
    assert masks, f"no PNG masks in {REAL_MASKS}"
    grouped = points_by_slice(derive_points_for_slices(masks, seed=0))
    for slice_id, mask in masks.items():
        points = grouped[slice_id]
        infection = [p for p in points if p.label == PointClass.INFECTION]
        background = background_points(points)
        assert all(mask[p.row, p.col] for p in infection), slice_id
        assert not any(mask[p.row, p.col] for p in background), slice_id
        assert len(background) == max(len(infection), 1), slice_id


@pytest.mark.parametrize(
    ("lesions", "min_background", "expected_background"),
    [
        (0, 1, 1),  # paper's protocol on an empty slice
        (0, 5, 5),
        (2, 1, 2),  # as many as infection points
        (2, 5, 5),  # the floor wins
        (7, 5, 7),  # infection count wins
    ],
)
def test_min_background_sets_a_floor_on_background_points(lesions, min_background, expected_background):
    mask = np.zeros((40, 80), dtype=np.uint8)
    for index in range(lesions):
        mask[2:5, 2 + 10 * index : 5 + 10 * index] = 1
    points = derive_points(mask, "s", np.random.default_rng(0), min_background=min_background)
    background = [p for p in points if p.label == PointClass.BACKGROUND]
    assert len(background) == expected_background
    assert all(mask[p.row, p.col] == 0 for p in background)


@pytest.mark.parametrize("bad", [0, -1, 1.5])
def test_min_background_must_be_a_positive_integer(bad):
    with pytest.raises(ValueError, match="min_background"):
        derive_points(np.zeros((8, 8)), "s", np.random.default_rng(0), min_background=bad)
