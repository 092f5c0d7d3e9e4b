"""Tests for covidal.noisyteacher.sample_weights: RGS against the explicit meta-gradient, RGM against a hand-computed
final-layer gradient, combination, rectification, and RGS on a flipped label."""

import math

import pytest
import torch
import torch.nn.functional as F
from reference_weights import rgs_weights_reference

from covidal.losses.combo import ComboLoss, per_sample_combo_loss
from covidal.models.volumes.unet import (
    UNet3DConfig,
    build_unet3d,
    final_layer_parameter_names,
)
from covidal.noisyteacher.gradients import (
    batch_gradient,
    per_sample_dot,
    per_sample_gradients,
    point_batch_gradient,
)
from covidal.noisyteacher.sample_weights import (
    combine_weights,
    rectify,
    rgm_weights,
    rgs_weights,
)

pytestmark = pytest.mark.usefixtures("single_thread_torch")

TINY = UNet3DConfig(channels=(4, 8), strides=(2,), num_res_units=1)


def random_batch(batch: int, side: int = 8, dtype: torch.dtype = torch.float32):
    images = torch.randn(batch, 1, side, side, side, dtype=dtype)
    return images, (torch.rand(batch, side, side, side) > 0.7).long()


def test_rgs_weights_by_hand():
    validation = {"w": torch.tensor([1.0, 0.0]), "b": torch.tensor([2.0])}
    per_sample = {"w": torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 5.0]]), "b": torch.tensor([[0.5], [1.0], [0.0]])}
    # <g_val, g_i> = (2, 2, -1): the third sample disagrees with the validation gradient.
    torch.testing.assert_close(rgs_weights(per_sample, validation), torch.tensor([0.5, 0.5, 0.0]))
    # No sample agreeing (products -0.5, -1, 0): all-zero weights, not a division by zero.
    opposed = {"w": torch.tensor([0.0, 0.0]), "b": torch.tensor([-1.0])}
    torch.testing.assert_close(rgs_weights(per_sample, opposed), torch.tensor([0.0, 0.0, 0.0]))


@pytest.mark.parametrize("seed", [0, 1])
def test_rgs_equals_the_explicit_meta_gradient(seed):
    torch.manual_seed(seed)
    model = build_unet3d(TINY).double()
    images, labels = random_batch(4, dtype=torch.float64)
    val_images, val_labels = random_batch(2, dtype=torch.float64)
    _, per_sample = per_sample_gradients(model, images, labels)
    _, validation = batch_gradient(model, val_images, val_labels)
    weights = rgs_weights(per_sample, validation)
    reference = rgs_weights_reference(model, images, labels, val_images, val_labels)
    torch.testing.assert_close(weights, reference, rtol=0, atol=1e-5)
    # The virtual step size cancels after normalisation.
    larger_step = rgs_weights_reference(model, images, labels, val_images, val_labels, step_size=0.3)
    torch.testing.assert_close(larger_step, reference, rtol=0, atol=1e-10)
    assert weights.sum().item() == pytest.approx(1.0)


def test_rgs_reference_zeroes_the_samples_whose_gradient_opposes_the_validation_gradient():
    torch.manual_seed(2)
    model = build_unet3d(TINY).double()
    images, labels = random_batch(4, dtype=torch.float64)
    val_images, val_labels = random_batch(2, dtype=torch.float64)
    _, per_sample = per_sample_gradients(model, images, labels)
    _, validation = batch_gradient(model, val_images, val_labels)
    agree = per_sample_dot(per_sample, validation) > 0
    reference = rgs_weights_reference(model, images, labels, val_images, val_labels)
    assert torch.equal(reference > 0, agree)


