"""``covidal demo`` end to end: the real CT from PyPI with synthetic lesions (a training and a held-out case),
cropped to the lungs, a real ``covidal serve`` child process driven through the HTTP client, and the outputs a
user opens afterwards; at toy settings for the mechanics, and at its defaults for a quality floor."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from covidal.cli.main import main
from covidal.sample_data.demo import make_demo_case

TINY = (
    "--cycles",
    "2",
    "--regions",
    "4",
    "--steps",
    "2",
    "--grid-k",
    "4",
    "--mc-samples",
    "1",
    "--size",
    "32",
    "--width",
    "4",
    "--device",
    "cpu",
)
# Floors set from the demo's measured runs (BENCHMARKS.md, "Demo"). With the served defaults of now (certain
# background labelled by HU, infection counted from probability 0.95 on CT) two runs ended alike at held-out Dice
# 0.491 with 175.8 mL predicted against 126.0 mL true, and 34 of 48 first-cycle regions with infection. Before them
# the demo ended at Dice 0.09-0.14 with 1,357-2,437 mL (11-19 times the truth), and before issue 16 at Dice 0.017
# and 56 times the truth with no first-cycle hit: each fails here. The floors leave a margin for other machines.
DICE_FLOOR = 0.3
ML_FACTOR = 3.0
FIRST_CYCLE_HITS = 24
SUMMARY = re.compile(
    r"summary: (\d+) regions answered \((\d+) with a click on infection\), ([\d.]+) s of annotation "
    r"effort; held-out case: Dice ([\d.]+) against the synthetic lesions, ([\d.]+) mL predicted infected vs "
    r"([\d.]+) mL true \(right lung ([\d.]+)%, left lung ([\d.]+)% involved\)"
)
AFTER_CYCLE = re.compile(r"after (\d+) answers \(([\d.]+) s\): held-out Dice ([\d.]+), ([\d.]+) mL predicted")


def run_demo(out: Path, *options: str) -> str:
    """The printed output of ``covidal demo --out OUT OPTIONS`` (which must succeed)."""
    printed, errors = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(errors):
        code = main(["demo", "--out", str(out), *options])
    assert code == 0, errors.getvalue()
    return printed.getvalue()


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, str]:
    """``(OUT, printed output)`` of one tiny demo run, shared by the tests of this module (it takes ~1 min)."""
    out = tmp_path_factory.mktemp("demo") / "out"
    return out, run_demo(out, *TINY)


def test_demo_runs_cycles_through_the_service_and_writes_prediction_and_figures(demo):
    out, printed = demo
    assert printed.count("training job") == 2 and "step 2/2" in printed
    assert "covidal serve is answering at http://127.0.0.1:" in printed
    after = AFTER_CYCLE.findall(printed)  # one line per cycle
    assert [(int(n), float(s)) for n, s, _, _ in after] == [(4, 12.0), (8, 24.0)]
    summary = SUMMARY.search(printed)
    assert summary, printed
    regions, infection, effort, dice, infected_ml, true_ml, right, left = summary.groups()
    assert int(regions) == 2 * 4 and 0 <= int(infection) <= 8 and float(effort) == 3.0 * 8
    assert 0.0 <= float(dice) <= 1.0 and float(infected_ml) >= 0.0
    assert 0 <= float(right) <= 100 and 0 <= float(left) <= 100
    assert "SYNTHETIC" in printed and "held-out case was never suggested nor answered" in printed

    ct, prediction = (sitk.ReadImage(str(path)) for path in (out / "data" / "heldout_ct.nrrd", out / "prediction.nrrd"))
    assert prediction.GetSize() == ct.GetSize()
    assert np.allclose(prediction.GetSpacing(), ct.GetSpacing())
    assert np.allclose(prediction.GetOrigin(), ct.GetOrigin())
    assert np.allclose(prediction.GetDirection(), ct.GetDirection())
    labels = sitk.GetArrayViewFromImage(prediction)
    assert set(np.unique(labels)) <= {0, 1}
    voxel_ml = np.prod(ct.GetSpacing()) / 1000
    assert abs(float(infected_ml) - labels.sum() * voxel_ml) <= 0.05  # printed with one decimal
    lesions = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "data" / "heldout_lesions.nrrd"))) != 0
    assert float(true_ml) == pytest.approx(lesions.sum() * voxel_ml, abs=0.05)
    both = int((labels.astype(bool) & lesions).sum())
    expected = 1.0 if labels.sum() + lesions.sum() == 0 else 2 * both / (labels.sum() + lesions.sum())
    assert float(dice) == pytest.approx(expected, abs=5e-4)  # printed with three decimals

    for figure in ("learning_curve.png", "prediction_vs_truth.png"):
        png = (out / figure).read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000
    assert (out / "service" / "store.sqlite3").is_file()  # the project lives in the service's folder under OUT


def test_demo_crops_the_case_to_the_lungs_keeping_every_lesion_and_the_geometry(demo):
    out, _ = demo
    case = make_demo_case(seed=0)  # the training case; the held-out case (seed 1) is the same CT
    full_ct, crop = sitk.ReadImage(str(case.ct)), sitk.ReadImage(str(out / "data" / "ct.nrrd"))
    assert all(c < f for c, f in zip(crop.GetSize(), full_ct.GetSize()))  # smaller than the whole CT

    # The crop is a sub-grid of the full CT: its origin is the full CT's voxel at the crop's corner, same HU there.
    corner = full_ct.TransformPhysicalPointToIndex(crop.GetOrigin())
    assert np.allclose(full_ct.TransformIndexToPhysicalPoint(corner), crop.GetOrigin())
    assert full_ct[corner] == crop[0, 0, 0]
    # Every lesion voxel is inside the crop, so the Dice on the crop is the Dice on the whole CT.
    for seed, prefix in ((0, ""), (1, "heldout_")):
        full_lesions = sitk.GetArrayFromImage(sitk.ReadImage(str(make_demo_case(seed=seed).lesions)))
        crop_lesions = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "data" / f"{prefix}lesions.nrrd")))
        assert crop_lesions.sum() == full_lesions.sum() > 0


def test_demo_refuses_a_grid_that_is_not_a_perfect_square(cli, tmp_path):
    cli("demo", "--out", tmp_path / "demo", "--grid-k", "5").assert_user_error("--grid-k", "perfect square")
    assert not (tmp_path / "demo").exists()  # refused before anything is made or started


@pytest.mark.timeout(3600)
def test_demo_at_its_defaults_learns_on_the_held_out_case(tmp_path):
    """The quality floor: with the service's CPU defaults, after the demo's 3 cycles, the held-out Dice and the
    predicted mL must stay above floors set from the measured runs (BENCHMARKS.md, "Demo"), so a regression
    such as a model that marks the whole lung fails. The slowest test of the suite (minutes)."""
    printed = run_demo(tmp_path / "out", "--device", "cpu")
    summary = SUMMARY.search(printed)
    assert summary, printed
    dice, infected_ml, true_ml = (float(summary.group(n)) for n in (4, 5, 6))
    assert dice >= DICE_FLOOR, printed
    assert true_ml / ML_FACTOR <= infected_ml <= true_ml * ML_FACTOR, printed
    first_cycle_infection = int(re.search(r"48 answered: (\d+) with a click on infection", printed).group(1))
    assert first_cycle_infection >= FIRST_CYCLE_HITS, printed  # the CT prior finds infection before any model
