"""``covidal bench-scoring`` through the real entry point: printed figures, the JSON, real slices, bad options."""

from __future__ import annotations

import json

import pytest
import torch

from covidal.cli import bench_scoring
from covidal.data.slices import load_slices
from covidal.training.dataset import network_input

pytestmark = pytest.mark.usefixtures("single_thread_torch")

FAST = ("--size", "64", "--width", "8", "--samples", "3", "--batch-size", "2", "--repeats", "2", "--device", "cpu")


@pytest.fixture
def captured_images(monkeypatch):
    """Replace the benchmark by a recorder of the images it is given (for checks of the input only)."""
    seen: list[torch.Tensor] = []
    real_bench = bench_scoring.bench_scoring

    def record(model, images, *rest):
        seen.append(images)
        return real_bench(model, images[:1], 1, 1, torch.device("cpu"), 1, 0)

    monkeypatch.setattr(bench_scoring, "bench_scoring", record)
    return seen


def test_prints_both_rates_ratio_agreement_and_device_and_writes_json(cli, tmp_path):
    out = tmp_path / "bench" / "scoring.json"
    result = cli("bench-scoring", *FAST, "--slices", "3", "--json", out)
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].startswith("device: cpu") and "3 slices of 64x64, T=3, batch 2" in lines[0]
    assert lines[1].startswith("cached") and lines[1].endswith("slices/s")
    assert lines[2].startswith("naive") and lines[2].endswith("slices/s")
    assert lines[3].startswith("ratio cached/naive: ") and lines[4].startswith("agreement: ")
    report = json.loads(out.read_text())
    figures = report["result"]
    assert figures["cached_slices_per_s"] > 0 and figures["naive_slices_per_s"] > 0
    assert figures["ratio"] == pytest.approx(figures["cached_slices_per_s"] / figures["naive_slices_per_s"])
    assert figures["max_abs_entropy_difference"] < 1e-5
    assert (figures["slices"], figures["samples"], figures["batch_size"], figures["image_size"]) == (3, 3, 2, 64)
    assert figures["model"] == "UNet2D F=8 p=0.5"
    assert report["torch"] == torch.__version__
    assert report["command"].startswith("covidal")
    assert report["markdown"].splitlines()[2].startswith(f"| {figures['device']} | UNet2D F=8 p=0.5 | 64 | 3 | 2 | 3 |")


def test_real_slices_are_repeated_cyclically_up_to_slices(cli, make_slices, captured_images):
    data = make_slices(3)
    result = cli("bench-scoring", *FAST, "--slices", "5", "--images", data.images)
    assert result.code == 0, result.err
    (images,) = captured_images
    expected = network_input([r.image for r in load_slices(data.images, None)], 64)
    assert images.shape == (5, 1, 64, 64)
    torch.testing.assert_close(images, expected[[0, 1, 2, 0, 1]], rtol=0, atol=0)


def test_real_slices_end_to_end(cli, make_slices):
    data = make_slices(2)
    result = cli("bench-scoring", *FAST, "--slices", "3", "--images", data.images)
    assert result.code == 0, result.err
    assert "3 slices of 64x64" in result.out


def test_random_images_depend_on_the_seed(cli, captured_images):
    for seed in ("0", "0", "1"):
        assert cli("bench-scoring", *FAST, "--slices", "2", "--seed", seed).code == 0
    first, again, other = captured_images
    assert first.shape == (2, 1, 64, 64)
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_a_trained_run_is_timed_at_its_training_size(cli, tiny_run):
    result = cli(
        "bench-scoring",
        "--model",
        tiny_run,
        "--samples",
        "2",
        "--slices",
        "2",
        "--batch-size",
        "2",
        "--repeats",
        "1",
        "--device",
        "cpu",
    )
    assert result.code == 0, result.err
    assert "2 slices of 32x32" in result.out


@pytest.mark.parametrize(
    ("options", "words"),
    [
        (("--size", "50"), ["--size", "multiple of 32"]),
        (("--size", "0"), ["--size", "at least 1"]),
        (("--samples", "0"), ["--samples", "at least 1"]),
        (("--batch-size", "two"), ["--batch-size", "number"]),
        (("--slices", "-3"), ["--slices", "at least 1"]),
        (("--repeats", "0"), ["--repeats", "at least 1"]),
        (("--width", "0"), ["--width", "at least 1"]),
        (("--seed", "-1"), ["--seed", "negative"]),
        (("--device", "tpu"), ["--device", "tpu"]),
        (("--window-width", "0"), ["--window-width", "positive"]),
    ],
)
def test_bad_options_are_one_line_errors(cli, options, words):
    cli("bench-scoring", *options).assert_user_error(*words)


def test_width_with_a_trained_run_is_refused(cli, tiny_run):
    cli("bench-scoring", "--model", tiny_run, "--width", "8", "--device", "cpu").assert_user_error("--width", "--model")


@pytest.mark.parametrize("option", ["--model", "--images"])
def test_missing_paths_are_one_line_errors(cli, tmp_path, option):
    cli("bench-scoring", "--device", "cpu", option, tmp_path / "missing").assert_user_error("missing")
