from collections import Counter

import pytest
import torch
from torch import Tensor, nn

from covidal.losses.base import IGNORE_INDEX, Batch, LogitsLoss, LossResult
from covidal.losses.consistency import (
    TRANSFORMS,
    ConsistencyLoss,
    DihedralTransform,
    TransformSet,
    apply_per_sample,
    apply_transform,
    confident_labels,
    consistency_term,
    invert_per_sample,
    invert_transform,
    sample_transforms,
)
from covidal.losses.full import FullSupervisionLoss
from covidal.losses.point import PointLoss

ALL_TRANSFORMS = TRANSFORMS[TransformSet.FLIP_ROT]
SQUARE = torch.tensor([[1, 2], [3, 4]])


@pytest.mark.parametrize(
    ("k", "flip", "expected"),
    [
        (0, True, [[2, 1], [4, 3]]),  # horizontal flip
        (2, True, [[3, 4], [1, 2]]),  # vertical flip
        (1, False, [[2, 4], [1, 3]]),  # quarter turn counter-clockwise
        (2, False, [[4, 3], [2, 1]]),
        (3, False, [[3, 1], [4, 2]]),  # quarter turn clockwise
        (1, True, [[1, 3], [2, 4]]),  # transpose
        (3, True, [[4, 2], [3, 1]]),  # anti-transpose
        (0, False, [[1, 2], [3, 4]]),
    ],
)
def test_apply_transform_table(k, flip, expected):
    assert apply_transform(SQUARE, k, flip).tolist() == expected


def test_transform_sets_hold_the_named_dihedral_elements():
    assert set(TRANSFORMS[TransformSet.FLIP]) == {DihedralTransform(0, True), DihedralTransform(2, True)}
    generic = torch.arange(9).reshape(3, 3)
    images = {tuple(apply_transform(generic, t.quarter_turns, t.flip).flatten().tolist()) for t in ALL_TRANSFORMS}
    assert len(ALL_TRANSFORMS) == 7
    assert len(images) == 7, "the 7 elements must act differently"
    assert tuple(generic.flatten().tolist()) not in images, "identity must be excluded"


@pytest.mark.parametrize("transform", ALL_TRANSFORMS)
@pytest.mark.parametrize("shape", [(2, 3, 5, 5), (2, 5, 5), (5, 5)])
def test_each_transform_is_a_bijection_undone_by_its_inverse(transform, shape):
    x = torch.arange(torch.Size(shape).numel()).reshape(shape)
    moved = apply_transform(x, transform.quarter_turns, transform.flip)
    assert moved.shape == x.shape
    assert torch.equal(moved.flatten(-2).sort(dim=-1).values, x.flatten(-2))
    assert torch.equal(invert_transform(moved, transform.quarter_turns, transform.flip), x)


def test_quarter_turn_of_non_square_image_raises_but_flips_work():
    x = torch.zeros(1, 4, 6)
    for k in (1, 3):
        with pytest.raises(ValueError, match="square"):
            apply_transform(x, k, flip=False)
    assert apply_transform(x, 2, flip=True).shape == x.shape


def test_apply_per_sample_uses_each_samples_own_transform():
    x = torch.arange(2 * 9).reshape(2, 1, 3, 3)
    transforms = [DihedralTransform(1, False), DihedralTransform(0, True)]
    moved = apply_per_sample(x, transforms)
    assert torch.equal(moved[0], torch.rot90(x[0], 1, dims=(-2, -1)))
    assert torch.equal(moved[1], torch.flip(x[1], dims=(-1,)))
    with pytest.raises(ValueError, match="one transform per sample"):
        apply_per_sample(x, transforms[:1])


def test_point_labels_move_with_their_pixel():
    images = torch.zeros(1, 1, 7, 7)
    images[0, 0, 1, 5] = 9.0  # a marked pixel, labelled as infection
    labels = torch.full((1, 7, 7), IGNORE_INDEX)
    labels[0, 1, 5] = 1
    for transform in ALL_TRANSFORMS:
        moved_images = apply_per_sample(images, [transform])
        moved_labels = apply_per_sample(labels, [transform])
        assert torch.equal(moved_labels[0] == 1, moved_images[0, 0] == 9.0)


def test_consistency_term_hand_value_and_shape_check():
    a = torch.tensor([[[[0.2, 0.8]], [[0.8, 0.2]]]])  # [1, 2, 1, 2]
    b = torch.tensor([[[[0.5, 0.8]], [[0.5, 0.2]]]])
    assert consistency_term(a, b).item() == pytest.approx((0.3 + 0 + 0.3 + 0) / 4)
    with pytest.raises(ValueError, match="shapes differ"):
        consistency_term(a, b[..., :1])


