import pytest

from covidal.activelearning.scoring import Reduction
from covidal.activelearning.simulation.simulation_config import SimulationConfig
from covidal.activelearning.strategies import StrategyName
from covidal.losses.registry import LossConfig, LossName
from covidal.models.slices.build import ModelConfig
from covidal.training.augment_kind import Augment


def test_round_trips_through_a_dict():
    config = SimulationConfig(
        strategy="bald",
        regions=16,
        reduction="mean",
        init_slices=3,
        cycles=4,
        per_cycle=5,
        loss=LossConfig(LossName.POINT),
        model=ModelConfig(width=8),
        image_size=64,
        background_sample=50,
        warm_start=False,
        augment="intensity+scale",
        seed=7,
        device="cpu",
    )
    again = SimulationConfig.from_dict(config.to_dict())
    assert again == config and again.augment is Augment.INTENSITY_SCALE
    assert again.strategy is StrategyName.BALD and again.reduction is Reduction.MEAN


@pytest.mark.parametrize(
    ("warm_start", "cap", "expected"),
    [
        (True, 1, "entropy-point-seed3"),
        (False, 1, "entropy-point-seed3-scratch"),
        (True, None, "entropy-point-seed3-no-cap"),
        (False, 2, "entropy-point-seed3-scratch-per-slice2"),
    ],
)
def test_run_name_identifies_strategy_loss_seed_start_and_cap(warm_start, cap, expected):
    config = SimulationConfig(
        strategy="entropy", loss=LossConfig(LossName.POINT), seed=3, warm_start=warm_start, max_per_slice=cap
    )
    assert config.run_name == expected


def test_an_augmented_run_has_its_own_name():
    config = SimulationConfig(strategy="entropy", loss=LossConfig(LossName.POINT), seed=3, augment="intensity")
    assert config.run_name == "entropy-point-seed3-intensity"


def test_a_config_saved_with_slices_times_regions_reads_as_that_many_regions():
    saved = SimulationConfig(per_cycle=5).to_dict()
    del saved["max_per_slice"]
    saved.update(per_cycle=5, regions_per_slice=2)
    config = SimulationConfig.from_dict(saved)
    assert (config.per_cycle, config.max_per_slice) == (10, 2)


def test_train_config_carries_the_shared_options():
    config = SimulationConfig(image_size=96, batch_size=3, learning_rate=5e-4, model=ModelConfig(width=8))
    train = config.train_config()
    assert (train.image_size, train.batch_size, train.learning_rate, train.model.width) == (96, 3, 5e-4, 8)
    assert train.val_fraction == 0
    assert train.augment is Augment.NONE and SimulationConfig(augment="intensity").train_config().augment == "intensity"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"regions": 10}, "perfect square"),
        ({"strategy": "magic"}, "magic"),
        ({"reduction": "median"}, "median"),
        ({"loss": LossConfig(LossName.FULL)}, "needs full masks"),
        ({"loss": LossConfig(LossName.LCFCN)}, "needs full masks"),
        ({"init_slices": 0}, "init_slices"),
        ({"per_cycle": 0}, "count"),
        ({"max_per_slice": 0}, "max_per_slice"),
        ({"mc_samples": 0}, "mc_samples"),
        ({"steps_per_cycle": 0}, "steps_per_cycle"),
        ({"cycles": -1}, "cycles"),
        ({"background_sample": 0}, "background_sample"),
        ({"image_size": 100}, "multiple of 32"),
        ({"augment": "elastic"}, "augment"),
    ],
)
def test_rejects_bad_options(options, message):
    with pytest.raises(ValueError, match=message):
        SimulationConfig(**options)
