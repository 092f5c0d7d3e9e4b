"""Tests of the 3D case set: real chest CT anatomy with SYNTHETIC lesions, one case per lesion seed,
every second case mirrored left-right.

The real chest CT is fetched once into the default cache (``$COVIDAL_CACHE`` or
``~/.cache/covidal``), as in ``tests/test_sample_data.py``. To stay fast the sets here keep a
slab of 24 axial slices (``CaseSetConfig.slices``); the command's test covers the whole CT.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from covidal.data.volume import Volume
from covidal.errors import CovidalError
from covidal.sample_data.demo import (
    DEMO_RECIPE_VERSION,
    REFERENCE_CT_SHA256,
    fetch_reference_ct,
)
from covidal.sample_data.synthetic_cases import (
    CASES_FILE,
    CaseSetConfig,
    case_names,
    lesion_seed,
    make_lesion_cases,
)
from covidal.volumes.lungs import segment_lungs

SLAB = (60, 84)  # 24 slices through the middle of the lungs
VOXEL_ML = 1.5**3 / 1000.0
FOLDERS = ("images", "labels", "lungs")


@pytest.fixture(scope="module")
def reference_ct_path() -> Path:
    return fetch_reference_ct()


@pytest.fixture(scope="module")
def slab(reference_ct_path: Path) -> sitk.Image:
    """The source slab, read independently of the module under test."""
    return sitk.ReadImage(str(reference_ct_path), sitk.sitkInt16)[:, :, SLAB[0] : SLAB[1]]


@pytest.fixture(scope="module")
def case_set(tmp_path_factory: pytest.TempPathFactory, reference_ct_path: Path) -> Path:
    """Two cases of the slab, seed 0, the second one mirrored (read-only: copy before changing anything)."""
    out = tmp_path_factory.mktemp("cases")
    make_lesion_cases(out, CaseSetConfig(count=2, slices=SLAB), cache_dir=reference_ct_path.parent)
    return out


def read(out: Path, folder: str, name: str) -> sitk.Image:
    return sitk.ReadImage(str(out / folder / f"{name}.nrrd"))


def array(out: Path, folder: str, name: str) -> np.ndarray:
    return sitk.GetArrayFromImage(read(out, folder, name))


def test_files_are_on_the_source_grid_with_lesions_inside_the_lungs(case_set: Path, slab: sitk.Image) -> None:
    assert sorted(p.name for p in case_set.iterdir()) == [CASES_FILE, *FOLDERS]
    for folder in FOLDERS:
        assert sorted(p.name for p in (case_set / folder).iterdir()) == ["case_00.nrrd", "case_01.nrrd"]
    for name in ("case_00", "case_01"):
        for folder, dtype in zip(FOLDERS, (np.int16, np.uint8, np.uint8)):
            image = read(case_set, folder, name)
            assert image.GetSize() == (233, 167, 24)
            assert image.GetSpacing() == slab.GetSpacing()
            assert image.GetOrigin() == slab.GetOrigin()
            assert image.GetDirection() == slab.GetDirection()
            assert sitk.GetArrayViewFromImage(image).dtype == dtype
        labels, lungs = array(case_set, "labels", name), array(case_set, "lungs", name)
        assert set(np.unique(labels)) == {0, 1} and set(np.unique(lungs)) == {0, 1}
        assert not (labels.astype(bool) & ~lungs.astype(bool)).any()
    # The slab starts 60 slices (90 mm) above the CT's first slice: SimpleITK moved the origin with it.
    assert slab.GetOrigin()[2] == pytest.approx(540.2000122070312 + 60 * 1.5)


def test_the_second_case_is_the_mirrored_anatomy_with_other_lesions(case_set: Path, slab: sitk.Image) -> None:
    source = sitk.GetArrayFromImage(slab)
    lungs = [array(case_set, "lungs", name).astype(bool) for name in ("case_00", "case_01")]
    labels = [array(case_set, "labels", name).astype(bool) for name in ("case_00", "case_01")]
    images = [array(case_set, "images", name) for name in ("case_00", "case_01")]
    assert np.array_equal(lungs[0], segment_lungs(Volume.from_sitk(slab)))
    assert np.array_equal(lungs[1], lungs[0][:, :, ::-1])
    assert not np.array_equal(lungs[1], lungs[0])
    assert np.array_equal(images[0][~lungs[0]], source[~lungs[0]])  # only lung voxels are painted
    assert np.array_equal(images[1][~lungs[1]], source[:, :, ::-1][~lungs[1]])
    assert (images[0] >= source).all()  # lesions only raise HU
    assert not np.array_equal(labels[1], labels[0][:, :, ::-1])  # its own lesions, not mirrored ones


def test_cases_json_records_recipe_seeds_counts_volumes_and_provenance(case_set: Path) -> None:
    record = json.loads((case_set / CASES_FILE).read_text())
    assert record["synthetic_lesions"] is True and record["recipe_version"] == DEMO_RECIPE_VERSION
    assert record["source"]["sha256"] == REFERENCE_CT_SHA256
    assert record["config"] == {
        "count": 2,
        "seed": 0,
        "mirror_alternate": True,
        "lesions_range": [6, 16],
        "slices": [60, 84],
    }
    assert [case["name"] for case in record["cases"]] == ["case_00", "case_01"]
    assert [case["mirrored"] for case in record["cases"]] == [False, True]
    for index, case in enumerate(record["cases"]):
        assert case["lesion_seed"] == lesion_seed(0, index)
        # The count is the first draw of the case's own generator, in the inclusive range.
        assert case["lesions"] == np.random.default_rng(case["lesion_seed"]).integers(6, 17)
        labels = array(case_set, "labels", case["name"])
        assert case["lesion_ml"] == pytest.approx(labels.sum() * VOXEL_ML, abs=5e-4)
        assert "SYNTHETIC" in case["provenance"] and "slices 60:84" in case["provenance"]
        assert ("mirrored left-right" in case["provenance"]) == case["mirrored"]


def test_generation_is_deterministic_and_a_complete_set_is_reused(
    case_set: Path, reference_ct_path: Path, tmp_path: Path
) -> None:
    config = CaseSetConfig(count=2, slices=SLAB)
    assert make_lesion_cases(tmp_path, config, reference_ct_path.parent) == ["case_00", "case_01"]
    for folder in FOLDERS:
        for name in ("case_00", "case_01"):
            assert np.array_equal(array(tmp_path, folder, name), array(case_set, folder, name))
    assert (tmp_path / CASES_FILE).read_text() == (case_set / CASES_FILE).read_text()

    files = sorted(tmp_path.rglob("*.*"))
    stamps = [path.stat().st_mtime_ns for path in files]
    assert make_lesion_cases(tmp_path, config, reference_ct_path.parent) == ["case_00", "case_01"]
    assert [path.stat().st_mtime_ns for path in files] == stamps  # nothing rewritten


def test_another_config_regenerates_and_without_mirroring_the_anatomy_repeats(
    case_set: Path, reference_ct_path: Path, tmp_path: Path
) -> None:
    out = tmp_path / "set"
    shutil.copytree(case_set, out)
    config = CaseSetConfig(count=2, mirror_alternate=False, lesions_range=(2, 2), slices=SLAB)
    make_lesion_cases(out, config, reference_ct_path.parent)
    record = json.loads((out / CASES_FILE).read_text())
    assert record["config"]["mirror_alternate"] is False
    assert [case["lesions"] for case in record["cases"]] == [2, 2]
    assert np.array_equal(array(out, "lungs", "case_01"), array(out, "lungs", "case_00"))
    assert not np.array_equal(array(out, "labels", "case_01"), array(out, "labels", "case_00"))


def test_lesion_seeds_depend_on_the_set_seed_and_the_case_index() -> None:
    seeds = {(seed, index): lesion_seed(seed, index) for seed in range(3) for index in range(50)}
    assert len(set(seeds.values())) == len(seeds)
    assert all(0 <= value < 2**32 for value in seeds.values())
    assert lesion_seed(7, 3) == lesion_seed(7, 3)


@pytest.mark.parametrize(
    ("count", "index", "expected"),
    [(1, 0, "case_00"), (3, 2, "case_02"), (100, 99, "case_99"), (101, 0, "case_000"), (101, 100, "case_100")],
)
def test_case_names_are_zero_padded_to_sort_as_numbers(count: int, index: int, expected: str) -> None:
    names = case_names(count)
    assert len(names) == count and names == sorted(names)
    assert names[index] == expected


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"count": 0}, "count"),
        ({"count": 2, "seed": -1}, "seed"),
        ({"count": 2, "lesions_range": (5, 2)}, "lesions_range"),
        ({"count": 2, "lesions_range": (-1, 2)}, "lesions_range"),
        ({"count": 2, "lesions_range": (1, 2, 3)}, "lesions_range"),
        ({"count": 2, "lesions_range": "6:16"}, "lesions_range"),
        ({"count": 2, "lesions_range": (1.5, 2)}, "lesions_range"),
        ({"count": 2, "slices": (10, 10)}, "slices"),
        ({"count": 2, "slices": (-1, 5)}, "slices"),
    ],
)
def test_bad_config_is_rejected(arguments: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CaseSetConfig(**arguments)


def test_config_from_json_lists_equals_the_original() -> None:
    config = CaseSetConfig(count=3, lesions_range=(2, 4), slices=(1, 9))
    assert CaseSetConfig(**json.loads(json.dumps(config.to_json()))) == config


def test_bad_output_or_slab_is_a_covidal_error(reference_ct_path: Path, tmp_path: Path) -> None:
    cache = reference_ct_path.parent
    (tmp_path / "file").write_text("x")
    with pytest.raises(CovidalError, match="is a file"):
        make_lesion_cases(tmp_path / "file", CaseSetConfig(count=1), cache)
    stale = tmp_path / "stale"
    (stale / "labels").mkdir(parents=True)
    (stale / "labels" / "case_07.nrrd").write_bytes(b"")
    with pytest.raises(CovidalError, match=r"case_07\.nrrd, not among the 2 cases"):
        make_lesion_cases(stale, CaseSetConfig(count=2), cache)
    with pytest.raises(CovidalError, match="exceed the reference CT, which has 191 slices"):
        make_lesion_cases(tmp_path / "thick", CaseSetConfig(count=1, slices=(150, 200)), cache)
    assert not (tmp_path / "thick" / CASES_FILE).exists()
