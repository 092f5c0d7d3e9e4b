import numpy as np
import pytest
import torch

from covidal.data.io import read_label_volume, read_volume, write_volume
from covidal.volumes.cases import CaseSource
from covidal.volumes.preprocess import prepare_case
from covidal.volumes.sliding_window import (
    SlidingWindowConfig,
    predict_on_source_grid,
    predict_probability,
)

SLOPE, OFFSET = 8.0, -4.0  # infection logit minus background logit = 8 x - 4: probability 0.5 at x = 0.5
CPU = torch.device("cpu")
WINDOWS = SlidingWindowConfig(patch_size=(8, 8, 8), overlap=0.5, batch_size=2)


def voxelwise_model(out_channels: int = 2) -> torch.nn.Conv3d:
    """A 1x1x1 convolution: background logit 0, infection logit 8 x - 4, so softmax channel 1 = sigmoid(8 x - 4)."""
    model = torch.nn.Conv3d(1, out_channels, kernel_size=1)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.zero_()
        model.weight[1] = SLOPE
        model.bias[1] = OFFSET
    return model


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def test_sliding_window_probability_is_the_voxelwise_softmax(single_thread_torch):
    # Smaller than the window along K, larger along J and I: windows overlap and the volume is padded.
    image = np.random.default_rng(0).random((5, 13, 17), dtype=np.float32)
    model = voxelwise_model()
    model.train()
    probability = predict_probability(model, image, WINDOWS, CPU)
    assert not model.training
    assert probability.dtype == np.float32 and probability.shape == image.shape
    np.testing.assert_allclose(probability, sigmoid(SLOPE * image + OFFSET), atol=1e-5)


def test_amp_is_ignored_off_cuda(single_thread_torch):
    image = np.full((4, 4, 4), 0.75, np.float32)
    probability = predict_probability(voxelwise_model(), image, WINDOWS, CPU, amp=True)
    np.testing.assert_allclose(probability, sigmoid(SLOPE * 0.75 + OFFSET), atol=1e-5)


def test_prediction_maps_back_onto_the_exact_oblique_source_grid(tmp_path, volume_writer, single_thread_torch):
    # Source slices k 0..5 hold air (-1000 HU, window 0), slices 6..11 hold 400 HU (window 1).
    hu = np.full((12, 20, 25), -1000, np.int16)
    hu[6:] = 400
    case = CaseSource("ct", volume_writer(hu, tmp_path / "ct.nrrd"), None)
    prepared = prepare_case(case)
    label, probability = predict_on_source_grid(voxelwise_model(), prepared, WINDOWS, CPU)
    source = read_volume(case.image)
    assert not np.allclose(source.direction, np.eye(3))
    for volume in (label, probability):
        assert volume.array.shape == source.array.shape
        assert volume.spacing == source.spacing and volume.origin == source.origin
        np.testing.assert_array_equal(volume.direction, source.direction)
    assert label.array.dtype == np.uint8 and probability.array.dtype == np.float32
    # Slices at least 2 source slices (5 mm > one 3.2 mm training voxel) from the change see constant input.
    np.testing.assert_allclose(probability.array[:4], sigmoid(OFFSET), atol=1e-5)
    np.testing.assert_allclose(probability.array[8:], sigmoid(SLOPE + OFFSET), atol=1e-5)
    np.testing.assert_array_equal(label.array, probability.array >= 0.5)
    assert not label.array[:4].any() and label.array[8:].all()
    # The written label passes the same geometry check as any label volume of this image.
    write_volume(label, tmp_path / "prediction.nii.gz")
    read_label_volume(tmp_path / "prediction.nii.gz", source)


def test_probability_is_interpolated_linearly_back_to_the_source_slices(tmp_path, volume_writer, single_thread_torch):
    # A 1-slice slab at 400 HU in air: on the 3.2 mm grid it becomes partial-volume intensities. Every
    # slice is constant in-plane, so along k the source probability must be the linear interpolation
    # of the coarse probabilities at the source slice positions (2.5 k mm vs 3.2 k' mm), the last
    # slices beyond the coarse grid taking the nearest coarse value (as np.interp does).
    hu = np.full((12, 6, 6), -1000, np.int16)
    hu[5] = 400
    prepared = prepare_case(CaseSource("ct", volume_writer(hu, tmp_path / "ct.nrrd"), None))
    coarse = predict_probability(voxelwise_model(), prepared.image, WINDOWS, CPU)[:, 0, 0]
    label, probability = predict_on_source_grid(voxelwise_model(), prepared, WINDOWS, CPU)
    expected = np.interp(2.5 * np.arange(12), 3.2 * np.arange(len(coarse)), coarse)
    assert len(np.unique(np.round(expected, 4))) > len(np.unique(np.round(coarse, 4)))  # not a copy of coarse values
    np.testing.assert_allclose(probability.array, np.broadcast_to(expected[:, None, None], hu.shape), atol=1e-5)
    np.testing.assert_array_equal(label.array, probability.array >= 0.5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"overlap": 1.0}, r"overlap must be a finite number in \[0, 1\)"),
        ({"overlap": -0.1}, r"overlap must be a finite number in \[0, 1\)"),
        ({"patch_size": (8, 0, 8)}, r"sliding-window patch size \(D, H, W\) must be 3 integers"),
        ({"batch_size": 0}, "batch size must be an integer >= 1"),
    ],
)
def test_bad_sliding_window_config_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SlidingWindowConfig(**kwargs)


def test_sliding_window_config_turns_lists_into_tuples():
    assert SlidingWindowConfig(patch_size=[4, 5, 6]).patch_size == (4, 5, 6)


@pytest.mark.parametrize(
    ("model", "image", "message"),
    [
        (voxelwise_model(out_channels=3), np.zeros((4, 4, 4), np.float32), "expected a 2-class model"),
        (voxelwise_model(), np.zeros((4, 4), np.float32), r"expected an image \[K, J, I\]"),
    ],
)
def test_bad_model_or_image_is_refused(model, image, message, single_thread_torch):
    with pytest.raises(ValueError, match=message):
        predict_probability(model, image, WINDOWS, CPU)
