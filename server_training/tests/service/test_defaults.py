"""The served defaults: one table per device, names the service accepts, and what a project records when its
creator leaves the choices to the service (as the Slicer module and the demo do)."""

from __future__ import annotations

import pytest

from covidal.activelearning.strategies import StrategyName
from covidal.client import ClientError
from covidal.losses.registry import LossName
from covidal.models.kinds import ModelKind
from covidal.regions.grid import RegionGrid
from covidal.service.defaults import CPU_DEFAULTS, CUDA_DEFAULTS, served_defaults
from covidal.service.jobs.job_config import TrainJobConfig


@pytest.mark.parametrize("defaults", [CPU_DEFAULTS, CUDA_DEFAULTS])
def test_every_default_is_a_valid_choice(defaults):
    assert LossName(defaults.loss) and StrategyName(defaults.strategy) and ModelKind(defaults.model_kind)
    RegionGrid(defaults.grid_k)
    TrainJobConfig.from_dict(defaults.training_settings())  # size a multiple of 32, width and steps in range


def test_the_device_picks_the_table_and_a_job_without_settings_trains_like_the_cpu():
    assert served_defaults("cuda") is CUDA_DEFAULTS and served_defaults("cpu") is CPU_DEFAULTS
    assert TrainJobConfig().image_size == CPU_DEFAULTS.image_size and TrainJobConfig().width == CPU_DEFAULTS.width
    # A project created before the prior was recorded keeps training without it, as it did.
    assert TrainJobConfig().background_prior == "none" != CPU_DEFAULTS.background_prior


def test_a_project_left_to_the_service_gets_and_records_the_defaults(service):
    client = service.client
    served = client.defaults()
    assert served == {"device": "cpu", **CPU_DEFAULTS.to_dict()}
    project = client.create_project("left-to-the-service")
    chosen = {key: project[key] for key in ("model_kind", "loss", "strategy", "grid_k", "mc_samples")}
    assert chosen == {key: served[key] for key in chosen}
    assert project["settings"] == CPU_DEFAULTS.training_settings()


def test_a_creators_choices_win_over_the_defaults(service):
    project = service.client.create_project("chosen", loss="point", grid_k=64, settings={"image_size": 64, "seed": 3})
    assert (project["loss"], project["grid_k"], project["strategy"]) == ("point", 64, CPU_DEFAULTS.strategy)
    assert project["settings"] == {
        "image_size": 64,
        "seed": 3,
        "width": CPU_DEFAULTS.width,
        "steps": CPU_DEFAULTS.steps,
        "background_prior": CPU_DEFAULTS.background_prior,
    }


def test_a_bad_choice_is_refused_naming_it(service):
    with pytest.raises(ClientError, match="unknown loss .no-such-loss"):
        service.client.create_project("bad", loss="no-such-loss")