def final_layer_gradient_by_hand(model, image, label):
    """The final 3x3x3 conv's (weight, bias) gradient of one sample's loss, by the chain rule.

    The logits are ``z + x`` (conv output plus the residual unit's identity shortcut), so dL/dz = dL/dlogits.
    grad_bias[o] = sum_v dL/dz[o, v]; grad_weight[o, i, a, b, c] = sum_v dL/dz[o, v] * x_padded[i, v + (a, b, c)].
    """
    captured = {}
    layer = model.get_submodule(final_layer_parameter_names(model)[0].rsplit(".", 1)[0])
    assert isinstance(layer, torch.nn.Conv3d) and layer.kernel_size == (3, 3, 3) and layer.padding == (1, 1, 1)
    handle = layer.register_forward_hook(lambda _m, args, _out: captured.update(x=args[0].detach()))
    logits = model(image[None])
    handle.remove()
    logits_grad = torch.autograd.grad(per_sample_combo_loss(logits, label[None])[0], logits)[0][0]  # [2, D, H, W]
    x = F.pad(captured["x"][0], (1, 1, 1, 1, 1, 1))  # [C_in, D + 2, H + 2, W + 2]
    depth, height, width = logits_grad.shape[1:]
    weight = torch.zeros_like(layer.weight)
    for a in range(3):
        for b in range(3):
            for c in range(3):
                window = x[:, a : a + depth, b : b + height, c : c + width]  # [C_in, D, H, W]
                weight[:, :, a, b, c] = torch.einsum("ovhw,ivhw->oi", logits_grad, window)
    return weight, logits_grad.sum(dim=(1, 2, 3))


