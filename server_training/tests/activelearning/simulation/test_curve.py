"""curve.json: round trip, merge by name, concurrent writers, malformed files, grouping of runs."""

from __future__ import annotations

import json
import math
import multiprocessing

import pytest

from covidal.activelearning.simulation.curve import (
    CURVE_FORMAT,
    CURVE_VERSION,
    CycleRecord,
    RunCurve,
    group_runs,
    load_curves,
    shared_full_effort,
    update_curve_file,
)
from covidal.errors import CovidalError

WRITERS = 4
UPDATES_PER_WRITER = 15


def metrics(dice: float | None = 0.5) -> dict:
    return {"dice": dice, "iou": 0.4, "ppv": None, "sensitivity": 0.6, "specificity": 0.99}


def record(cycle: int, dice: float | None = 0.5) -> CycleRecord:
    return CycleRecord(
        cycle=cycle,
        labelled_regions=10 * (cycle + 1),
        labelled_slices=cycle + 2,
        effort_seconds=30.0 * (cycle + 1),
        test=metrics(dice),
        train_seconds=1.5,
        score_seconds=0.5,
    )


def make_run(
    name: str = "entropy-cb-flip-rot-seed0",
    strategy: str = "entropy",
    loss: str = "cb-flip-rot",
    seed: int = 0,
    cycles: int = 2,
    config: dict | None = None,
    full: float | None = 3600.0,
) -> RunCurve:
    return RunCurve(
        name=name,
        strategy=strategy,
        loss=loss,
        seed=seed,
        full_effort_seconds=full,
        config=config if config is not None else {"regions": 64, "seed": seed},
        cycles=[record(c) for c in range(cycles)],
    )


def valid_document() -> dict:
    return {"format": CURVE_FORMAT, "version": CURVE_VERSION, "runs": [make_run().to_dict()]}


# --- file round trip and merge ---------------------------------------------------------------


def test_update_then_load_round_trips_and_nan_becomes_undefined(tmp_path):
    path = tmp_path / "out" / "curve.json"
    run = make_run(cycles=3)
    run.cycles[2].test["dice"] = math.nan
    update_curve_file(path, run)
    [loaded] = load_curves(path)
    assert json.loads(path.read_text())["runs"][0]["cycles"][2]["test"]["dice"] is None  # standard JSON, no NaN
    assert loaded.cycles[2].metric("dice") is None and run.cycles[2].metric("dice") is None
    run.cycles[2].test["dice"] = None
    assert loaded == run


