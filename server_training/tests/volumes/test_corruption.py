"""Tests of deliberately corrupted pseudo-labels: each kind does what it says, the folder copy corrupts
exactly round(rate * N) volumes chosen by the seed, records them, and keeps names and geometry."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from covidal.errors import CovidalError
from covidal.volumes.corruption import (
    CORRUPTION_FILE,
    DILATE_MM,
    SHIFT_MM,
    Corruption,
    corrupt_label,
    corrupt_label_folder,
    dilate_label,
    shift_label,
)

SPACING = (0.7, 0.8, 2.5)  # (i, j, k) mm: the shared geometry of the conftest volume writer
SHAPE = (6, 40, 48)  # [K, J, I]
SUFFIXES = (".nrrd", ".nii.gz", ".mha")


def box_label(shape=SHAPE, corner=(2, 10, 12), size=(2, 6, 5), value=1, dtype=np.uint8) -> np.ndarray:
    """``[K, J, I]`` zeros with a box of ``value`` at ``corner`` (k, j, i)."""
    label = np.zeros(shape, dtype=dtype)
    label[tuple(slice(c, c + s) for c, s in zip(corner, size))] = value
    return label


def centroid_mm(label: np.ndarray) -> np.ndarray:
    """Centroid ``(i, j, k)`` in mm of the non-zero voxels (axis-aligned grid with ``SPACING``)."""
    return np.argwhere(label != 0).mean(axis=0)[::-1] * np.array(SPACING)


def brute_force_ball(label: np.ndarray, radius_mm: float) -> np.ndarray:
    """Voxels whose centre is within ``radius_mm`` of some lesion voxel's centre, checked pair by pair."""
    spacing_kji = np.array(SPACING[::-1])
    everything = np.argwhere(np.ones(label.shape, dtype=bool)) * spacing_kji
    lesion = np.argwhere(label != 0) * spacing_kji
    nearest = np.min(np.linalg.norm(everything[:, None, :] - lesion[None, :, :], axis=2), axis=1)
    return (nearest <= radius_mm + 1e-9).reshape(label.shape)


# --- single-volume corruptions ---------------------------------------------------------------


def test_erase_leaves_no_lesion_in_the_input_dtype() -> None:
    label = box_label(value=2, dtype=np.int16)
    erased = corrupt_label(label, Corruption.ERASE, SPACING, np.random.default_rng(0))
    assert erased.dtype == np.int16 and erased.shape == SHAPE and not erased.any()


@pytest.mark.parametrize("radius_mm", [0.0, 0.8, 2.5, 6.0])
def test_dilate_is_the_physical_ball_around_the_lesion_inside_the_volume(radius_mm: float) -> None:
    label = box_label(corner=(0, 3, 40), size=(1, 2, 8))  # touches the k=0 and the i=47 borders
    label[4, 30, 10] = 1
    grown = dilate_label(label, radius_mm, SPACING)
    assert grown.shape == SHAPE
    assert np.array_equal(grown, brute_force_ball(label, radius_mm))
    assert (grown >= (label != 0)).all()


def test_dilate_by_6_mm_reaches_2_slices_and_7_rows_from_a_voxel() -> None:
    label = np.zeros(SHAPE, dtype=np.uint8)
    label[3, 20, 24] = 1
    grown = corrupt_label(label, Corruption.DILATE, SPACING, np.random.default_rng(0))
    assert DILATE_MM == 6.0
    ks, js, is_ = np.nonzero(grown)
    assert (ks.min(), ks.max()) == (1, 5)  # 2 x 2.5 mm <= 6 < 3 x 2.5 mm
    assert (js.min(), js.max()) == (13, 27)  # 7 x 0.8 = 5.6 mm <= 6 < 8 x 0.8 mm
    assert (is_.min(), is_.max()) == (16, 32)  # 8 x 0.7 = 5.6 mm <= 6 < 9 x 0.7 mm
    assert grown.dtype == np.uint8 and set(np.unique(grown)) == {0, 1}


