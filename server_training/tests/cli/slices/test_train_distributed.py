"""``covidal train --gpus 2 --device cpu``: two gloo processes under torchrun, DistributedDataParallel.

Why the DDP run should match one process with twice the batch: both ranks shuffle
with the same seed and take alternate positions, so at each step their two
batches of B together are the single process's batch of 2B; the full loss is a
mean of per-slice losses (instance norm couples no slices, dropout is 0), and
DDP averages the ranks' gradients, so each step's gradient is the 2B-batch
gradient (the batch augmentation, random per rank, is off). The weights
themselves are not compared: conv biases followed by instance norm have a
mathematically zero gradient, and Adam (which divides by
the gradient's running RMS) turns its float round-off into steps of about lr in
either run. Those biases do not change the network's output, so outputs are.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from covidal.data.slices import load_slices
from covidal.training.checkpoint import load_run
from covidal.training.dataset import network_input

pytestmark = pytest.mark.usefixtures("single_thread_torch")

RUN = (
    "--loss",
    "full",
    "--dropout",
    "0",
    "--val-fraction",
    "0",
    "--epochs",
    "2",
    "--size",
    "32",
    "--width",
    "8",
    "--seed",
    "3",
    "--device",
    "cpu",
    "--quiet",
    "--augment",
    "none",
)


def covidal_subprocess(*argv: object) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "covidal.cli.main", *(str(word) for word in argv)]
    return subprocess.run(
        command, check=False, capture_output=True, text=True, timeout=180, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )


def outputs(run_dir, images) -> np.ndarray:
    model = load_run(run_dir).model.eval()
    with torch.no_grad():
        return model(images).numpy()


def test_two_process_ddp_run_equals_one_process_with_twice_the_batch(cli, synthetic_slices, tmp_path):
    data = ("--images", synthetic_slices.images, "--masks", synthetic_slices.masks)
    ddp = covidal_subprocess("train", *data, *RUN, "--batch-size", "1", "--gpus", "2", "--out", tmp_path / "ddp")
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert ddp.stdout.count("best step 6 of 6, validation Dice n/a") == 1  # rank 0 alone prints
    assert "covidal: error" not in ddp.stderr
    for batch, name in ((2, "one"), (1, "small")):
        assert cli("train", *data, *RUN, "--batch-size", batch, "--out", tmp_path / name).code == 0

    summaries = {name: json.loads((tmp_path / name / "train.json").read_text()) for name in ("ddp", "one", "small")}
    ddp_summary, one = summaries["ddp"], summaries["one"]
    assert ddp_summary["train_slices"] == one["train_slices"] and len(one["train_slices"]) == 6
    assert (tmp_path / "ddp" / "points.json").read_bytes() == (tmp_path / "one" / "points.json").read_bytes()
    assert ddp_summary["config"] == {**one["config"], "batch_size": 1}  # 2 passes of 3 steps either way
    assert sorted(p.name for p in (tmp_path / "ddp").iterdir()) == ["model.pt", "points.json", "train.json"]
    # pass losses averaged over the ranks = the 2B-batch losses (pass 2 depends on pass 1's synchronised steps)
    for ddp_pass, one_pass in zip(ddp_summary["validations"], one["validations"], strict=True):
        assert ddp_pass["step"] == one_pass["step"]
        assert ddp_pass["loss"] == pytest.approx(one_pass["loss"], rel=1e-6)
        assert ddp_pass["loss_parts"] == pytest.approx(one_pass["loss_parts"], rel=1e-6)

    images = network_input([r.image for r in load_slices(synthetic_slices.images, synthetic_slices.masks)], 32)
    ddp_out, one_out, small_out = (outputs(tmp_path / name, images) for name in ("ddp", "one", "small"))
    np.testing.assert_allclose(ddp_out, one_out, atol=1e-4)
    # the comparison can tell: one process with the per-rank batch (B = 1) trains to a different model
    assert np.abs(small_out - one_out).max() > 100 * np.abs(ddp_out - one_out).max()
    assert summaries["small"]["validations"][0]["loss"] != pytest.approx(one["validations"][0]["loss"], rel=1e-3)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA GPUs")
def test_gpus_without_gpus_is_a_user_error(cli, synthetic_slices, tmp_path):
    result = cli(
        "train",
        "--images",
        synthetic_slices.images,
        "--masks",
        synthetic_slices.masks,
        "--loss",
        "point",
        "--gpus",
        "2",
        "--out",
        tmp_path / "run",
    )
    result.assert_user_error("--gpus 2", "0 are available", "--device cpu")
    assert not (tmp_path / "run").exists()


def test_gpus_must_be_positive(cli, synthetic_slices, tmp_path):
    result = cli(
        "train",
        "--images",
        synthetic_slices.images,
        "--masks",
        synthetic_slices.masks,
        "--loss",
        "point",
        "--gpus",
        "0",
        "--device",
        "cpu",
        "--out",
        tmp_path / "run",
    )
    result.assert_user_error("--gpus")