def test_update_replaces_the_run_of_the_same_name_in_place_and_appends_others(tmp_path):
    path = tmp_path / "curve.json"
    update_curve_file(path, make_run("a", cycles=1))
    update_curve_file(path, make_run("b", seed=1, cycles=1))
    update_curve_file(path, make_run("a", cycles=3))
    runs = load_curves(path)
    assert [(run.name, len(run.cycles)) for run in runs] == [("a", 3), ("b", 1)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curve.json", "curve.json.lock"]  # no temporary file left


def _write_many(path, name: str, seed: int, updates: int, barrier) -> None:
    """One simulated run: store its curve after every one of ``updates`` cycles."""
    barrier.wait()
    run = make_run(name, seed=seed, cycles=0)
    for cycle in range(updates):
        run.cycles.append(record(cycle, dice=cycle / updates))
        update_curve_file(path, run)


def test_concurrent_writers_sharing_a_file_never_lose_runs_or_cycles(tmp_path):
    path = tmp_path / "curve.json"
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(WRITERS)  # start together, so the writes really interleave
    writers = [
        context.Process(target=_write_many, args=(path, f"run{i}", i, UPDATES_PER_WRITER, barrier))
        for i in range(WRITERS)
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=60)
    assert [writer.exitcode for writer in writers] == [0] * WRITERS
    runs = {run.name: run for run in load_curves(path)}
    assert sorted(runs) == [f"run{i}" for i in range(WRITERS)]
    for run in runs.values():
        assert [r.cycle for r in run.cycles] == list(range(UPDATES_PER_WRITER))


def test_update_refuses_to_overwrite_a_malformed_file(tmp_path):
    path = tmp_path / "curve.json"
    path.write_text("{not json")
    with pytest.raises(CovidalError, match="curve.json"):
        update_curve_file(path, make_run())
    assert path.read_text() == "{not json"


# --- malformed files ---------------------------------------------------------------------------


def test_missing_file_is_an_error_naming_it(tmp_path):
    with pytest.raises(CovidalError, match=r"curve file .*nowhere\.json does not exist"):
        load_curves(tmp_path / "nowhere.json")


def _set(document: dict, dotted: str, value) -> dict:
    """Set ``runs.0.cycles.1.test.dice``-style paths; ``value=KeyError`` deletes the key."""
    *parents, last = dotted.split(".")
    target = document
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    if value is KeyError:
        del target[last]
    else:
        target[last] = value
    return document


@pytest.mark.parametrize(
    ("change", "value", "message"),
    [
        ("format", "covidal.annotations", "format"),
        ("version", 2, "version 2"),
        ("runs", {}, "'runs' must be a list"),
        ("runs.0.seed", KeyError, "missing seed"),
        ("runs.0.colour", "red", "unexpected colour"),
        ("runs.0.seed", "0", "seed"),
        ("runs.0.seed", True, "seed"),
        ("runs.0.name", "", "name"),
        ("runs.0.full_effort_seconds", -1, "full_effort_seconds"),
        ("runs.0.config", [], "config"),
        ("runs.0.cycles", {}, "cycles"),
        ("runs.0.cycles.1.cycle", 0, "cycle numbers must increase"),
        ("runs.0.cycles.1.effort_seconds", -3.0, "effort_seconds"),
        ("runs.0.cycles.1.labelled_regions", 2.5, "labelled_regions"),
        ("runs.0.cycles.1.test.dice", KeyError, "dice"),
        ("runs.0.cycles.1.test.iou", "high", "iou"),
        ("runs.0.cycles.1.test", [0.5], "test"),
        ("runs.0.cycles.1.train_seconds", KeyError, "missing train_seconds"),
    ],
)
def test_malformed_files_are_errors_naming_the_file_and_the_problem(tmp_path, change, value, message):
    path = tmp_path / "curve.json"
    path.write_text(json.dumps(_set(valid_document(), change, value)))
    with pytest.raises(CovidalError) as raised:
        load_curves(path)
    assert str(path) in str(raised.value) and message in str(raised.value)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("text", ["[1, 2]", "{truncated", ""])
def test_non_object_or_invalid_json_is_an_error(tmp_path, text):
    path = tmp_path / "curve.json"
    path.write_text(text)
    with pytest.raises(CovidalError, match="curve.json"):
        load_curves(path)


def test_two_runs_with_one_name_are_an_error(tmp_path):
    document = valid_document()
    document["runs"].append(document["runs"][0])
    path = tmp_path / "curve.json"
    path.write_text(json.dumps(document))
    with pytest.raises(CovidalError, match="stored twice: entropy-cb-flip-rot-seed0"):
        load_curves(path)


def test_an_empty_run_list_is_a_valid_file(tmp_path):
    path = tmp_path / "curve.json"
    path.write_text(json.dumps({"format": CURVE_FORMAT, "version": CURVE_VERSION, "runs": []}))
    assert load_curves(path) == []


def test_metric_of_a_record(tmp_path):
    assert record(0, dice=0.25).metric("dice") == 0.25
    assert record(0, dice=None).metric("dice") is None
    assert record(0, dice=math.nan).metric("dice") is None
    with pytest.raises(KeyError):
        record(0).metric("hausdorff")


# --- grouping ---------------------------------------------------------------------------------


def test_runs_differing_only_in_seed_or_device_form_one_group_in_order_of_appearance():
    runs = [
        make_run("r0", "random", seed=0, config={"regions": 64, "seed": 0, "device": "cuda"}),
        make_run("e0", "entropy", seed=0, config={"regions": 64, "seed": 0, "device": "cpu"}),
        make_run("r1", "random", seed=1, config={"regions": 64, "seed": 1, "device": "cpu"}),
        make_run("e1", "entropy", "point", seed=1),
    ]
    groups = group_runs(runs)
    assert [(g.label, [r.name for r in g.runs], g.seeds) for g in groups] == [
        ("random / cb-flip-rot", ["r0", "r1"], (0, 1)),
        ("entropy / cb-flip-rot", ["e0"], (0,)),
        ("entropy / point", ["e1"], (1,)),
    ]


def test_other_settings_split_a_group_and_name_the_difference():
    warm = {"warm_start": True, "loss": {"name": "cb-flip-rot", "weight": 1}, "seed": 0}
    scratch = {"warm_start": False, "loss": {"name": "cb-flip-rot", "weight": 1}, "seed": 0}
    runs = [
        make_run("w", config=warm),
        make_run("s", config=scratch),
        make_run("rw", "random", config=warm),
        make_run("rk", "random", config={**warm, "loss": {"name": "x", "weight": 2}}),
    ]
    assert [g.label for g in group_runs(runs)] == [
        "entropy / cb-flip-rot, warm_start=True",
        "entropy / cb-flip-rot, warm_start=False",
        "random / cb-flip-rot, loss.weight=1",
        "random / cb-flip-rot, loss.weight=2",
    ]


def test_the_same_seed_twice_in_a_group_is_refused():
    with pytest.raises(ValueError, match="'a' and 'b' are both entropy / cb-flip-rot seed 0"):
        group_runs([make_run("a"), make_run("b")])


def test_shared_full_effort():
    assert shared_full_effort([make_run(full=3600.0), make_run(full=3600.0)]) == 3600.0
    assert shared_full_effort([make_run(full=3600.0), make_run(full=1800.0)]) is None
    assert shared_full_effort([make_run(full=3600.0), make_run(full=None)]) is None
    assert shared_full_effort([]) is None


# --- validation of the dataclasses -------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("cycle", -1),
        ("labelled_slices", 1.0),
        ("effort_seconds", math.inf),
        ("train_seconds", "1"),
        ("test", {"dice": 0.5}),
        ("test", {**metrics(), "dice": "0.5"}),
    ],
)
def test_bad_cycle_records_are_refused(field, value):
    fields = {**record(0).__dict__, field: value}
    with pytest.raises(ValueError, match=field if field != "test" else "test"):
        CycleRecord(**fields)


def test_extra_test_metrics_are_kept():
    assert CycleRecord(**{**record(0).__dict__, "test": {**metrics(), "mae": 1.5}}).test["mae"] == 1.5