def model_consistency(model: nn.Module, x: Tensor, transform: DihedralTransform) -> float:
    with torch.no_grad():
        probs_of_transformed = model(apply_transform(x, transform.quarter_turns, transform.flip)).softmax(1)
        transformed_probs = apply_transform(model(x).softmax(1), transform.quarter_turns, transform.flip)
    return consistency_term(probs_of_transformed, transformed_probs).item()


@pytest.mark.parametrize("transform", ALL_TRANSFORMS)
def test_consistency_is_zero_for_equivariant_model_and_positive_otherwise(transform):
    torch.manual_seed(0)
    x = torch.randn(2, 1, 12, 12)
    pointwise = nn.Conv2d(1, 2, kernel_size=1)
    asymmetric = nn.Conv2d(1, 2, kernel_size=3, padding=1)
    with torch.no_grad():
        # Only the logit difference matters; its kernel is moved by every non-identity transform.
        asymmetric.weight.zero_()
        asymmetric.weight[1, 0] = torch.arange(9, dtype=torch.float32).reshape(3, 3) - 4
    assert model_consistency(pointwise, x, transform) < 1e-6
    assert model_consistency(asymmetric, x, transform) > 1e-2


class RecordingLoss(LogitsLoss):
    """Point loss that keeps every batch it scored."""

    def __init__(self) -> None:
        self.batches: list[Batch] = []

    def from_logits(self, logits: Tensor, batch: Batch) -> LossResult:
        self.batches.append(batch)
        return PointLoss().from_logits(logits, batch)


class CountingModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, kernel_size=3, padding=1)
        self.batch_sizes: list[int] = []

    def forward(self, x: Tensor) -> Tensor:
        self.batch_sizes.append(x.shape[0])
        return self.conv(x)


def point_batch(batch_size: int = 3, size: int = 10) -> Batch:
    labels = torch.full((batch_size, size, size), IGNORE_INDEX)
    labels[:, 2, 7] = 1
    labels[:, 8, :3] = 0
    images = torch.randn(batch_size, 1, size, size)
    images[:, 0, 2, 7] = 50.0  # mark the infection point's pixel
    return Batch(images=images, point_labels=labels, masks=(torch.rand(batch_size, size, size) > 0.5).float())


@pytest.mark.parametrize("transforms", list(TransformSet))
def test_loss_runs_model_once_and_sums_its_terms(transforms):
    torch.manual_seed(1)
    base, model, batch = RecordingLoss(), CountingModel(), point_batch()
    loss = ConsistencyLoss(base, transforms, weight=0.5, generator=torch.Generator().manual_seed(3))
    result = loss(model, batch)

    assert model.batch_sizes == [6]
    original, transformed = base.batches
    assert original is batch
    # The transformed labels still sit on the marked pixel of the transformed images.
    assert torch.equal(transformed.point_labels == 1, transformed.images[:, 0] == 50.0)
    expected = result.parts["original/point"] + result.parts["transformed/point"] + 0.5 * result.parts["consistency"]
    assert result.total.item() == pytest.approx(expected, rel=1e-6)
    assert result.parts["consistency"] > 0
    result.total.backward()
    assert torch.any(model.conv.weight.grad != 0)


def test_consistency_part_is_zero_for_pointwise_model():
    batch = point_batch()
    result = ConsistencyLoss(PointLoss(), TransformSet.FLIP_ROT)(nn.Conv2d(1, 2, kernel_size=1), batch)
    assert result.parts["consistency"] < 1e-6


def test_masks_are_transformed_for_a_mask_based_base_loss():
    loss = ConsistencyLoss(FullSupervisionLoss(), TransformSet.FLIP)
    assert loss.requires_masks
    result = loss(nn.Conv2d(1, 2, kernel_size=1), point_batch())
    assert torch.isfinite(result.total)
    assert {"original/structure", "transformed/structure", "consistency"} == set(result.parts)


def test_sampling_is_uniform_and_reproducible_with_a_generator():
    draws = sample_transforms(TransformSet.FLIP_ROT, 7000, torch.Generator().manual_seed(0))
    counts = Counter(draws)
    assert set(counts) == set(ALL_TRANSFORMS)
    assert all(800 < count < 1200 for count in counts.values())
    again = sample_transforms(TransformSet.FLIP_ROT, 7000, torch.Generator().manual_seed(0))
    assert draws == again
    assert set(sample_transforms(TransformSet.FLIP, 200)) == set(TRANSFORMS[TransformSet.FLIP])


