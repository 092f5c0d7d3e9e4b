"""``covidal bench-cycle`` bad options through the real entry point: one line, exit status 2, no server started."""

from __future__ import annotations

import pytest
import torch


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--slices", "0"], ["--slices", "at least 1"]),
        (["--size", "64"], ["--size", "2 arguments"]),
        (["--size", "2", "2"], ["too small"]),
        (["--grid-k", "10"], ["grid-k", "perfect square"]),
        (["--image-size", "100"], ["--image-size", "multiple of 32"]),
        (["--slices", "1", "--regions", "40"], ["fewer than two cycles"]),
        (["--device", "tpu"], ["--device", "invalid choice"]),
    ],
)
def test_bad_options_are_one_line_errors(cli, argv, words):
    cli("bench-cycle", *argv).assert_user_error(*words)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_a_one_line_error(cli):
    cli("bench-cycle", "--device", "cuda").assert_user_error("no CUDA GPU")
