"""One training step: the update equals plain autograd of expert mean + sum_i w_i L_i(pseudo)."""

from __future__ import annotations

import copy

import pytest
import torch
from reference_weights import rgs_weights_reference

from covidal.losses.combo import per_sample_combo_loss
from covidal.models.volumes.unet import UNet3DConfig, build_unet3d, final_layer_parameter_names
from covidal.noisyteacher.step import TrainingStep
from covidal.noisyteacher.stream import PatchBatch
from covidal.noisyteacher.student_modes import StudentMode, build_weighting

TINY = UNet3DConfig(channels=(4, 8), strides=(2,), num_res_units=1)
SIZE = 8


def _batch(seed: int, count: int = 3) -> PatchBatch:
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(count, 1, SIZE, SIZE, SIZE, generator=generator, dtype=torch.float64)
    labels = (images[:, 0] > 0.6).long()
    return PatchBatch(images, labels, tuple(f"case{seed}_{i}" for i in range(count)))


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_unet3d(TINY).double()


def _step(model: torch.nn.Module, mode: StudentMode) -> TrainingStep:
    # SGD with lr 1: the parameter change is exactly minus the gradient that was applied.
    optimiser = torch.optim.SGD(model.parameters(), lr=1.0)
    return TrainingStep(
        model, optimiser, build_weighting(mode, final_layer_parameter_names(model)), torch.device("cpu")
    )


def _applied_gradient(before: torch.nn.Module, after: torch.nn.Module) -> dict[str, torch.Tensor]:
    old = dict(before.named_parameters())
    return {name: old[name].detach() - parameter.detach() for name, parameter in after.named_parameters()}


def _autograd_gradient(
    model: torch.nn.Module, expert: PatchBatch, pseudo: PatchBatch | None, weights: torch.Tensor | None
) -> dict[str, torch.Tensor]:
    model = copy.deepcopy(model)
    loss = per_sample_combo_loss(model(expert.images), expert.labels).mean()
    if pseudo is not None:
        loss = loss + (weights * per_sample_combo_loss(model(pseudo.images), pseudo.labels)).sum()
    names, parameters = zip(*model.named_parameters())
    return dict(zip(names, torch.autograd.grad(loss, parameters)))


def _assert_close(actual: dict, expected: dict) -> None:
    assert actual.keys() == expected.keys()
    for name, value in actual.items():
        torch.testing.assert_close(value, expected[name], rtol=1e-7, atol=1e-10, msg=name)


def test_teacher_step_applies_the_expert_gradient():
    model, expert = _model(), _batch(1)
    before = copy.deepcopy(model)
    record = _step(model, StudentMode.SUPERVISED)(expert)
    _assert_close(_applied_gradient(before, model), _autograd_gradient(before, expert, None, None))
    assert record.pseudo_loss is None and record.weights is None and not record.skipped


def test_semi_step_weights_expert_and_pseudo_batches_equally():
    model, expert, pseudo = _model(), _batch(1), _batch(2)
    before = copy.deepcopy(model)
    record = _step(model, StudentMode.SEMI)(expert, pseudo)
    uniform = torch.full((3,), 1 / 3, dtype=torch.float64)
    _assert_close(_applied_gradient(before, model), _autograd_gradient(before, expert, pseudo, uniform))
    assert record.weights == pytest.approx((1 / 3,) * 3)
    assert record.pseudo_names == pseudo.names


def test_rgs_step_uses_the_meta_gradient_weights_and_their_per_sample_gradients():
    model, expert, pseudo = _model(), _batch(1), _batch(2)
    before = copy.deepcopy(model)
    record = _step(model, StudentMode.RGS)(expert, pseudo)
    weights = rgs_weights_reference(copy.deepcopy(before), pseudo.images, pseudo.labels, expert.images, expert.labels)
    assert record.weights == pytest.approx(weights.tolist(), abs=1e-9)
    assert sum(record.weights) == pytest.approx(1.0)
    _assert_close(_applied_gradient(before, model), _autograd_gradient(before, expert, pseudo, weights))
    with torch.no_grad():
        expected_loss = float((weights * per_sample_combo_loss(before(pseudo.images), pseudo.labels)).sum())
    assert record.pseudo_loss == pytest.approx(expected_loss)


def test_a_batch_whose_weights_are_all_zero_is_skipped():
    """Pseudo-labels that contradict the expert labels of the same patches disagree with the validation gradient."""
    model, expert = _model(), _batch(1)
    contradicting = PatchBatch(expert.images, 1 - expert.labels, expert.names)
    before = copy.deepcopy(model)
    record = _step(model, StudentMode.RGS)(expert, contradicting)
    assert record.skipped and record.weights == (0.0, 0.0, 0.0)
    _assert_close(_applied_gradient(before, model), _autograd_gradient(before, expert, None, None))


def test_teacher_and_student_batches_are_checked():
    model = _model()
    with pytest.raises(ValueError, match="pseudo-labelled batch"):
        _step(model, StudentMode.SUPERVISED)(_batch(1), _batch(2))
    with pytest.raises(ValueError, match="pseudo-labelled batch"):
        _step(model, StudentMode.RGSM_AL)(_batch(1))