@pytest.mark.parametrize(
    ("offset_mm", "expected_mm"),
    [
        ((15.0, 0.0, 0.0), (14.7, 0.0, 0.0)),  # 15 / 0.7 = 21.4 -> 21 voxels
        ((0.0, -15.0, 0.0), (0.0, -15.2, 0.0)),  # -15 / 0.8 = -18.75 -> -19 voxels
        ((0.0, 0.0, 5.0), (0.0, 0.0, 5.0)),  # 2 slices of 2.5 mm
        ((-4.0, 4.0, -2.5), (-4.2, 4.0, -2.5)),  # -5.7 -> -6 voxels; 5 voxels; -1 slice
    ],
)
def test_shift_moves_the_centroid_by_the_offset_in_whole_voxels(offset_mm, expected_mm) -> None:
    label = box_label(shape=(8, 60, 60), corner=(3, 25, 25), size=(2, 6, 5))
    shifted = shift_label(label, offset_mm, SPACING)
    assert shifted.sum() == label.sum()
    moved = centroid_mm(shifted) - centroid_mm(label)
    assert moved == pytest.approx(expected_mm, abs=1e-9)
    assert np.all(np.abs(moved - np.array(offset_mm)) <= np.array(SPACING) / 2 + 1e-9)


def test_shift_drops_what_leaves_the_volume_instead_of_wrapping() -> None:
    label = box_label(corner=(2, 10, 40), size=(2, 6, 8))  # i = 40..47, the last 8 columns
    shifted = shift_label(label, (7 * 0.7, 0.0, 0.0), SPACING)  # 7 columns to the right
    assert shifted.sum() == label.sum() // 8  # only the first column stays inside
    assert shifted[:, :, 47].sum() == label[:, :, 40].sum() and not shifted[:, :, :47].any()


def test_corrupt_label_shifts_in_plane_by_shift_mm_in_drawn_directions() -> None:
    label = box_label(shape=(6, 80, 80), corner=(2, 37, 37), size=(2, 5, 5))
    moves = []
    for seed in range(6):
        shifted = corrupt_label(label, Corruption.SHIFT, SPACING, np.random.default_rng(seed))
        moved = centroid_mm(shifted) - centroid_mm(label)
        assert moved[2] == 0.0  # in-plane
        assert abs(np.hypot(*moved[:2]) - SHIFT_MM) <= np.hypot(0.35, 0.4)  # rounding to whole voxels
        moves.append(moved)
    assert len({tuple(np.sign(m[:2])) for m in moves}) >= 2  # the direction is drawn


def test_mixed_draws_each_single_volume_kind() -> None:
    label = box_label(shape=(6, 80, 80), corner=(2, 37, 37), size=(2, 5, 5))
    seen = set()
    for seed in range(30):
        result = corrupt_label(label, Corruption.MIXED, SPACING, np.random.default_rng(seed)).astype(bool)
        if not result.any():
            seen.add("erase")
        elif result.sum() > label.sum() and (result >= label.astype(bool)).all():
            seen.add("dilate")
        else:
            assert result.sum() == label.sum() and not np.array_equal(result, label.astype(bool))
            seen.add("shift")
    assert seen == {"erase", "dilate", "shift"}


@pytest.mark.parametrize(
    ("label", "kind", "spacing", "message"),
    [
        (box_label(), Corruption.SWAP, SPACING, "other cases"),
        (box_label(), "blur", SPACING, "blur"),
        (box_label()[0], Corruption.ERASE, SPACING, "3D"),
        (box_label(), Corruption.DILATE, (0.7, 0.0, 2.5), "spacing"),
        (box_label(), Corruption.DILATE, (0.7, 0.8), "spacing"),
    ],
    ids=["swap", "unknown kind", "2D", "zero spacing", "two spacings"],
)
def test_corrupt_label_rejects_bad_input(label, kind, spacing, message) -> None:
    with pytest.raises(ValueError, match=message):
        corrupt_label(label, kind, spacing, np.random.default_rng(0))


# --- folders ------------------------------------------------------------------------------------


def write_label_folder(folder: Path, volume_writer, count: int = 7, shapes=None) -> dict[str, np.ndarray]:
    """``count`` label volumes ``p1``.. with boxes at different places, suffixes cycling through ``SUFFIXES``.

    Returns the arrays by file name.
    """
    folder.mkdir(parents=True)
    arrays = {}
    for index in range(count):
        shape = SHAPE if shapes is None else shapes[index]
        name = f"p{index + 1}{SUFFIXES[index % len(SUFFIXES)]}"
        arrays[name] = box_label(shape=shape, corner=(1 + index % 3, 5 + 3 * index, 4 + 4 * index))
        volume_writer(arrays[name], folder / name)
    return arrays


@pytest.fixture
def label_folder(tmp_path: Path, volume_writer) -> tuple[Path, dict[str, np.ndarray]]:
    folder = tmp_path / "labels"
    return folder, write_label_folder(folder, volume_writer)


