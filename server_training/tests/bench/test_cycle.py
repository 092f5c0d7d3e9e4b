"""``covidal bench-cycle``: a tiny run against a real server, its figures by hand, and bad configurations."""

from __future__ import annotations

import json
import statistics

import pytest

from covidal.bench.cycle import GOAL_S, CycleBenchConfig, CycleBenchResult, CycleCall
from covidal.errors import CovidalError


@pytest.mark.parametrize(("options", "cache"), [((), True), (("--no-cache",), False)])
def test_tiny_run_times_cycles_scored_by_the_trained_model(cli, tmp_path, options, cache):
    out, figures = tmp_path / "run", tmp_path / "cycle.json"
    result = cli(
        "bench-cycle",
        "--slices",
        "6",
        "--size",
        "64",
        "48",
        "--regions",
        "10",
        "--grid-k",
        "64",
        "--train-steps",
        "1",
        "--repeats",
        "2",
        "--mc-samples",
        "2",
        "--device",
        "cpu",
        "--out",
        out,
        "--json",
        figures,
        *options,
    )
    assert result.code == 0, result.err
    assert result.out.startswith(
        "cycle: 64x48x6 (i, j, k) CT, 64 regions per slice, 10 suggestions, 2 MC-dropout samples"
    )
    assert f"service cache {'on' if cache else 'off (--cache-mb 0)'}" in result.out.splitlines()[0]
    data = json.loads(figures.read_text())
    assert (
        data["slices"],
        data["shape"],
        data["device"],
        data["regions"],
        data["mc_samples"],
        data["goal_s"],
        data["cache"],
    ) == (6, [64, 48, 6], "cpu", 10, 2, GOAL_S, cache)
    assert [call["kind"] for call in data["calls"]] == ["cold", "warm", "warm"]
    assert all(call["suggestions"] == 10 for call in data["calls"])
    assert all(call["create_s"] > 0 and call["lease_s"] > 0 for call in data["calls"])
    assert data["cold_s"] == pytest.approx(data["calls"][0]["create_s"] + data["calls"][0]["lease_s"])
    assert data["warm_s"] == [call["total_s"] for call in data["calls"][1:]]
    assert data["median_s"] == pytest.approx(statistics.median(data["warm_s"]))
    assert min(data["upload_s"], data["initial_cycle_s"], data["train_s"]) > 0
    # The timed cycles ran after the training job had published the project's model, and the kept
    # log shows 1 + 1 + repeats cycles opened.
    assert (out / "project" / "models" / "1" / "current" / "model.pt").is_file()
    assert (out / "server.log").read_text().count('"POST /projects/1/cycles HTTP/1.1" 201') == 4


def test_result_figures_by_hand():
    result = CycleBenchResult(
        CycleBenchConfig(slices=2, size=(8, 8), regions=4),
        (8, 8, 2),
        0.1,
        0.2,
        0.3,
        5.0,
        cold=CycleCall(4.0, 0.5, 4),
        warm=(CycleCall(3.0, 0.25, 4), CycleCall(1.0, 0.5, 4), CycleCall(2.0, 0.0, 4)),
    )
    assert result.warm_s == [3.25, 1.5, 2.0]
    assert (result.min_s, result.median_s) == (1.5, 2.0)
    data = result.to_dict()
    assert (data["cold_s"], data["shape"], data["calls"][1]["total_s"]) == (4.5, [8, 8, 2], 3.25)


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"slices": 0}, "slices"),
        ({"repeats": True}, "repeats"),
        ({"seed": -1}, "seed"),
        ({"size": (64, 64, 64)}, "two numbers"),
        ({"grid_k": 10}, "perfect square"),
        ({"size": (2, 64)}, "too small"),
        ({"regions": 1001}, "at most 1000"),
        ({"slices": 1, "regions": 40}, "fewer than two cycles"),
        ({"image_size": 100}, "multiple of 32"),
        ({"device": "tpu"}, "device"),
        ({"cache": "no"}, "cache must be True or False"),
    ],
)
def test_bad_config_is_a_clear_error(changes, words):
    with pytest.raises(CovidalError, match=words):
        CycleBenchConfig(**changes)
