import pytest
import torch

from covidal.activelearning.retrain import fit_steps
from covidal.losses.point import PointLoss
from covidal.models.registry import ModelConfig, build_model
from covidal.training.dataset import TrainingSlices


def data(count: int, labelled: bool) -> TrainingSlices:
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(count, 1, 32, 32, generator=generator)
    labels = torch.full((count, 32, 32), -1, dtype=torch.int64)
    if labelled:
        labels[:, :16] = 0
        labels[:, 20, 20] = 1
    return TrainingSlices(images, labels, None)


@pytest.mark.parametrize(("count", "batch_size", "steps"), [(1, 4, 7), (5, 2, 4), (3, 3, 1)])
def test_runs_exactly_the_asked_steps_across_passes(count, batch_size, steps, single_thread_torch):
    model = build_model(ModelConfig(width=4))
    losses = fit_steps(model, PointLoss(), data(count, True), steps, batch_size, 1e-3, torch.Generator().manual_seed(0))
    assert len(losses) == steps


def test_learns_from_labelled_pixels(single_thread_torch):
    torch.manual_seed(0)
    model = build_model(ModelConfig(width=4))
    losses = fit_steps(model, PointLoss(), data(2, True), 30, 2, 1e-2, torch.Generator().manual_seed(0))
    assert losses[-1] < 0.5 * losses[0]


def test_unlabelled_pixels_give_no_update(single_thread_torch):
    model = build_model(ModelConfig(width=4))
    before = {k: v.clone() for k, v in model.state_dict().items() if v.dtype.is_floating_point}
    fit_steps(model, PointLoss(), data(2, False), 3, 2, 1e-2, torch.Generator().manual_seed(0))
    after = model.state_dict()
    # Batch-norm running statistics move with any forward pass; the weights must not.
    changed = [k for k, v in before.items() if "running" not in k and not torch.equal(v, after[k])]
    assert changed == []


@pytest.mark.parametrize(("steps", "count"), [(0, 2), (3, 0)])
def test_rejects_no_steps_or_no_data(steps, count):
    with pytest.raises(ValueError):
        fit_steps(build_model(ModelConfig(width=4)), PointLoss(), data(count, True), steps, 2, 1e-3,
                  torch.Generator())