def read_array(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def geometry(path: Path) -> tuple:
    image = sitk.ReadImage(str(path))
    return image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection()


def same_geometry(path: Path, reference: Path, exact: bool) -> bool:
    """Same size, spacing, origin and direction; to the last bit when ``exact``.

    Rewriting an oblique volume can move the last bit: NRRD stores direction x spacing, NIfTI
    float32 and a quaternion. MetaImage stores them apart, in full precision.
    """
    (size, *rest), (reference_size, *reference_rest) = geometry(path), geometry(reference)
    if exact:
        return (size, *rest) == (reference_size, *reference_rest)
    return size == reference_size and all(np.allclose(a, b, rtol=0, atol=1e-6) for a, b in zip(rest, reference_rest))


@pytest.mark.parametrize(("rate", "expected"), [(0.0, 0), (0.3, 2), (0.5, 4), (0.64, 4), (1.0, 7)])
def test_exactly_round_rate_n_are_corrupted_listed_and_the_rest_copied(label_folder, tmp_path, rate, expected):
    folder, arrays = label_folder
    out = tmp_path / "out"
    record = corrupt_label_folder(folder, out, rate, Corruption.ERASE, seed=5)

    assert expected == round(rate * 7)
    assert record == json.loads((out / CORRUPTION_FILE).read_text())
    assert sorted(p.name for p in out.iterdir()) == sorted([*arrays, CORRUPTION_FILE])  # names and suffixes kept
    listed = {entry["name"] for entry in record["corrupted"]}
    assert len(listed) == expected and record["cases"] == 7
    assert set(record["unchanged"]) == {f"p{n}" for n in range(1, 8)} - listed
    for name, original in arrays.items():
        written = read_array(out / name)
        case = name.split(".")[0]
        assert written.dtype == original.dtype
        assert np.array_equal(written, np.zeros_like(original) if case in listed else original)
        assert same_geometry(out / name, folder / name, exact=case not in listed or name.endswith(".mha"))
    unchanged = [name for name in arrays if name.split(".")[0] not in listed]
    assert all((out / name).read_bytes() == (folder / name).read_bytes() for name in unchanged)
    assert all(entry["kind"] == "erase" and entry["dice_to_original"] == 0.0 for entry in record["corrupted"])
    assert all(entry["file"].startswith(entry["name"] + ".") for entry in record["corrupted"])


def test_same_seed_gives_the_same_choice_and_copies_another_seed_another_choice(label_folder, tmp_path):
    folder, arrays = label_folder
    first = corrupt_label_folder(folder, tmp_path / "a", 0.5, Corruption.MIXED, seed=3)
    again = corrupt_label_folder(folder, tmp_path / "b", 0.5, Corruption.MIXED, seed=3)
    other = corrupt_label_folder(folder, tmp_path / "c", 0.5, Corruption.MIXED, seed=4)
    assert first == again
    for name in arrays:
        assert np.array_equal(read_array(tmp_path / "a" / name), read_array(tmp_path / "b" / name))
    chosen = [{entry["name"] for entry in record["corrupted"]} for record in (first, other)]
    assert chosen[0] != chosen[1] and len(chosen[1]) == 4


def test_dilate_and_shift_use_each_files_spacing(label_folder, tmp_path):
    folder, arrays = label_folder
    dilated = corrupt_label_folder(folder, tmp_path / "d", 1.0, Corruption.DILATE, seed=0)
    shifted = corrupt_label_folder(folder, tmp_path / "s", 1.0, Corruption.SHIFT, seed=0)
    assert all(entry["radius_mm"] == DILATE_MM for entry in dilated["corrupted"])
    for name, original in arrays.items():
        assert np.array_equal(read_array(tmp_path / "d" / name), dilate_label(original, DILATE_MM, SPACING))
    for entry in shifted["corrupted"]:
        voxels = np.array(entry["offset_voxels_ijk"])
        assert voxels[2] == 0 and entry["offset_mm_ijk"] == pytest.approx(voxels * np.array(SPACING))
        expected = shift_label(arrays[entry["file"]], voxels * np.array(SPACING), SPACING)
        assert np.array_equal(read_array(tmp_path / "s" / entry["file"]), expected)
        assert 0.0 <= entry["dice_to_original"] < 1.0


def test_swap_gives_the_original_label_of_another_case_of_the_same_size(tmp_path, volume_writer):
    shapes = [SHAPE, SHAPE, (6, 40, 50), SHAPE, (6, 40, 50)]
    arrays = write_label_folder(tmp_path / "labels", volume_writer, count=5, shapes=shapes)
    by_case = {name.split(".")[0]: name for name in arrays}
    record = corrupt_label_folder(tmp_path / "labels", tmp_path / "out", 1.0, Corruption.SWAP, seed=2)
    assert len(record["corrupted"]) == 5
    for entry in record["corrupted"]:
        source = entry["label_of"]
        assert entry["kind"] == "swap" and source != entry["name"]
        written = read_array(tmp_path / "out" / entry["file"])
        assert np.array_equal(written, arrays[by_case[source]])  # the original, not the source's own corruption
        assert written.shape == arrays[entry["file"]].shape


def test_mixed_includes_swap_only_where_a_same_size_case_exists(tmp_path, volume_writer):
    shapes = [SHAPE, SHAPE, SHAPE, (6, 40, 50)]
    write_label_folder(tmp_path / "labels", volume_writer, count=4, shapes=shapes)
    kinds = {case: set() for case in ("p1", "p2", "p3", "p4")}
    for seed in range(12):
        record = corrupt_label_folder(tmp_path / "labels", tmp_path / f"out{seed}", 1.0, Corruption.MIXED, seed)
        for entry in record["corrupted"]:
            kinds[entry["name"]].add(entry["kind"])
    assert "swap" not in kinds["p4"]
    assert set(itertools.chain(*kinds.values())) == {"erase", "dilate", "shift", "swap"}


def test_rate_zero_copies_float_multi_class_and_detached_labels_unchanged(tmp_path, volume_writer):
    folder = tmp_path / "labels"
    folder.mkdir()
    labels = {
        "a.nrrd": box_label(value=3, dtype=np.int16),
        "b.mha": box_label(dtype=np.float32),
        "c.mhd": box_label(value=2),
    }
    for name, array in labels.items():
        volume_writer(array, folder / name)
    record = corrupt_label_folder(folder, tmp_path / "out", 0, Corruption.DILATE, seed=0)
    assert record["corrupted"] == [] and record["unchanged"] == ["a", "b", "c"]
    for name, array in labels.items():
        written = read_array(tmp_path / "out" / name)
        assert written.dtype == array.dtype and np.array_equal(written, array)
        assert same_geometry(tmp_path / "out" / name, folder / name, exact=True)


def test_bad_folders_and_options_are_covidal_errors(label_folder, tmp_path, volume_writer):
    folder, _ = label_folder
    (tmp_path / "empty").mkdir()
    (tmp_path / "single").mkdir()
    volume_writer(box_label(), tmp_path / "single" / "p1.nrrd")
    (tmp_path / "fuzzy").mkdir()
    volume_writer(box_label().astype(np.float32) * 0.5, tmp_path / "fuzzy" / "p1.nrrd")
    (tmp_path / "odd").mkdir()
    volume_writer(box_label(), tmp_path / "odd" / "p1.nrrd")
    volume_writer(box_label(shape=(6, 40, 50)), tmp_path / "odd" / "p2.nrrd")
    (tmp_path / "stale").mkdir()
    volume_writer(box_label(), tmp_path / "stale" / "other.nrrd")
    same_folder = folder.parent / "x" / ".." / folder.name
    cases = [
        ((tmp_path / "missing", tmp_path / "o", 0.5, "erase", 0), "does not exist"),
        ((folder / "p1.nrrd", tmp_path / "o", 0.5, "erase", 0), "not a folder"),
        ((tmp_path / "empty", tmp_path / "o", 0.5, "erase", 0), "no label volumes"),
        ((folder, same_folder, 0.5, "erase", 0), "is the labels folder"),
        ((folder, folder / "p1.nrrd", 0.5, "erase", 0), "is a file"),
        ((folder, tmp_path / "stale", 0.5, "erase", 0), "other.nrrd"),
        ((folder, tmp_path / "o", -0.1, "erase", 0), r"rate .*\[0, 1\].*-0.1"),
        ((folder, tmp_path / "o", 1.5, "erase", 0), r"rate .*1.5"),
        ((folder, tmp_path / "o", math.nan, "erase", 0), r"rate .*nan"),
        ((folder, tmp_path / "o", 0.5, "blur", 0), "unknown corruption 'blur'"),
        ((folder, tmp_path / "o", 0.5, "erase", -1), "seed"),
        ((tmp_path / "single", tmp_path / "o", 0.0, "swap", 0), "at least 2"),
        ((tmp_path / "odd", tmp_path / "o", 1.0, "swap", 0), r"p1 .*no other label volume has that size"),
        ((tmp_path / "fuzzy", tmp_path / "o", 1.0, "erase", 0), "non-integer"),
    ]
    for arguments, message in cases:
        with pytest.raises(CovidalError, match=message):
            corrupt_label_folder(*arguments)
    assert not (tmp_path / "o" / CORRUPTION_FILE).exists()
