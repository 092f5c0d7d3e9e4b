"""A real (tiny) simulation end to end: annotator, training, scoring, selection, curve file."""

import json

import numpy as np
import pytest
import torch

from covidal.activelearning.simulation.curve import load_curves
from covidal.activelearning.simulation.loop import CURVE_FILE, simulate
from covidal.activelearning.simulation.simulation_config import SimulationConfig
from covidal.activelearning.strategies import StrategyParams
from covidal.annotation.state import Answer
from covidal.data.slices import load_slices
from covidal.errors import CovidalError
from covidal.losses.registry import LossConfig, LossName
from covidal.models.slices.build import ModelConfig
from covidal.training.checkpoint import load_run


def tiny_config(**options) -> SimulationConfig:
    defaults = {
        "regions": 16,
        "init_slices": 1,
        "cycles": 2,
        "per_cycle": 4,
        "max_per_slice": 2,
        "mc_samples": 3,
        "steps_per_cycle": 2,
        "batch_size": 2,
        "image_size": 32,
        "model": ModelConfig(width=4),
        "loss": LossConfig(LossName.POINT),
        "device": "cpu",
    }
    return SimulationConfig(**{**defaults, **options})


@pytest.fixture
def data(make_slices):
    pool, test = make_slices(5, seed=1, name="pool"), make_slices(2, seed=2, name="test")
    return load_slices(pool.images, pool.masks), load_slices(test.images, test.masks)


@pytest.mark.parametrize("strategy", ["entropy", "random"])
def test_two_cycles_end_to_end(data, tmp_path, strategy, single_thread_torch):
    pool, test = data
    config = tiny_config(strategy=strategy)
    run = simulate(pool, test, config, tmp_path, progress=False)

    assert [c.cycle for c in run.cycles] == [0, 1, 2]
    # Cycle 0: one slice in full (16 regions, 3 s each); then 4 regions per cycle, at most 2 per slice.
    assert [c.labelled_regions for c in run.cycles] == [16, 20, 24]
    assert [c.effort_seconds for c in run.cycles] == [48.0, 60.0, 72.0]
    assert run.full_effort_seconds > 0
    for cycle in run.cycles:
        assert 0 <= cycle.test["dice"] <= 1 and set(cycle.test) >= {"dice", "iou", "ppv", "sensitivity", "specificity"}

    [stored] = load_curves(tmp_path / CURVE_FILE)
    assert stored.name == config.run_name and len(stored.cycles) == 3

    run_dir = tmp_path / "runs" / config.run_name
    asked = []
    for cycle in (1, 2):
        record = json.loads((run_dir / f"cycle_{cycle:02d}.json").read_text())
        asked += [(s["case"], s["slice"], s["region"]) for s in record["selection"]]
        assert record["seeds"]["run"] == config.seed
    assert len(asked) == len(set(asked)) == 8  # never asks a region twice
    annotations = json.loads((run_dir / "annotations.json").read_text())
    assert len(annotations["labels"]) == 24
    assert load_run(run_dir).config.image_size == 32


def test_answers_are_truthful(data, tmp_path, single_thread_torch):
    pool, test = data
    config = tiny_config(strategy="entropy")
    simulate(pool, test, config, tmp_path, progress=False)
    masks = {r.slice_id: r.mask for r in pool}
    record = json.loads((tmp_path / "runs" / config.run_name / "cycle_01.json").read_text())
    for asked in record["selection"]:
        if asked["answer"] == Answer.INFECTION.value:
            [[row, col]] = asked["points"]
            assert masks[asked["slice"]][row, col] == 1


def test_same_seed_same_run(data, tmp_path, single_thread_torch):
    pool, test = data
    runs = [simulate(pool, test, tiny_config(strategy="entropy"), tmp_path / name, progress=False) for name in "ab"]
    selections = [
        json.loads((tmp_path / name / "runs" / runs[0].name / "cycle_02.json").read_text())["selection"]
        for name in "ab"
    ]
    assert selections[0] == selections[1]
    assert [c.test for c in runs[0].cycles] == [c.test for c in runs[1].cycles]


def test_runs_sharing_a_folder_keep_their_own_curves(data, tmp_path, single_thread_torch):
    pool, test = data
    for strategy in ("random", "entropy"):
        simulate(pool, test, tiny_config(strategy=strategy, cycles=1), tmp_path, progress=False)
    assert sorted(run.strategy for run in load_curves(tmp_path / CURVE_FILE)) == ["entropy", "random"]


