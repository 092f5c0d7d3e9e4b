import pytest
import torch
from torch import nn

from covidal.losses.base import IGNORE_INDEX, Batch
from covidal.losses.consistency import ConsistencyLoss, TransformSet
from covidal.losses.full import FullSupervisionLoss
from covidal.losses.lcfcn import LCFCNLoss
from covidal.losses.point import PointLoss
from covidal.losses.registry import LOSS_BUILDERS, LossConfig, LossName, build_loss


def tiny_batch() -> Batch:
    labels = torch.full((2, 16, 16), IGNORE_INDEX)
    labels[0, 4, 4] = labels[0, 11, 11] = 1
    labels[1, 7, 7] = 1
    labels[:, 0, :] = 0
    masks = torch.zeros(2, 16, 16)
    masks[:, 3:9, 3:9] = 1.0
    return Batch(images=torch.randn(2, 1, 16, 16), point_labels=labels, masks=masks)


def test_every_name_has_a_builder():
    assert set(LOSS_BUILDERS) == set(LossName)


@pytest.mark.parametrize("name", list(LossName))
def test_every_loss_builds_and_gives_a_finite_scalar_with_gradients(name):
    torch.manual_seed(0)
    model = nn.Conv2d(1, 2, kernel_size=3, padding=1)
    loss = build_loss(LossConfig(name=name), generator=torch.Generator().manual_seed(0))
    result = loss(model, tiny_batch())
    assert result.total.ndim == 0
    assert torch.isfinite(result.total)
    assert all(isinstance(value, float) for value in result.parts.values())
    result.total.backward()
    assert torch.isfinite(model.weight.grad).all()
    assert torch.any(model.weight.grad != 0)


@pytest.mark.parametrize(
    ("name", "base_type", "transforms"),
    [
        (LossName.CB_FLIP, PointLoss, TransformSet.FLIP),
        (LossName.CB_FLIP_ROT, PointLoss, TransformSet.FLIP_ROT),
        (LossName.CB_LCFCN, LCFCNLoss, TransformSet.FLIP_ROT),
    ],
)
def test_consistency_losses_wrap_the_right_base(name, base_type, transforms):
    loss = build_loss(LossConfig(name=name, consistency_weight=0.25))
    assert isinstance(loss, ConsistencyLoss)
    assert type(loss.base) is base_type
    assert loss.transforms is transforms
    assert loss.weight == 0.25


@pytest.mark.parametrize(
    ("name", "loss_type"),
    [(LossName.POINT, PointLoss), (LossName.LCFCN, LCFCNLoss), (LossName.FULL, FullSupervisionLoss)],
)
def test_plain_losses_have_their_type(name, loss_type):
    loss = build_loss(LossConfig(name=name))
    assert type(loss) is loss_type
    assert loss.requires_masks == (name is LossName.FULL)


def test_same_generator_seed_gives_the_same_loss():
    model, batch = nn.Conv2d(1, 2, kernel_size=3, padding=1), tiny_batch()
    totals = [
        build_loss(LossConfig(), generator=torch.Generator().manual_seed(7))(model, batch).total.item()
        for _ in range(2)
    ]
    assert totals[0] == totals[1]


def test_config_defaults_and_round_trip():
    config = LossConfig()
    assert config.name is LossName.CB_FLIP_ROT and config.consistency_weight == 1.0
    from_strings = LossConfig(name="cb-flip", consistency_weight=2)
    assert from_strings.name is LossName.CB_FLIP
    assert from_strings.to_dict() == {
        "name": "cb-flip",
        "consistency_weight": 2.0,
        "derived_weight": 0.5,
        "self_training_weight": 0.0,
        "self_training_threshold": 0.9,
        "background_weight": 1.0,
    }
    assert LossConfig.from_dict(from_strings.to_dict()) == from_strings
    assert LossConfig.from_dict({}) == LossConfig()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"name": "dice"}, "unknown loss 'dice'"),
        ({"consistency_weight": -1.0}, "consistency_weight"),
        ({"consistency_weight": float("nan")}, "consistency_weight"),
        ({"weight": 1.0}, "unknown loss config keys"),
        ({"derived_weight": -0.1}, "derived_weight"),
        ({"self_training_weight": float("inf")}, "self_training_weight"),
        ({"self_training_threshold": 0.4}, "self_training_threshold"),
    ],
)
def test_bad_options_raise(values, message):
    with pytest.raises(ValueError, match=message):
        LossConfig.from_dict(values)


def test_point_losses_carry_the_derived_and_self_training_weights():
    config = LossConfig(LossName.CB_FLIP, derived_weight=0.25, self_training_weight=0.5, self_training_threshold=0.8)
    loss = build_loss(config)
    assert loss.base.derived_weight == 0.25
    assert (loss.self_training_weight, loss.self_training_threshold) == (0.5, 0.8)
    assert build_loss(LossConfig(LossName.POINT, derived_weight=0.75)).derived_weight == 0.75
