"""The one 2D training loop: exactly the asked steps over endless passes, learning from labelled pixels only, and
an exact resume: a trainer restored at step k ends with the very weights, Adam state and random states of an
uninterrupted one (dropout and the consistency loss's random transforms included)."""

import pytest
import torch

from covidal.errors import CovidalError
from covidal.losses.base import LossResult
from covidal.losses.consistency import ConsistencyLoss, TransformSet
from covidal.losses.point import PointLoss
from covidal.models.slices.build import ModelConfig, build_model
from covidal.training.augment import Augment, BatchAugmentation
from covidal.training.dataset import TrainingSlices, batch_indices
from covidal.training.steps import StepTrainer

pytestmark = pytest.mark.usefixtures("single_thread_torch")
CPU = torch.device("cpu")


def data(count: int, labelled: bool = True) -> TrainingSlices:
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(count, 1, 32, 32, generator=generator)
    labels = torch.full((count, 32, 32), -1, dtype=torch.int64)
    if labelled:
        labels[:, :16] = 0
        labels[:, 20, 20] = 1
    return TrainingSlices(images, labels, None)


def trainer(
    count: int = 5,
    batch_size: int = 2,
    loss: str = "point",
    seed: int = 0,
    labelled: bool = True,
    weights_seed: int = 0,
    ema_decay: float | None = None,
    augment: Augment = Augment.NONE,
):
    torch.manual_seed(weights_seed)
    model = build_model(ModelConfig(width=4, dropout=0.5))
    generator = torch.Generator().manual_seed(seed)
    loss_fn = (
        PointLoss() if loss == "point" else ConsistencyLoss(PointLoss(), TransformSet.FLIP_ROT, generator=generator)
    )
    return StepTrainer(
        model,
        loss_fn,
        data(count, labelled),
        batch_size,
        1e-2,
        seed,
        CPU,
        loss_generator=generator,
        ema_decay=ema_decay,
        augmentation=BatchAugmentation(augment, seed),
    )


@pytest.mark.parametrize(("count", "batch_size", "steps"), [(1, 4, 7), (5, 2, 4), (3, 3, 1)])
def test_runs_exactly_the_asked_steps_across_passes(count, batch_size, steps):
    reports = []
    stepper = trainer(count, batch_size)
    stepper.run(steps, reports.append)
    assert [r.step for r in reports] == list(range(1, steps + 1)) and stepper.step == steps
    stepper.run(steps, reports.append)  # nothing left to do
    assert len(reports) == steps


def test_batches_follow_endless_passes_of_the_batch_seed():
    stepper, seen = trainer(count=5, batch_size=2), []
    original = stepper.data.batch
    stepper.data.batch = lambda index, device: seen.append(index.tolist()) or original(index, device)
    stepper.run(6)
    generator = torch.Generator().manual_seed(0)
    expected = [index.tolist() for _ in range(2) for index in batch_indices(5, 2, generator)]
    assert seen == expected  # passes of 2 + 2 + 1 slices, reshuffled each pass


def test_learns_from_labelled_pixels():
    losses = []
    trainer(count=2).run(30, lambda report: losses.append(report.loss))
    assert losses[-1] < 0.5 * losses[0]


def test_unlabelled_pixels_give_no_update():
    stepper = trainer(count=2, labelled=False)
    before = {k: v.clone() for k, v in stepper.model.state_dict().items()}
    stepper.run(3)
    assert all(torch.equal(value, stepper.model.state_dict()[key]) for key, value in before.items())


def test_no_slices_is_refused():
    with pytest.raises(ValueError, match="no training slices"):
        trainer(count=0)


def test_a_diverging_loss_is_a_covidal_error():
    stepper = trainer()
    stepper.loss_fn = lambda model, batch: LossResult(model(batch.images).sum() * float("nan"), {})
    with pytest.raises(CovidalError, match="diverged"):
        stepper.run(1)


@pytest.mark.parametrize(
    ("loss", "options"),
    [
        ("point", {}),
        ("cb", {}),
        ("cb", {"ema_decay": 0.9, "augment": Augment.INTENSITY_SCALE}),
        ("point", {"ema_decay": 0.5, "augment": Augment.INTENSITY}),
    ],
)
def test_a_trainer_restored_at_step_k_ends_as_an_uninterrupted_one(tmp_path, loss, options):
    uninterrupted = trainer(loss=loss, **options)
    uninterrupted.run(7)
    first = trainer(loss=loss, **options)
    first.run(3)
    first.save(tmp_path / "state.pt", val_dice=0.5)
    # Another process: other initial weights and random states until the state is loaded.
    resumed = trainer(loss=loss, weights_seed=9, **options)
    assert resumed.restore(tmp_path / "state.pt")["val_dice"] == 0.5
    assert resumed.step == 3
    resumed.run(7)
    torch.testing.assert_close(resumed.state_dict(), uninterrupted.state_dict(), rtol=0, atol=0)  # equal


def test_without_the_random_states_the_resume_differs(tmp_path):
    """The control of the test above: the consistency loss's transforms drawn anew end elsewhere."""
    uninterrupted = trainer(loss="cb")
    uninterrupted.run(7)
    first = trainer(loss="cb")
    first.run(3)
    state = first.state_dict()
    state["loss_rng"] = torch.Generator().manual_seed(99).get_state()
    resumed = trainer(loss="cb", weights_seed=9)
    resumed.load_state_dict(state)
    resumed.run(7)
    weights = resumed.state_dict()["model"]
    assert not all(torch.equal(value, uninterrupted.state_dict()["model"][key]) for key, value in weights.items())


def trained(steps: int, **options) -> StepTrainer:
    """A trainer run ``steps`` right after it is built (dropout draws from the global generator it seeds)."""
    stepper = trainer(**options)
    stepper.run(steps)
    return stepper


def test_the_average_of_the_weights_is_what_predicts():
    plain, averaged, at_decay_zero = (trained(6, ema_decay=decay) for decay in (None, 0.9, 0.0))
    assert plain.predictor is plain.model
    weights = plain.state_dict()["model"]
    # Same seeds, so the same trained weights; decay 0 averages nothing, 0.9 lags behind them.
    torch.testing.assert_close(averaged.state_dict()["model"], weights, rtol=0, atol=0)
    torch.testing.assert_close(at_decay_zero.predictor.state_dict(), weights, rtol=0, atol=0)
    lagging = averaged.predictor.state_dict()
    assert not all(torch.equal(lagging[key], value) for key, value in weights.items())


def test_augmented_batches_train_differently_but_reproducibly():
    runs = [trained(4, augment=augment) for augment in (Augment.NONE, Augment.INTENSITY_SCALE, Augment.INTENSITY_SCALE)]
    plain, augmented, again = (stepper.state_dict()["model"] for stepper in runs)
    torch.testing.assert_close(augmented, again, rtol=0, atol=0)
    assert not all(torch.equal(plain[key], value) for key, value in augmented.items())
