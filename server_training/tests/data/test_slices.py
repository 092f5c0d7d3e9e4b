import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from covidal.data.io import write_volume
from covidal.data.slices import (
    SliceRecord,
    case_name,
    load_slice_folder,
    load_slices,
    load_volume_slices,
    records_kind,
)
from covidal.data.volume import Volume
from covidal.data.window import HUWindow, ImageKind
from covidal.errors import CovidalError

SHARED_DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"
SEMISEG = SHARED_DATA / "covid_semiseg" / "train"
DICOM = SHARED_DATA / "dicom"


def shared(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared data {path} is absent (it lives beside the checkout in ../shared/data)")
    return path


def slice_folders(root: Path, stems, mask_values=(0, 255), size=(6, 8)) -> tuple[Path, Path]:
    """images/<stem>.png with value 10 * index and masks/<stem>.png with the top-left pixel set."""
    images, masks = root / "images", root / "masks"
    images.mkdir(exist_ok=True)
    masks.mkdir(exist_ok=True)
    for index, stem in enumerate(stems):
        Image.fromarray(np.full(size, 10 * index, dtype=np.uint8)).save(images / f"{stem}.png")
        mask = np.full(size, mask_values[0], dtype=np.uint8)
        mask[0, 0] = mask_values[1]
        Image.fromarray(mask).save(masks / f"{stem}.png")
    return images, masks


def ct_volume(shape=(3, 4, 5)) -> Volume:
    """HU ramp: slice k holds -1350 + 375 * k (k = 0, 1, 2 -> window values 0, 0.25, 0.5)."""
    array = np.stack([np.full(shape[1:], -1350 + 375 * k, dtype=np.int16) for k in range(shape[0])])
    return Volume(array, spacing=(0.8, 0.8, 2.0), origin=(1.0, 2.0, 3.0))


def label_for(volume: Volume) -> Volume:
    """Label 1 at voxel (k, 0, 0) and 2 at (k, 1, 1) of every slice."""
    labels = np.zeros(volume.array.shape, dtype=np.uint8)
    labels[:, 0, 0] = 1
    labels[:, 1, 1] = 2
    return volume.with_array(labels)


# ---------------------------------------------------------------- slice folders


def test_slice_folder_records_in_natural_order(tmp_path):
    images, masks = slice_folders(tmp_path, ["10", "2", "1"])
    records = load_slice_folder(images, masks)
    assert [r.slice_id for r in records] == ["1", "2", "10"]
    assert [r.case_id for r in records] == ["1", "2", "10"]
    assert all(r.slice_index is None for r in records)
    # stems were written in the order 10, 2, 1 with values 0, 10, 20
    assert [float(r.image[0, 0]) for r in records] == pytest.approx([20 / 255, 10 / 255, 0.0])
    for record in records:
        assert record.image.dtype == np.float32 and record.image.shape == (6, 8)
        assert record.mask.dtype == np.uint8
        assert record.mask.sum() == 1 and record.mask[0, 0] == 1


def test_natural_order_with_text_around_numbers(tmp_path):
    images, _ = slice_folders(tmp_path, ["case10", "case2", "Case1b", "a"])
    assert [r.slice_id for r in load_slice_folder(images, None)] == ["a", "Case1b", "case2", "case10"]


def test_slice_folder_without_masks(tmp_path):
    images, _ = slice_folders(tmp_path, ["1", "2"])
    assert [r.mask for r in load_slice_folder(images, None)] == [None, None]


@pytest.mark.parametrize(
    ("mask_values", "mask_class", "expected_sum"),
    [((0, 1), None, 1), ((0, 255), None, 1), ((0, 2), None, 1), ((0, 2), 2, 1), ((0, 2), 1, 0), ((1, 2), 1, 47)],
)
def test_slice_folder_mask_values(tmp_path, mask_values, mask_class, expected_sum):
    images, masks = slice_folders(tmp_path, ["1"], mask_values=mask_values)
    (record,) = load_slice_folder(images, masks, mask_class)
    assert set(np.unique(record.mask)) <= {0, 1}
    assert record.mask.sum() == expected_sum


def test_jpeg_images_pair_with_png_masks_and_hidden_files_are_ignored(tmp_path):
    images, masks = slice_folders(tmp_path, ["1"])
    (images / "1.png").rename(images / "1.jpg")
    (images / "._1.jpg").write_bytes(b"macOS resource fork, not an image")
    (images / "notes.txt").write_text("ignored")
    assert [r.slice_id for r in load_slice_folder(images, masks)] == ["1"]


def test_16_bit_slices_are_windowed(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(np.array([[0, 150]], dtype=np.uint16)).save(images / "1.png")
    (record,) = load_slice_folder(images, None, window=HUWindow(level=75, width=150))
    np.testing.assert_allclose(record.image, [[0.0, 1.0]])


def test_missing_folders_are_refused(tmp_path):
    images, masks = slice_folders(tmp_path, ["1"])
    with pytest.raises(CovidalError, match="nope does not exist"):
        load_slice_folder(tmp_path / "nope", masks)
    with pytest.raises(CovidalError, match="gone does not exist"):
        load_slice_folder(images, tmp_path / "gone")


def test_empty_folder_is_refused(tmp_path):
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(CovidalError, match="holds no PNG/JPG images"):
        load_slice_folder(tmp_path, None)


def test_image_without_mask_is_refused_listing_stems(tmp_path):
    images, masks = slice_folders(tmp_path, [str(n) for n in range(8)])
    for stem in ("3", "5", "6", "7", "0", "1"):
        (masks / f"{stem}.png").unlink()
    with pytest.raises(CovidalError, match=r"6 images in .* have no match among the masks .*: 0, 1, 3, 5, 6, \.\.\.$"):
        load_slice_folder(images, masks)


def test_mask_without_image_is_refused(tmp_path):
    images, masks = slice_folders(tmp_path, ["1", "2"])
    (images / "2.png").unlink()
    with pytest.raises(CovidalError, match=r"1 masks in .* have no match among the images .*: 2$"):
        load_slice_folder(images, masks)


def test_two_files_with_one_stem_are_refused(tmp_path):
    images, masks = slice_folders(tmp_path, ["1"])
    shutil.copy(images / "1.png", images / "1.jpg")
    with pytest.raises(CovidalError, match="two files with stem '1'"):
        load_slice_folder(images, masks)


def test_mask_size_mismatch_is_refused(tmp_path):
    images, masks = slice_folders(tmp_path, ["1"])
    Image.fromarray(np.zeros((6, 9), dtype=np.uint8)).save(masks / "1.png")
    with pytest.raises(CovidalError, match=r"mask .*1\.png is 9x6 pixels but image .*1\.png is 8x6"):
        load_slice_folder(images, masks)


@pytest.mark.parametrize("name", ["1.png", "1.jpg"])
def test_truncated_slice_is_refused(tmp_path, name):
    images, masks = slice_folders(tmp_path, [])
    noise = np.random.default_rng(0).integers(0, 256, size=(64, 64), dtype=np.uint8)
    Image.fromarray(noise).save(images / name)
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(masks / "1.png")
    data = (images / name).read_bytes()
    (images / name).write_bytes(data[: len(data) // 2])
    with pytest.raises(CovidalError, match=f"cannot read image .*{name}"):
        load_slice_folder(images, masks)


# ---------------------------------------------------------------- volume slices


def test_volume_slices_window_and_masks():
    volume = ct_volume()
    records = load_volume_slices(volume, label_for(volume), "lung7")
    assert [r.slice_id for r in records] == ["lung7:0", "lung7:1", "lung7:2"]
    assert [r.slice_index for r in records] == [0, 1, 2]
    assert {r.case_id for r in records} == {"lung7"}
    assert [float(r.image.mean()) for r in records] == pytest.approx([0.0, 0.25, 0.5])
    for record in records:
        assert record.image.dtype == np.float32 and record.image.shape == (4, 5)
        assert record.mask.dtype == np.uint8
        assert record.mask[0, 0] == 1 and record.mask[1, 1] == 1 and record.mask.sum() == 2


@pytest.mark.parametrize(("mask_class", "on_pixel"), [(1, (0, 0)), (2, (1, 1))])
def test_volume_slices_mask_class(mask_class, on_pixel):
    volume = ct_volume()
    records = load_volume_slices(volume, label_for(volume), "c", mask_class=mask_class)
    assert all(r.mask.sum() == 1 and r.mask[on_pixel] == 1 for r in records)


def test_volume_slices_without_label_and_8_bit_volume():
    volume = Volume(np.full((2, 3, 3), 51, dtype=np.uint8))
    records = load_volume_slices(volume, None, "c")
    assert [r.mask for r in records] == [None, None]
    assert all(np.allclose(r.image, 0.2) for r in records)


def test_volume_slices_refuse_label_on_another_grid():
    volume = ct_volume()
    shifted = Volume(label_for(volume).array, volume.spacing, (1.0, 2.0, 9.0))
    with pytest.raises(CovidalError, match="label volume of case c does not match its image: origin"):
        load_volume_slices(volume, shifted, "c")


def test_volume_slices_refuse_bad_mask_class():
    volume = ct_volume()
    with pytest.raises(CovidalError, match="mask class"):
        load_volume_slices(volume, label_for(volume), "c", mask_class=0)


# ---------------------------------------------------------------- case names and dispatch


@pytest.mark.parametrize(
    ("name", "expected"),
    [("a.nii.gz", "a"), ("A.NII.GZ", "A"), ("b.nrrd", "b"), ("c.mhd", "c"), ("x.y.nii", "x.y"), ("p.png", "p.png")],
)
def test_case_name_of_files(tmp_path, name, expected):
    assert case_name(tmp_path / name) == expected


def test_case_name_of_folder(tmp_path):
    (tmp_path / "series.nii").mkdir()
    assert case_name(tmp_path / "series.nii") == "series.nii"


def test_load_slices_single_volume_with_label(tmp_path):
    volume = ct_volume()
    write_volume(volume, tmp_path / "ct.nii.gz")
    write_volume(label_for(volume), tmp_path / "labels.nrrd")
    records = load_slices(tmp_path / "ct.nii.gz", tmp_path / "labels.nrrd", mask_class=2)
    assert [r.slice_id for r in records] == ["ct:0", "ct:1", "ct:2"]
    assert all(r.mask.sum() == 1 and r.mask[1, 1] == 1 for r in records)


def test_load_slices_single_volume_refuses_a_masks_folder(tmp_path):
    write_volume(ct_volume(), tmp_path / "ct.nrrd")
    (tmp_path / "labels").mkdir()
    with pytest.raises(CovidalError, match="give its label volume file"):
        load_slices(tmp_path / "ct.nrrd", tmp_path / "labels")


def test_load_slices_png_folder(tmp_path):
    images, masks = slice_folders(tmp_path, ["2", "1"])
    records = load_slices(images, masks, window=HUWindow(level=0, width=1))
    assert [r.slice_id for r in records] == ["1", "2"]
    assert float(records[1].image[0, 0]) == pytest.approx(0.0)  # 8-bit: the window is not used


def volume_cases(root: Path, label_names: dict[str, str]) -> tuple[Path, Path]:
    """cases/<name>.nii.gz with labels/<label file name>, for each name in ``label_names``."""
    cases, labels = root / "cases", root / "labels"
    cases.mkdir()
    labels.mkdir()
    for name, label_file in label_names.items():
        volume = ct_volume()
        write_volume(volume, cases / f"{name}.nii.gz")
        write_volume(label_for(volume), labels / label_file)
    return cases, labels


def test_load_slices_folder_of_volumes_matches_labels_by_name(tmp_path):
    cases, labels = volume_cases(tmp_path, {"p10": "p10.nrrd", "p2": "p2.nii.gz"})
    (cases / "not_a_series").mkdir()  # subfolders without DICOM are ignored
    records = load_slices(cases, labels)
    assert [r.slice_id for r in records] == ["p2:0", "p2:1", "p2:2", "p10:0", "p10:1", "p10:2"]
    assert all(r.mask.sum() == 2 for r in records)
    assert [r.mask for r in load_slices(cases, None)] == [None] * 6


def test_load_slices_refuses_case_without_label(tmp_path):
    cases, labels = volume_cases(tmp_path, {"p1": "p1.nrrd", "p2": "p2.nrrd"})
    (labels / "p2.nrrd").unlink()
    with pytest.raises(CovidalError, match=r"1 cases in .* have no match among the label volumes .*: p2$"):
        load_slices(cases, labels)


def test_load_slices_refuses_label_without_case(tmp_path):
    cases, labels = volume_cases(tmp_path, {"p1": "p1.nrrd"})
    shutil.copy(labels / "p1.nrrd", labels / "p9.nrrd")
    with pytest.raises(CovidalError, match=r"1 label volumes in .* have no match among the cases .*: p9$"):
        load_slices(cases, labels)


def test_load_slices_refuses_two_labels_for_one_case(tmp_path):
    cases, labels = volume_cases(tmp_path, {"p1": "p1.nrrd"})
    shutil.copy(labels / "p1.nrrd", labels / "p1.mha")
    with pytest.raises(CovidalError, match="two entries named 'p1'"):
        load_slices(cases, labels)


def test_load_slices_refuses_label_file_for_case_folder(tmp_path):
    cases, labels = volume_cases(tmp_path, {"p1": "p1.nrrd"})
    with pytest.raises(CovidalError, match="must be a folder of label volumes"):
        load_slices(cases, labels / "p1.nrrd")


def test_load_slices_refuses_folder_with_nothing_to_load(tmp_path):
    (tmp_path / "readme.txt").write_text("nothing")
    with pytest.raises(CovidalError, match="holds no PNG/JPG slices, DICOM series or volume files"):
        load_slices(tmp_path, None)


def test_load_slices_refuses_missing_paths(tmp_path):
    images, _ = slice_folders(tmp_path, ["1"])
    with pytest.raises(CovidalError, match="images path .*missing does not exist"):
        load_slices(tmp_path / "missing", None)
    with pytest.raises(CovidalError, match="masks path .*gone does not exist"):
        load_slices(images, tmp_path / "gone")


def test_load_slices_dicom_series_folder():
    records = load_slices(shared(DICOM / "lungmask_minimal_headers"), None)
    assert [r.slice_id for r in records] == ["lungmask_minimal_headers:0", "lungmask_minimal_headers:1"]
    assert all(r.image.shape == (512, 512) and 0 <= r.image.min() and r.image.max() <= 1 for r in records)


def test_load_slices_dicom_subfolder_with_label_named_after_it(tmp_path):
    series = shared(DICOM / "dcmqi_chest_ct_3slice")
    cases, labels = tmp_path / "cases", tmp_path / "labels"
    shutil.copytree(series, cases / "chest", ignore=shutil.ignore_patterns("*.nrrd", "LICENSE*"))
    labels.mkdir()
    shutil.copy(series / "liver_spine_seg.nrrd", labels / "chest.nrrd")
    records = load_slices(cases, labels, mask_class=2)
    assert [r.slice_id for r in records] == ["chest:0", "chest:1", "chest:2"]
    assert all(r.mask.sum() > 0 for r in records)


# ---------------------------------------------------------------- real 2D data


def test_covid_semiseg_train_slices():
    records = load_slices(shared(SEMISEG / "images"), SEMISEG / "masks")
    assert len(records) == 50
    for record in records:
        assert record.mask.shape == record.image.shape
        assert set(np.unique(record.mask)) <= {0, 1}
        assert record.image.dtype == np.float32 and 0.0 <= record.image.min() and record.image.max() <= 1.0
    assert sum(int(r.mask.sum()) for r in records) > 0


def test_covid_semiseg_multiclass_masks_agree_with_binary_ones():
    binary = load_slice_folder(shared(SEMISEG / "images"), SEMISEG / "masks")
    multiclass = load_slice_folder(SEMISEG / "images", SEMISEG / "masks_multiclass")
    consolidation = load_slice_folder(SEMISEG / "images", SEMISEG / "masks_multiclass", mask_class=2)
    ground_glass = load_slice_folder(SEMISEG / "images", SEMISEG / "masks_multiclass", mask_class=1)
    for whole, any_class, class_2, class_1 in zip(binary, multiclass, consolidation, ground_glass):
        np.testing.assert_array_equal(any_class.mask, whole.mask)
        np.testing.assert_array_equal(class_1.mask + class_2.mask, whole.mask)
    assert sum(int(r.mask.sum()) for r in consolidation) > 0


# ---------------------------------------------------------------- image kinds


def test_records_say_the_kind_of_image_they_came_from(tmp_path):
    images, _ = slice_folders(tmp_path, ["1", "2"])
    sixteen = tmp_path / "sixteen"
    sixteen.mkdir()
    Image.fromarray(np.array([[0, 150]], dtype=np.uint16)).save(sixteen / "1.png")
    eight_bit = load_slice_folder(images, None)
    hu = load_volume_slices(ct_volume(), None, "c")
    assert {r.kind for r in eight_bit} == {ImageKind.EIGHT_BIT} and records_kind(eight_bit) is ImageKind.EIGHT_BIT
    assert records_kind(hu) is ImageKind.HU and records_kind(load_slice_folder(sixteen, None)) is ImageKind.HU
    assert records_kind(load_volume_slices(Volume(np.zeros((2, 3, 3), np.uint8)), None, "c")) is ImageKind.EIGHT_BIT
    assert records_kind([*eight_bit, *hu]) is None  # mixed: no one kind
    by_hand = SliceRecord("x", np.zeros((2, 2), np.float32), None, "x", None)
    assert records_kind([*hu, by_hand]) is None and records_kind([]) is None
