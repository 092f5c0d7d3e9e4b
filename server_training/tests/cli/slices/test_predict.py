"""``covidal predict``: outputs on the input's native grid (slice, folder, oblique volume) and bad requests."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from PIL import Image

from covidal.data.io import read_volume
from covidal.data.slices import load_slices, load_volume_slices
from covidal.data.window import HUWindow
from covidal.training.checkpoint import load_run
from covidal.training.inference import predict_probabilities

pytestmark = pytest.mark.usefixtures("single_thread_torch")

CPU = ("--device", "cpu", "--quiet")


def api_masks(run_dir, records) -> dict[str, np.ndarray]:
    """What the Python API predicts for ``records``: slice id -> bool ``[H, W]``."""
    run = load_run(run_dir)
    return {
        r.slice_id: p >= 0.5
        for r, p in predict_probabilities(run.model, records, run.config.image_size, torch.device("cpu"))
    }


def read_png(path) -> np.ndarray:
    return np.array(Image.open(path))


def test_predict_one_slice_writes_a_native_size_png(cli, tiny_run, synthetic_slices, tmp_path):
    out = tmp_path / "out" / "3.png"
    result = cli("predict", "--model", tiny_run, "--input", synthetic_slices.images / "3.png", "--out", out, *CPU)
    assert result.code == 0, result.err
    mask = read_png(out)
    assert mask.shape == (40, 48) and mask.dtype == np.uint8
    assert set(np.unique(mask)) <= {0, 255}
    expected = api_masks(tiny_run, load_slices(synthetic_slices.images, None))["3"]
    np.testing.assert_array_equal(mask == 255, expected)


def test_predict_folder_writes_one_png_per_slice(cli, tiny_run, make_slices, tmp_path):
    data = make_slices(3)
    Image.fromarray(np.full((64, 30), 90, np.uint8)).save(data.images / "tall.png")  # another native size
    out = tmp_path / "predictions"
    assert cli("predict", "--model", tiny_run, "--input", data.images, "--out", out, *CPU).code == 0
    assert sorted(p.name for p in out.iterdir()) == ["1.png", "2.png", "3.png", "tall.png"]
    expected = api_masks(tiny_run, load_slices(data.images, None))
    for stem, mask in expected.items():
        written = read_png(out / f"{stem}.png")
        assert written.shape == mask.shape == ((64, 30) if stem == "tall" else (40, 48))
        np.testing.assert_array_equal(written == 255, mask)


@pytest.mark.parametrize(("suffix", "window"), [(".nrrd", None), (".nii.gz", None), (".nrrd", (-300.0, 500.0))])
def test_predict_volume_keeps_the_input_geometry(cli, ct_run, synthetic_ct, tmp_path, suffix, window):
    out = tmp_path / f"prediction{suffix}"
    override = () if window is None else ("--window-level", window[0], "--window-width", window[1])
    assert cli("predict", "--model", ct_run, "--input", synthetic_ct.ct, "--out", out, *override, *CPU).code == 0
    source, written = sitk.ReadImage(str(synthetic_ct.ct)), sitk.ReadImage(str(out))
    assert written.GetSize() == source.GetSize() == (48, 40, 4)
    assert written.GetSpacing() == pytest.approx(source.GetSpacing())
    assert written.GetOrigin() == pytest.approx(source.GetOrigin())
    assert written.GetDirection() == pytest.approx(source.GetDirection(), abs=1e-6)
    assert not np.allclose(np.reshape(source.GetDirection(), (3, 3)), np.eye(3))  # the test volume is oblique
    labels = sitk.GetArrayFromImage(written)
    assert set(np.unique(labels)) <= {0, 1}
    # slice k of the output is the API's prediction for slice k, windowed as trained (or as overridden)
    hu_window = load_run(ct_run).config.window if window is None else HUWindow(*window)
    expected = api_masks(ct_run, load_volume_slices(read_volume(synthetic_ct.ct), None, "ct", hu_window))
    for k in range(4):
        np.testing.assert_array_equal(labels[k] == 1, expected[f"ct:{k}"])
    default = api_masks(ct_run, load_volume_slices(read_volume(synthetic_ct.ct), None, "ct", HUWindow()))
    assert any((default[i] != expected[i]).any() for i in expected)  # the window matters, so this test can fail


@pytest.mark.parametrize("as_folder", [False, True])
def test_window_override_applies_to_16_bit_slices(cli, ct_run, tmp_path, as_folder):
    """16-bit PNG slices are windowed like HU: the trained window, or the one given on the command line."""
    folder = tmp_path / "slices"
    folder.mkdir()
    values = np.random.default_rng(0).normal(300, 150, (40, 48)).clip(0, 2000).astype(np.uint16)
    values[10:20, 12:24] = 900
    Image.fromarray(values).save(folder / "s.png")
    source = folder if as_folder else folder / "s.png"
    masks = {}
    for name, override in (("trained", ()), ("override", ("--window-level", "500", "--window-width", "600"))):
        out = tmp_path / name if as_folder else tmp_path / f"{name}.png"
        assert cli("predict", "--model", ct_run, "--input", source, "--out", out, *override, *CPU).code == 0
        masks[name] = read_png(out / "s.png" if as_folder else out) == 255
    for name, window in (("trained", load_run(ct_run).config.window), ("override", HUWindow(500.0, 600.0))):
        expected = api_masks(ct_run, load_slices(folder, None, window))["s"]
        np.testing.assert_array_equal(masks[name], expected)
    assert (masks["trained"] != masks["override"]).any()


def test_folder_prediction_into_an_existing_file(cli, tiny_run, synthetic_slices, tmp_path):
    (tmp_path / "taken").write_text("not a folder")
    result = cli("predict", "--model", tiny_run, "--input", synthetic_slices.images, "--out", tmp_path / "taken", *CPU)
    result.assert_user_error("--out", "looks like a file")


def test_folder_prediction_into_a_png_name_is_refused(cli, tiny_run, synthetic_slices, tmp_path):
    result = cli("predict", "--model", tiny_run, "--input", synthetic_slices.images, "--out", tmp_path / "x.png", *CPU)
    result.assert_user_error("--out", "looks like a file")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("source", "out_name", "words"),
    [
        ("slice", "mask.jpg", ["--out", ".png"]),
        ("slice", "mask.nrrd", ["--out", ".png"]),
        ("volume", "labels.png", ["--out", "label volume"]),
        ("volume", "labels", ["--out", "label volume"]),
        ("volume", "labels.nii.zip", ["--out", ".nii.gz"]),
    ],
)
def test_wrong_out_suffix(cli, tiny_run, synthetic_slices, synthetic_ct, tmp_path, source, out_name, words):
    source_path = synthetic_slices.images / "2.png" if source == "slice" else synthetic_ct.ct
    result = cli("predict", "--model", tiny_run, "--input", source_path, "--out", tmp_path / out_name, *CPU)
    result.assert_user_error(*words)
    assert list(tmp_path.iterdir()) == []


def test_nan_in_a_volume(cli, tiny_run, volume_writer, tmp_path):
    hu = np.full((3, 40, 48), -800.0, np.float32)
    hu[2, 10, 10] = np.nan
    source = volume_writer(hu, tmp_path / "nan.nrrd")
    result = cli("predict", "--model", tiny_run, "--input", source, "--out", tmp_path / "p.nrrd", *CPU)
    result.assert_user_error("NaN", "nan.nrrd")
    assert not (tmp_path / "p.nrrd").exists()


def test_truncated_slice(cli, tiny_run, synthetic_slices, tmp_path):
    broken = tmp_path / "broken.png"
    data = (synthetic_slices.images / "2.png").read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    result = cli("predict", "--model", tiny_run, "--input", broken, "--out", tmp_path / "p.png", *CPU)
    result.assert_user_error("cannot read", "broken.png")


def test_missing_input(cli, tiny_run, tmp_path):
    result = cli(
        "predict", "--model", tiny_run, "--input", tmp_path / "absent.nrrd", "--out", tmp_path / "p.nrrd", *CPU
    )
    result.assert_user_error("absent.nrrd", "does not exist")


def test_missing_model(cli, synthetic_ct, tmp_path):
    result = cli(
        "predict", "--model", tmp_path / "no-run", "--input", synthetic_ct.ct, "--out", tmp_path / "p.nrrd", *CPU
    )
    result.assert_user_error("no trained 2D model")


@pytest.mark.parametrize("name", ["notes.txt", "slice.dcm"])
def test_an_input_that_is_no_image_nor_volume_is_named_not_the_out_option(cli, tiny_run, tmp_path, name):
    source = tmp_path / name
    source.write_text("not an image")
    result = cli("predict", "--model", tiny_run, "--input", source, "--out", tmp_path / "p.png", *CPU)
    result.assert_user_error(f"--input {source}", "neither a slice image")
    assert "--out" not in result.err


def test_a_volume_prediction_prints_the_infected_ml(cli, ct_run, synthetic_ct, tmp_path):
    result = cli("predict", "--model", ct_run, "--input", synthetic_ct.ct, "--out", tmp_path / "p.nrrd", *CPU)
    assert result.code == 0
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "p.nrrd")))
    voxel_ml = np.prod(sitk.ReadImage(str(synthetic_ct.ct)).GetSpacing()) / 1000
    # The small synthetic CT has no lungs to find, so the prediction stays whole and says why.
    assert f"infected: {labels.sum() * voxel_ml:.1f} mL, not restricted to the lungs" in result.out


def test_an_8_bit_model_on_a_ct_in_hu_warns_in_one_line_and_still_measures(cli, tiny_run, synthetic_ct, tmp_path):
    """tiny_run is trained on 8-bit PNG slices; synthetic_ct is int16 HU."""
    result = cli("predict", "--model", tiny_run, "--input", synthetic_ct.ct, "--out", tmp_path / "p.nrrd", *CPU)
    assert result.code == 0, result.err
    assert result.err.count("\n") == 1 and result.err.startswith("warning: the model was trained on 8-bit")
    assert f"but {synthetic_ct.ct} is CT in Hounsfield units" in result.err
    assert "infected: " in result.out and (tmp_path / "p.nrrd").is_file()


def test_a_model_on_its_own_kind_of_image_says_nothing_about_it(
    cli, tiny_run, ct_run, synthetic_ct, synthetic_slices, tmp_path
):
    for run, source, out in (
        (ct_run, synthetic_ct.ct, "p.nrrd"),
        (tiny_run, synthetic_slices.images / "2.png", "p.png"),
    ):
        result = cli("predict", "--model", run, "--input", source, "--out", tmp_path / out, *CPU)
        assert result.code == 0 and result.err == "", result.err


def test_a_model_saved_before_image_kinds_were_recorded_says_so_and_predicts(cli, tiny_run, synthetic_ct, tmp_path):
    payload = torch.load(tiny_run / "model.pt", weights_only=True)
    del payload["image_kind"]
    torch.save(payload, tmp_path / "old.pt")
    result = cli(
        "predict", "--model", tmp_path / "old.pt", "--input", synthetic_ct.ct, "--out", tmp_path / "p.nrrd", *CPU
    )
    assert result.code == 0, result.err
    assert result.err.count("\n") == 1 and "does not record whether it was trained on 8-bit" in result.err
    assert "infected: " in result.out


def test_an_unreadable_slice_is_named_before_the_out_option(cli, tiny_run, tmp_path):
    """A file that only looks like a PNG: the input is what is wrong, whatever --out says."""
    fake = tmp_path / "scan.png"
    fake.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    result = cli("predict", "--model", tiny_run, "--input", fake, "--out", tmp_path / "p.nrrd", *CPU)
    result.assert_user_error(f"cannot read image {fake}", "damaged, truncated or not a PNG/JPG image")
    assert "--out" not in result.err and "identify" not in result.err  # not Pillow's words
