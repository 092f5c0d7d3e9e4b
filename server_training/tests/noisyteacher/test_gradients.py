"""Tests for covidal.noisyteacher.gradients: vmap per-sample gradients against a loop of single-sample autograd,
the batch gradient, and the inner products."""

import pytest
import torch

from covidal.losses.combo import per_sample_combo_loss
from covidal.models.volumes.unet import UNet3DConfig, build_unet3d
from covidal.noisyteacher.gradients import (
    batch_gradient,
    per_sample_dot,
    per_sample_gradients,
    per_sample_norm,
)

pytestmark = pytest.mark.usefixtures("single_thread_torch")

TINY = UNet3DConfig(channels=(4, 8), strides=(2,), num_res_units=1)


def tiny_problem(batch: int = 3, side: int = 8, seed: int = 0):
    torch.manual_seed(seed)
    model = build_unet3d(TINY)
    images = torch.randn(batch, 1, side, side, side)
    labels = (torch.rand(batch, side, side, side) > 0.7).long()
    return model, images, labels


def loop_gradients(model, images, labels):
    """Per-sample losses and gradients by one plain autograd backward per sample."""
    losses, gradients = [], []
    for i in range(images.shape[0]):
        model.zero_grad()
        loss = per_sample_combo_loss(model(images[i : i + 1]), labels[i : i + 1])[0]
        loss.backward()
        losses.append(loss.detach())
        gradients.append({n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad})
    model.zero_grad()
    return torch.stack(losses), gradients


@pytest.mark.parametrize("chunk_size", [None, 2])
def test_per_sample_gradients_equal_a_loop_of_single_sample_gradients(chunk_size):
    model, images, labels = tiny_problem()
    losses, gradients = per_sample_gradients(model, images, labels, chunk_size=chunk_size)
    expected_losses, expected = loop_gradients(model, images, labels)
    torch.testing.assert_close(losses, expected_losses, rtol=0, atol=1e-6)
    assert list(gradients) == [name for name, _ in model.named_parameters()]
    for name, stacked in gradients.items():
        assert stacked.shape == (3, *model.get_parameter(name).shape)
        for i in range(3):
            torch.testing.assert_close(stacked[i], expected[i][name], rtol=1e-5, atol=1e-6)


def test_samples_differ_so_the_check_above_is_not_trivial():
    model, images, labels = tiny_problem()
    _, gradients = per_sample_gradients(model, images, labels)
    weight = gradients["model.0.conv.unit0.conv.weight"]
    assert (weight[0] - weight[1]).abs().max() > 1e-3


def test_frozen_parameters_are_constants_and_left_out():
    model, images, labels = tiny_problem(seed=1)
    frozen = "model.0.conv.unit0.conv.weight"
    model.get_parameter(frozen).requires_grad_(False)
    _, gradients = per_sample_gradients(model, images, labels)
    _, expected = loop_gradients(model, images, labels)
    assert frozen not in gradients and set(gradients) == set(expected[0])
    for name in gradients:
        torch.testing.assert_close(gradients[name][2], expected[2][name], rtol=1e-5, atol=1e-6)


def test_per_sample_gradients_run_under_autocast():
    model, images, labels = tiny_problem(seed=2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses, gradients = per_sample_gradients(model, images, labels)
        expected_losses, expected = loop_gradients(model, images, labels)
    assert losses.dtype == torch.float32
    assert all(g.dtype == torch.float32 for g in gradients.values())
    torch.testing.assert_close(losses, expected_losses, rtol=0, atol=1e-5)
    name = "model.2.1.conv.unit0.conv.weight"
    torch.testing.assert_close(gradients[name][1], expected[1][name], rtol=1e-3, atol=1e-4)


def test_batch_gradient_is_the_mean_of_the_per_sample_gradients():
    model, images, labels = tiny_problem(seed=3)
    loss, gradient = batch_gradient(model, images, labels)
    losses, per_sample = per_sample_gradients(model, images, labels)
    torch.testing.assert_close(loss, losses.mean(), rtol=0, atol=1e-6)
    assert set(gradient) == set(per_sample)
    for name in gradient:
        torch.testing.assert_close(gradient[name], per_sample[name].mean(dim=0), rtol=1e-5, atol=1e-7)
    assert all(p.grad is None for p in model.parameters())


def test_inner_products_and_norms_by_hand():
    a = {"w": torch.tensor([[1.0, 2.0], [3.0, 4.0]]), "b": torch.tensor([5.0])}
    b = {"w": torch.tensor([[0.5, -1.0], [0.0, 2.0]]), "b": torch.tensor([-2.0])}
    per_sample = {"w": torch.stack([a["w"], b["w"]]), "b": torch.stack([a["b"], b["b"]])}
    torch.testing.assert_close(per_sample_dot(per_sample, a), torch.tensor([1 + 4 + 9 + 16 + 25.0, -3.5]))
    torch.testing.assert_close(per_sample_norm(per_sample, ["b"]), torch.tensor([5.0, 2.0]))
    torch.testing.assert_close(per_sample_norm(per_sample, ["w", "b"]), torch.tensor([55.0, 9.25]).sqrt())


@pytest.mark.parametrize(
    ("images_shape", "labels_shape", "message"),
    [
        ((2, 8, 8, 8), (2, 8, 8, 8), r"images must be \[B, 1, D, H, W\]"),
        ((2, 2, 8, 8, 8), (2, 8, 8, 8), r"images must be \[B, 1, D, H, W\]"),
        ((2, 1, 8, 8, 8), (2, 1, 8, 8, 8), r"labels must be \[B, D, H, W\] = \[2, 8, 8, 8\]"),
        ((2, 1, 8, 8, 8), (1, 8, 8, 8), r"labels must be \[B, D, H, W\]"),
    ],
)
@pytest.mark.parametrize("function", [per_sample_gradients, batch_gradient])
def test_bad_batches_raise(function, images_shape, labels_shape, message):
    model = build_unet3d(TINY)
    with pytest.raises(ValueError, match=message):
        function(model, torch.zeros(images_shape), torch.zeros(labels_shape, dtype=torch.long))


@pytest.mark.parametrize("function", [per_sample_gradients, batch_gradient])
def test_labels_other_than_zero_and_one_raise(function):
    model, images, labels = tiny_problem(batch=2)
    labels[1, 0, 0, 0] = -1
    with pytest.raises(ValueError, match=r"labels must be 0 or 1, got values \[-1\]"):
        function(model, images, labels)


def test_mismatched_gradients_raise():
    a = {"w": torch.zeros(2)}
    with pytest.raises(ValueError, match="same, non-empty set of parameters"):
        per_sample_dot({"w": a["w"][None]}, {"v": torch.zeros(2)})
    with pytest.raises(ValueError, match="same, non-empty set of parameters"):
        per_sample_dot({}, {})
    with pytest.raises(ValueError, match=r"gradient of 'w' is \(3,\), per-sample is \(4, 2\)"):
        per_sample_dot({"w": torch.zeros(4, 2)}, {"w": torch.zeros(3)})
    with pytest.raises(ValueError, match=r"missing \['v'\]"):
        per_sample_norm({"w": torch.zeros(4, 2)}, ["v"])
