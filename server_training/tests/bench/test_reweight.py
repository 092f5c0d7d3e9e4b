"""The step-time benchmark: every mode timed in the same run, ratios to the supervised step."""

from __future__ import annotations

import json

import pytest
import torch

from covidal.bench.reweight import ReweightBenchConfig, bench_reweight, make_batch, markdown_table
from covidal.models.volumes.unet import UNet3DConfig
from covidal.noisyteacher.student_modes import StudentMode

pytestmark = pytest.mark.usefixtures("single_thread_torch")

TINY = UNet3DConfig(channels=(4, 8), strides=(2,), num_res_units=1)


def test_every_mode_is_timed_against_the_supervised_step():
    config = ReweightBenchConfig(patch=(8, 8, 8), batch_size=2, network=TINY, rounds=2, warmup=1)
    result = bench_reweight(config, torch.device("cpu"))
    assert [t.mode for t in result.timings] == list(StudentMode)
    by_mode = {t.mode: t for t in result.timings}
    assert by_mode[StudentMode.SUPERVISED].ratio == pytest.approx(1.0)
    for timing in result.timings:
        assert len(timing.seconds) == 2 and all(s > 0 for s in timing.seconds)
        assert timing.ratio == pytest.approx(timing.median_s / by_mode[StudentMode.SUPERVISED].median_s)
    table = markdown_table(result)
    assert all(f"| {mode.value} |" in table for mode in StudentMode)


def test_supervised_is_always_the_reference():
    config = ReweightBenchConfig(modes=(StudentMode.RGS,))
    assert config.modes == (StudentMode.SUPERVISED, StudentMode.RGS)


def test_benchmark_batches_hold_a_lesion_each():
    batch = make_batch(ReweightBenchConfig(patch=(8, 12, 16), batch_size=3), seed=0)
    assert batch.images.shape == (3, 1, 8, 12, 16) and batch.labels.shape == (3, 8, 12, 16)
    assert all(0 < int(label.sum()) < label.numel() for label in batch.labels)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"batch_size": 0}, "batch size must be an integer >= 1"),
        ({"patch": (8, 8)}, "three sizes"),
        ({"modes": ("fast",)}, "fast"),
    ],
)
def test_bad_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        ReweightBenchConfig(**options)


def test_command_prints_the_table_and_writes_json(cli, tmp_path):
    path = tmp_path / "bench.json"
    result = cli(
        "bench-reweight",
        "--patch",
        "8",
        "--batch",
        "2",
        "--channels",
        "4,8",
        "--rounds",
        "1",
        "--warmup",
        "0",
        "--modes",
        "rgs",
        "rgsm-al",
        "--device",
        "cpu",
        "--json",
        path,
    )
    assert result.code == 0, result.err
    assert "| rgsm-al |" in result.out and "| supervised |" in result.out
    saved = json.loads(path.read_text())
    assert [t["mode"] for t in saved["timings"]] == ["supervised", "rgs", "rgsm-al"]
    cli("bench-reweight", "--channels", "4", "--device", "cpu").assert_user_error("channels")
