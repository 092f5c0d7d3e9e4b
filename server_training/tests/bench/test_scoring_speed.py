"""The scoring benchmark: both methods give the same entropy maps, and the result's figures are consistent."""

from __future__ import annotations

import math
import statistics

import pytest
import torch

from covidal.bench import scoring_speed as scoring
from covidal.bench.scoring_speed import (
    MARKDOWN_HEADER,
    ScoringBenchResult,
    ScoringMethod,
    bench_scoring,
    format_rate,
    markdown_table,
    score_batch,
)
from covidal.models.slices.unet import UNet2D

pytestmark = pytest.mark.usefixtures("single_thread_torch")

SIZE = 64
SAMPLES = 3
CPU = torch.device("cpu")


def make_unet() -> UNet2D:
    torch.manual_seed(0)
    return UNet2D(features=(8, 8, 16, 32, 64, 8), dropout=0.5)


def make_images(count: int) -> torch.Tensor:
    return torch.randn(count, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def model() -> UNet2D:
    return make_unet()


def test_cached_and_naive_entropy_agree_on_the_same_masks(model):
    images = make_images(2)
    cached = score_batch(model, images, SAMPLES, seed=5, method=ScoringMethod.CACHED)
    naive = score_batch(model, images, SAMPLES, seed=5, method=ScoringMethod.NAIVE)
    assert cached.shape == naive.shape == (2, SIZE, SIZE)
    assert cached.dtype == naive.dtype == torch.float64 and cached.device.type == "cpu"
    assert (cached - naive).abs().max().item() < 1e-5
    assert cached.min().item() >= 0.0 and cached.max().item() <= math.log(2) + 1e-6


def test_the_seed_chooses_the_masks(model):
    # Guards the agreement test: with other masks the maps do differ.
    images = make_images(2)
    first = score_batch(model, images, SAMPLES, seed=5, method=ScoringMethod.CACHED)
    other = score_batch(model, images, SAMPLES, seed=6, method=ScoringMethod.CACHED)
    assert (first - other).abs().max().item() > 1e-3


def test_bench_result_fields_are_consistent(model):
    # 5 slices in batches of 2: the last batch holds one slice and must still be counted.
    result = bench_scoring(model, make_images(5), SAMPLES, batch_size=2, device=CPU, repeats=3, seed=0)
    assert (result.slices, result.samples, result.batch_size, result.image_size, result.repeats) == (
        5,
        SAMPLES,
        2,
        SIZE,
        3,
    )
    assert len(result.cached_seconds) == len(result.naive_seconds) == 3
    assert all(seconds > 0 for seconds in (*result.cached_seconds, *result.naive_seconds))
    assert result.cached_slices_per_s == pytest.approx(5 / statistics.median(result.cached_seconds))
    assert result.naive_slices_per_s == pytest.approx(5 / statistics.median(result.naive_seconds))
    assert result.ratio == pytest.approx(result.cached_slices_per_s / result.naive_slices_per_s)
    assert 0 <= result.max_abs_entropy_difference < 1e-5
    assert result.device.startswith("cpu") and "threads" in result.device
    assert result.model == "UNet2D F=8 p=0.5"


def test_warm_up_once_each_then_alternate_and_take_medians(model, monkeypatch):
    calls: list[tuple[str, ScoringMethod, int]] = []
    timings = {ScoringMethod.CACHED: iter([1.0, 3.0, 2.0]), ScoringMethod.NAIVE: iter([4.0, 12.0, 8.0])}

    def warm_up(model, images, samples, seed, method):
        calls.append(("warm-up", method, images.shape[0]))

    def timed_pass(model, batches, samples, seed, method, device):
        calls.append(("timed", method, sum(len(batch) for batch in batches)))
        return next(timings[method]), torch.zeros(6, SIZE, SIZE)

    monkeypatch.setattr(scoring, "score_batch", warm_up)
    monkeypatch.setattr(scoring, "_timed_pass", timed_pass)
    result = bench_scoring(model, make_images(6), SAMPLES, batch_size=4, device=CPU, repeats=3, seed=0)
    cached, naive = ScoringMethod.CACHED, ScoringMethod.NAIVE
    assert calls == [
        ("warm-up", cached, 4),
        ("warm-up", naive, 4),
        ("timed", cached, 6),
        ("timed", naive, 6),
        ("timed", naive, 6),
        ("timed", cached, 6),
        ("timed", cached, 6),
        ("timed", naive, 6),
    ]
    # Medians 2 s and 8 s for 6 slices.
    assert (result.cached_slices_per_s, result.naive_slices_per_s, result.ratio) == (3.0, 0.75, 4.0)
    assert result.max_abs_entropy_difference == 0.0


@pytest.mark.parametrize(
    ("images", "samples", "batch_size", "repeats", "message"),
    [
        (torch.zeros(1, SIZE, SIZE), 2, 1, 1, "images must be"),
        (torch.zeros(0, 1, SIZE, SIZE), 2, 1, 1, "images must be"),
        (torch.zeros(1, 1, SIZE, 2 * SIZE), 2, 1, 1, "images must be"),
        (torch.zeros(1, 1, SIZE, SIZE), 0, 1, 1, "samples, batch_size and repeats"),
        (torch.zeros(1, 1, SIZE, SIZE), 2, 0, 1, "samples, batch_size and repeats"),
        (torch.zeros(1, 1, SIZE, SIZE), 2, 1, 0, "samples, batch_size and repeats"),
    ],
)
def test_bad_arguments(model, images, samples, batch_size, repeats, message):
    with pytest.raises(ValueError, match=message):
        bench_scoring(model, images, samples, batch_size, CPU, repeats, seed=0)


def test_model_rejects_a_size_it_cannot_take(model):
    with pytest.raises(ValueError, match="divisible by 16"):
        bench_scoring(model, torch.zeros(1, 1, 40, 40), SAMPLES, 1, CPU, 1, seed=0)


def test_markdown_table_one_row_per_result():
    result = ScoringBenchResult(
        slices=64,
        samples=20,
        batch_size=16,
        image_size=352,
        device="NVIDIA H100",
        model="UNet2D F=32 p=0.5",
        repeats=3,
        cached_seconds=(0.04,),
        naive_seconds=(1.6,),
        cached_slices_per_s=1600.0,
        naive_slices_per_s=40.0,
        ratio=40.0,
        max_abs_entropy_difference=0.00312,
    )
    lines = markdown_table([result, result]).splitlines()
    assert lines[:2] == MARKDOWN_HEADER.splitlines()
    assert len(lines) == 4 and all(line.count("|") == 11 for line in lines)
    assert lines[2] == "| NVIDIA H100 | UNet2D F=32 p=0.5 | 352 | 20 | 16 | 64 | 1600.0 | 40.0 | 40.0x | 3.1e-03 |"
    assert result.to_dict()["ratio"] == 40.0 and result.to_dict()["cached_seconds"] == (0.04,)


@pytest.mark.parametrize(("rate", "text"), [(1834.24, "1834.2"), (1.0, "1.0"), (0.04276, "0.0428"), (0.5, "0.5")])
def test_format_rate_keeps_slow_rates_readable(rate, text):
    assert format_rate(rate) == text
