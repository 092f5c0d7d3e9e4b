"""The cycle a clinician is served is the cycle a simulation measures: for the same model, volume, strategy,
seed, selection rule and answered regions, a real ``covidal serve`` suggests exactly the regions, in the same
order and with the same scores, that ``covidal simulate``'s cycle selects (``select_for_cycle``), for every
strategy, those that learn from the answers and their effort included."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from job_testing import answer_slices, finished, tiny_project, wait_for_job
from service_testing import unique_name, write_volume

from covidal.activelearning.query import cycle_seed
from covidal.activelearning.simulation.loop import answers_of, select_for_cycle
from covidal.activelearning.simulation.pool import Pool
from covidal.activelearning.simulation.simulation_config import SimulationConfig
from covidal.activelearning.strategies import StrategyParams, build_strategy
from covidal.annotation.state import AnnotationState, Answer, RegionLabel
from covidal.data.io import read_volume
from covidal.data.slices import load_volume_slices
from covidal.losses.registry import LossConfig, LossName
from covidal.regions.grid import RegionGrid, RegionId
from covidal.service.jobs.progress import publish_model
from covidal.service.project.layout import ProjectLayout
from covidal.training.checkpoint import load_run

GRID_K, SAMPLES, COUNT = 16, 3, 12


def ct() -> np.ndarray:
    """int16 ``[6, 40, 48]`` HU: lung-like noise with a denser blob on some slices, so scores vary."""
    rng = np.random.default_rng(4)
    array = rng.normal(-820, 60, (6, 40, 48)).astype(np.int16)
    array[1:4, 10:22, 14:30] = rng.normal(-200, 80, (3, 12, 16)).astype(np.int16)
    return array


@pytest.fixture(scope="module")
def trained_model(service, tmp_path_factory):
    """The model file of a tiny project trained by a real 4-step job."""
    folder = tmp_path_factory.mktemp("trainer")
    project, _ = tiny_project(service.client, folder / "lesion.nrrd")
    answer_slices(service.client, project["id"], {0, 1})
    job = service.client.start_training(project["id"], steps=4)
    job = wait_for_job(service.client, project["id"], job["id"], finished)
    assert job["status"] == "done", service.client.job_log(project["id"], job["id"])
    return ProjectLayout(service.settings.project_dir).current_model(project["id"])


QUICK_PARAMS = {"head_steps": 3, "committee": 3, "top_k": 20, "vae_steps": 5, "cost_min_answers": 5}


@pytest.mark.parametrize(
    ("strategy", "cap", "seed"),
    [
        ("entropy", 1, 3),
        ("entropy", None, 0),
        ("bald", 2, 5),
        ("random", 1, 7),
        ("vote-entropy", 1, 2),
        ("density", None, 4),
        ("ceal", 1, 1),
        ("suggestive", None, 6),
        ("cereals", 1, 8),
        ("vaal", 2, 9),
    ],
)
def test_a_served_cycle_equals_the_simulated_cycle(service, trained_model, tmp_path, strategy, cap, seed):
    client = service.client
    project = client.create_project(
        unique_name("same-cycle"),
        model_kind="unet",
        grid_k=GRID_K,
        strategy=strategy,
        mc_samples=SAMPLES,
        loss="point",
        settings={"seed": seed, "max_per_slice": cap, "strategy_params": QUICK_PARAMS},
    )
    path = write_volume(ct(), tmp_path / "ct.nrrd")
    volume, _ = client.upload_volume(project["id"], path, "ct")
    # Cycle 1 (no model yet, ranked by the CT prior): answer a third of its regions, spread over the slices.
    first = client.create_cycle(project["id"], count=GRID_K * 6)
    leased = client.lease_suggestions(project["id"], first["id"], "dr-a", limit=GRID_K * 6)
    answered = leased[::3]
    efforts = [3.0 + 4.0 * (n % 5) for n in range(len(answered))]  # varied, so that the cost model is fitted
    for suggestion, effort in zip(answered, efforts, strict=True):
        client.submit_annotation(
            project["id"], suggestion["id"], annotator="dr-a", answer="background", effort_seconds=effort
        )
    publish_model(trained_model, ProjectLayout(service.settings.project_dir).current_model(project["id"]))
    served = client.create_cycle(project["id"], count=COUNT)["suggestions"]

    config = SimulationConfig(
        strategy=strategy,
        regions=GRID_K,
        per_cycle=COUNT,
        max_per_slice=cap,
        mc_samples=SAMPLES,
        loss=LossConfig(LossName.POINT),
        seed=seed,
        device="cpu",
        strategy_params=StrategyParams(**QUICK_PARAMS),
    )
    run = load_run(trained_model)
    records = [
        replace(record, mask=np.zeros(record.image.shape, np.uint8))  # the annotator's masks: unused here
        for record in load_volume_slices(read_volume(path), None, "ct", run.config.window)
    ]
    pool = Pool.build(records, run.config.image_size)
    labels = [RegionLabel(RegionId("ct", f"ct:{s['k']}", s["region"]), Answer.BACKGROUND) for s in answered]
    state = AnnotationState(RegionGrid(GRID_K), pool.shapes)
    state.add_many(labels)
    answers = answers_of(pool, state, {label.region: e for label, e in zip(labels, efforts, strict=True)})
    simulated = select_for_cycle(
        pool,
        state.labelled,
        build_strategy(config.strategy, config.strategy_params),
        run.model,
        config.query_options(),
        cycle_seed(config.seed, 2),
        answers,
    )

    assert len(served) == COUNT
    assert [(s["volume_id"], f"ct:{s['k']}", s["region"]) for s in served] == [
        (volume["id"], region.slice, region.region) for region, _ in simulated
    ]
    assert [s["score"] for s in served] == [score for _, score in simulated]
    # Scored by the model, not tied; but 3 voters give a pixel one of two vote entropies, so its regions may tie.
    assert len({s["score"] for s in served}) > 1 or strategy == "vote-entropy"
    asked = {(s["k"], s["region"]) for s in served}
    assert not asked & {(s["k"], s["region"]) for s in answered}
    slices = [s["k"] for s in served]
    if cap is not None and cap * 6 >= COUNT:  # 6 slices fill 12 regions at a cap of 2; at 1 the cap gives way
        assert max(slices.count(k) for k in slices) <= cap