def test_rgm_equals_the_hand_computed_final_layer_gradient_norms():
    torch.manual_seed(3)
    model = build_unet3d(TINY).double()
    images, labels = random_batch(3, dtype=torch.float64)
    names = final_layer_parameter_names(model)
    _, per_sample = per_sample_gradients(model, images, labels)
    norms = []
    for i in range(3):
        weight, bias = final_layer_gradient_by_hand(model, images[i], labels[i])
        torch.testing.assert_close(per_sample[names[0]][i], weight, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(per_sample[names[1]][i], bias, rtol=1e-9, atol=1e-12)
        norms.append(math.sqrt(weight.square().sum().item() + bias.square().sum().item()))
    expected = torch.tensor(norms, dtype=torch.float64) / sum(norms)
    torch.testing.assert_close(rgm_weights(per_sample, names), expected, rtol=0, atol=1e-12)
    assert len(set(expected.tolist())) == 3  # distinct norms: the comparison would catch a permutation


def test_rgm_weights_by_hand_and_all_zero():
    per_sample = {"w": torch.tensor([[3.0, 0.0], [0.0, 0.0], [0.0, 1.0]]), "b": torch.tensor([[4.0], [0.0], [0.0]])}
    torch.testing.assert_close(rgm_weights(per_sample, ["w", "b"]), torch.tensor([5 / 6, 0.0, 1 / 6]))
    torch.testing.assert_close(rgm_weights(per_sample, ["b"]), torch.tensor([1.0, 0.0, 0.0]))
    zeros = {"w": torch.zeros(3, 2)}
    torch.testing.assert_close(rgm_weights(zeros, ["w"]), torch.zeros(3))


@pytest.mark.parametrize(
    ("lam", "expected"),
    [(0.5, [0.5, 0.3, 0.2]), (1, [0.8, 0.2, 0.0]), (0.0, [0.2, 0.4, 0.4]), (0.25, [0.35, 0.35, 0.3])],
)
def test_combine_weights(lam, expected):
    rgs, rgm = torch.tensor([0.8, 0.2, 0.0]), torch.tensor([0.2, 0.4, 0.4])
    torch.testing.assert_close(combine_weights(rgs, rgm, lam), torch.tensor(expected))


@pytest.mark.parametrize("lam", [-0.1, 1.5, math.nan, math.inf, True, "0.5", None])
def test_lambda_outside_zero_one_raises(lam):
    with pytest.raises(ValueError, match=r"lambda .* must be a finite number in \[0, 1\]"):
        combine_weights(torch.ones(2) / 2, torch.ones(2) / 2, lam)


def test_combine_weights_of_different_shapes_raise():
    with pytest.raises(ValueError, match="same shape"):
        combine_weights(torch.ones(2) / 2, torch.ones(3) / 3, 0.5)


F64 = torch.float64


@pytest.mark.parametrize(
    ("weights", "dtype", "expected"),
    [
        ([0.5, 0.3, 0.2], F64, [1.0, 0.0, 0.0]),  # threshold 1/3
        ([0.4, 0.25, 0.2, 0.15], F64, [0.4 / 0.65, 0.25 / 0.65, 0.0, 0.0]),  # tie at exactly 1/4 kept
        # 1e-9 below the threshold: dropped.
        ([0.5 + 1e-9, 0.25 - 1e-9, 0.25, 0.0], F64, [(0.5 + 1e-9) / (0.75 + 1e-9), 0.0, 0.25 / (0.75 + 1e-9), 0.0]),
        ([1 / 3, 1 / 3, 1 / 3], F64, [1 / 3, 1 / 3, 1 / 3]),  # all tied
        ([0.25, 0.25, 0.25, 0.25], torch.float32, [0.25, 0.25, 0.25, 0.25]),
        ([1.0, 0.0, 0.0, 0.0, 0.0], F64, [1.0, 0.0, 0.0, 0.0, 0.0]),
        ([0.0, 0.0, 0.0], F64, [0.0, 0.0, 0.0]),  # all zero stays zero
        ([0.3, 0.2, 0.0], F64, [0.0, 0.0, 0.0]),  # weights summing to less than 1 may all fall below 1/C_p
        ([1.0], F64, [1.0]),
        ([0.7], F64, [0.0]),  # one sample: threshold 1
    ],
)
def test_rectify_keeps_exactly_the_samples_at_or_above_one_over_c(weights, dtype, expected):
    result = rectify(torch.tensor(weights, dtype=dtype))
    assert result.dtype == dtype
    torch.testing.assert_close(result, torch.tensor(expected, dtype=dtype), rtol=0, atol=1e-12)


@pytest.mark.parametrize("count", [3, 5, 6, 7, 9, 11, 12])
def test_rectify_keeps_every_sample_of_float32_uniform_weights(count):
    # Normalising equal scores in float32 may land a few ulps below 1/C_p.
    uniform = torch.full((count,), 0.37) / torch.full((count,), 0.37).sum()
    assert torch.count_nonzero(rectify(uniform)) == count


@pytest.mark.parametrize("shape", [(0,), (2, 2), ()])
def test_rectify_of_a_bad_shape_raises(shape):
    with pytest.raises(ValueError, match=r"weights must be a non-empty \[B\] tensor"):
        rectify(torch.zeros(shape))


def test_rgs_reference_bad_step_size_raises():
    model = build_unet3d(TINY)
    images, labels = random_batch(2)
    with pytest.raises(ValueError, match="step_size must be > 0"):
        rgs_weights_reference(model, images, labels, images, labels, step_size=0.0)


def cube_volume(generator: torch.Generator, side: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """A noisy ``[1, side^3]`` image with a bright 5^3 lesion at a random place, and its ``[side^3]`` labels."""
    labels = torch.zeros(side, side, side, dtype=torch.long)
    corner = torch.randint(2, side - 8, (3,), generator=generator).tolist()
    labels[corner[0] : corner[0] + 5, corner[1] : corner[1] + 5, corner[2] : corner[2] + 5] = 1
    image = 0.3 * torch.randn(side, side, side, generator=generator) + 2.0 * labels
    return image[None], labels


def trained_tiny_unet(seed: int, training_steps: int) -> tuple[torch.nn.Module, torch.Generator]:
    """The tiny 3D U-Net of ``seed`` after ``training_steps`` Adam steps on pairs of clean cube volumes, and the
    generator that drew them (it goes on to draw the test's volumes)."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(100 + seed)
    model = build_unet3d(TINY)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(training_steps):
        pair = [cube_volume(generator) for _ in range(2)]
        loss = ComboLoss()(model(torch.stack([p[0] for p in pair])), torch.stack([p[1] for p in pair]))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return model, generator


def twin_rgs_weights(seed: int, training_steps: int) -> torch.Tensor:
    """RGS weights of (true label, inverted label, lesion moved elsewhere) on copies of one image.

    The tiny network is first trained ``training_steps`` Adam steps on clean pairs; the validation batch is
    four clean volumes.
    """
    model, generator = trained_tiny_unet(seed, training_steps)
    validation = [cube_volume(generator) for _ in range(4)]
    _, validation_gradient = batch_gradient(
        model, torch.stack([v[0] for v in validation]), torch.stack([v[1] for v in validation])
    )
    image, labels = cube_volume(generator)
    moved = torch.roll(labels, shifts=(6, 6, 6), dims=(0, 1, 2))
    _, per_sample = per_sample_gradients(model, torch.stack([image] * 3), torch.stack([labels, 1 - labels, moved]))
    return rgs_weights(per_sample, validation_gradient)


@pytest.mark.parametrize("training_steps", [0, 5])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_flipped_label_gets_a_lower_rgs_weight_than_its_clean_twin(seed, training_steps):
    clean, flipped, _ = twin_rgs_weights(seed, training_steps).tolist()
    assert clean > flipped + 0.2, (clean, flipped)


def test_a_misplaced_lesion_label_gets_a_lower_rgs_weight_after_some_training_on_average():
    # Subtler noise than inversion (same class balance): separated on average once the network has learnt
    # the class prior, not necessarily for every draw.
    weights = torch.stack([twin_rgs_weights(seed, training_steps=10) for seed in range(4)])
    clean, _, moved = weights.mean(dim=0).tolist()
    assert clean > moved + 0.2, (clean, moved)


def clicked(labels: torch.Tensor) -> torch.Tensor:
    """Point labels ``[D, H, W]`` of a clinician's answers on ``labels``: a click at the lesion's centre and a
    background answer over a slab of axial slices away from it; every other voxel unlabelled (-1)."""
    points = torch.full_like(labels, -1)
    lesion = labels.nonzero().float().mean(dim=0).round().long().tolist()
    points[tuple(lesion)] = 1
    slabs = [k for k in range(labels.shape[0]) if not labels[k].any()]
    points[slabs[:3]] = 0
    return points


@pytest.mark.parametrize("training_steps", [5])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_clean_gradient_from_clicks_down_weights_a_flipped_pseudo_label(seed, training_steps):
    """RGS with the clean gradient from answers alone (one click and one background answer per volume, as a
    clicks-to-3D job would have before any expert volume) weighs a flipped pseudo-label below its clean twin once
    the network has trained a few steps. At initialisation (0 steps) it did not for seed 2 (weights 0 and 1): the
    class-balanced point loss and the pseudo-labels' combo loss can disagree before the network has learnt
    anything, unlike the expert-volume gradient of the test above."""
    model, generator = trained_tiny_unet(seed, training_steps)
    answered = [cube_volume(generator) for _ in range(4)]
    images, points = torch.stack([v[0] for v in answered]), torch.stack([clicked(v[1]) for v in answered])
    assert int((points == 1).sum()) == 4 and int((points == -1).sum()) > points.numel() // 2  # sparse answers
    _, clean_gradient = point_batch_gradient(model, images, points)
    image, labels = cube_volume(generator)
    _, per_sample = per_sample_gradients(model, torch.stack([image] * 2), torch.stack([labels, 1 - labels]))
    clean, flipped = rgs_weights(per_sample, clean_gradient).tolist()
    assert clean > flipped + 0.2, (clean, flipped)


def test_a_point_gradient_needs_answered_voxels_of_the_images_shape():
    model = build_unet3d(TINY)
    images = torch.zeros(1, 1, 16, 16, 16)
    with pytest.raises(ValueError, match="no answered voxel"):
        point_batch_gradient(model, images, torch.full((1, 16, 16, 16), -1, dtype=torch.long))
    with pytest.raises(ValueError, match="point labels"):
        point_batch_gradient(model, images, torch.zeros(1, 16, 16, dtype=torch.long))