def test_scratch_and_warm_start_differ_after_cycle_0(data, tmp_path, single_thread_torch):
    pool, test = data
    warm = simulate(pool, test, tiny_config(steps_per_cycle=4), tmp_path / "warm", progress=False)
    scratch = simulate(
        pool, test, tiny_config(steps_per_cycle=4, warm_start=False), tmp_path / "scratch", progress=False
    )
    assert warm.cycles[0].test == scratch.cycles[0].test  # same labels, same initial weights
    weights = [
        torch.load(tmp_path / name / "runs" / run.name / "model.pt", weights_only=True)["state_dict"]
        for name, run in (("warm", warm), ("scratch", scratch))
    ]
    assert any(not torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


@pytest.mark.parametrize(
    ("options", "message"),
    [({"init_slices": 9}, "init-slices"), ({"regions": 2500}, "too small")],
)
def test_rejects_impossible_runs(data, tmp_path, options, message):
    pool, test = data
    with pytest.raises(CovidalError, match=message):
        simulate(pool, test, tiny_config(**options), tmp_path, progress=False)


def test_needs_test_masks(data, tmp_path):
    pool, test = data
    unmasked = [type(r)(r.slice_id, r.image, None, r.case_id, r.slice_index) for r in test]
    with pytest.raises(CovidalError, match="test set"):
        simulate(pool, unmasked, tiny_config(), tmp_path, progress=False)


def test_stops_when_the_pool_is_exhausted(data, tmp_path, single_thread_torch):
    pool, test = data
    # 5 slices x 4 regions: 1 slice in full, then 20 regions asked answer everything in one cycle.
    run = simulate(
        pool, test, tiny_config(regions=4, per_cycle=20, max_per_slice=4, cycles=3), tmp_path, progress=False
    )
    assert [c.labelled_regions for c in run.cycles] == [4, 20]
    assert np.isclose(run.cycles[-1].effort_seconds, 60.0)


def test_the_mask_protocol_outlines_infected_regions_and_prices_their_vertices(data, tmp_path, single_thread_torch):
    """Under ``mask``, an infected region's answer holds every infected pixel and costs 3 s per polygon vertex
    (at least 9 s); an empty region a 3 s tag. The same run under ``point`` costs 3 s per region."""
    pool, test = data
    masked = simulate(pool, test, tiny_config(protocol="mask"), tmp_path, progress=False)
    clicked = simulate(pool, test, tiny_config(), tmp_path, progress=False)
    assert "-mask" in masked.name and "-mask" not in clicked.name
    cycle = json.loads((tmp_path / "runs" / masked.name / "cycle_01.json").read_text())
    for entry in cycle["selection"]:
        if entry["answer"] == "infection":
            assert entry["outline_pixels"] >= 1 and entry["effort_seconds"] >= 9.0
        else:
            assert entry["effort_seconds"] == 3.0
    assert masked.cycles[0].effort_seconds > clicked.cycles[0].effort_seconds == 48.0
    annotations = json.loads((tmp_path / "runs" / masked.name / "annotations.json").read_text())
    assert any(label.get("outlined") for label in annotations["labels"])


def test_ceal_pseudo_labels_join_training_without_counting_as_effort(data, tmp_path, single_thread_torch):
    pool, test = data
    config = tiny_config(strategy="ceal", strategy_params=StrategyParams(delta=0.51, pseudo_weight=0.5))
    run = simulate(pool, test, config, tmp_path, progress=False)
    assert [c.effort_seconds for c in run.cycles] == [48.0, 60.0, 72.0]  # the pseudo-labels cost nothing
    cycles = [json.loads((tmp_path / "runs" / run.name / f"cycle_{n:02d}.json").read_text()) for n in (0, 1, 2)]
    assert cycles[0]["pseudo_labels"] is None  # no model before the first training
    for cycle in (1, 2):
        pseudo = cycles[cycle]["pseudo_labels"]
        assert (
            pseudo["cycle"] == cycle
            and pseudo["pixels"] > 0
            and pseudo["threshold"] == pytest.approx(0.51 - 0.005 * (cycle - 1))
        )