@pytest.mark.parametrize("weight", [-0.1, float("nan"), float("inf")])
def test_bad_weight_raises(weight):
    with pytest.raises(ValueError, match="weight"):
        ConsistencyLoss(PointLoss(), TransformSet.FLIP, weight=weight)


def test_bad_options_raise():
    with pytest.raises(ValueError):
        ConsistencyLoss(PointLoss(), "mirror")
    with pytest.raises(TypeError, match="LogitsLoss"):
        ConsistencyLoss(ConsistencyLoss(PointLoss(), TransformSet.FLIP), TransformSet.FLIP)


def test_rotations_on_non_square_batch_raise_clearly():
    batch = Batch(images=torch.zeros(1, 1, 6, 8), point_labels=torch.zeros(1, 6, 8, dtype=torch.int64))
    with pytest.raises(ValueError, match="square"):
        ConsistencyLoss(PointLoss(), TransformSet.FLIP_ROT)(nn.Conv2d(1, 2, 1), batch)
    flips_only = ConsistencyLoss(PointLoss(), TransformSet.FLIP)(nn.Conv2d(1, 2, 1), batch)
    assert torch.isfinite(flips_only.total)


def test_invert_per_sample_undoes_each_samples_transform():
    x = torch.arange(3 * 2 * 4 * 4, dtype=torch.float32).reshape(3, 2, 4, 4)
    transforms = [ALL_TRANSFORMS[0], ALL_TRANSFORMS[3], ALL_TRANSFORMS[6]]
    assert torch.equal(invert_per_sample(apply_per_sample(x, transforms), transforms), x)
    with pytest.raises(ValueError, match="one transform per sample"):
        invert_per_sample(x, transforms[:2])


def test_confident_labels_keep_sure_unclicked_pixels_only():
    infection = torch.tensor([[[0.95, 0.5, 0.05, 0.99]]])  # [B=1, H=1, W=4]
    probabilities = torch.stack([1 - infection, infection], dim=1)
    clicks = torch.tensor([[[-1, -1, -1, 0]]])
    # sure infection, unsure, sure background, clicked (its click is scored, not a pseudo-label)
    assert confident_labels(probabilities, clicks, 0.9).tolist() == [[[1, -1, 0, -1]]]


def test_self_training_adds_a_term_only_when_weighted():
    torch.manual_seed(0)
    model = nn.Conv2d(1, 2, kernel_size=3, padding=1)
    with torch.no_grad():
        model.bias.copy_(torch.tensor([0.0, 5.0]))  # confident infection everywhere
    labels = torch.full((2, 8, 8), IGNORE_INDEX)
    labels[:, 0, 0] = 0
    batch = Batch(torch.randn(2, 1, 8, 8), labels)
    plain = ConsistencyLoss(PointLoss(), TransformSet.FLIP_ROT, generator=torch.Generator().manual_seed(1))
    teaching = ConsistencyLoss(
        PointLoss(), TransformSet.FLIP_ROT, generator=torch.Generator().manual_seed(1), self_training_weight=0.5
    )
    base, taught = plain(model, batch), teaching(model, batch)
    assert "self_training" not in base.parts
    # The confident infection pixels become infection labels; the model agrees, so the term is small but > 0.
    assert 0 < taught.parts["self_training"] < 0.1
    assert taught.total.item() == pytest.approx(base.total.item() + 0.5 * taught.parts["self_training"], rel=1e-5)
    with pytest.raises(ValueError, match="self_training_threshold"):
        ConsistencyLoss(PointLoss(), TransformSet.FLIP, self_training_threshold=0.3)


def test_derived_labels_move_with_the_batch():
    labels = torch.full((1, 4, 4), IGNORE_INDEX)
    derived = torch.full((1, 4, 4), IGNORE_INDEX)
    derived[0, 0, 1] = 1
    recording = RecordingLoss()
    loss = ConsistencyLoss(recording, TransformSet.FLIP, generator=torch.Generator().manual_seed(0))
    loss(nn.Conv2d(1, 2, kernel_size=1), Batch(torch.zeros(1, 1, 4, 4), labels, derived_labels=derived))
    original, transformed = recording.batches
    assert original.derived_labels[0, 0, 1] == 1
    moved = transformed.derived_labels
    assert (moved == 1).sum() == 1 and moved[0, 0, 1] != 1  # both flips move pixel (0, 1)
