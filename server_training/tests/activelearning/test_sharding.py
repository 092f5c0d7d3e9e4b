"""Region scoring split over 2 gloo processes (torchrun on the CPU) equals scoring in one process.

Run as a script under torchrun, this file is also the worker: each rank scores the
same slices inside a gloo process group and saves the scores ``mc_region_pass`` returned.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from covidal.activelearning.scoring import mc_region_pass
from covidal.activelearning.sharding import distributed_world, shard_for_rank
from covidal.models.slices.build import ModelConfig, build_model
from covidal.regions.grid import RegionGrid
from covidal.uncertainty.mc_dropout import sample_dropout_masks
from covidal.uncertainty.measures import predictive_entropy

POSITIONS = [4, 0, 3, 1, 2]  # odd count: the ranks' shards differ in size (3 and 2)
SHAPES = [(40, 48), (33, 33), (40, 48), (36, 30), (32, 32)]
SAMPLES, SEED, BATCH = 4, 7, 2


def tiny_scores(model) -> np.ndarray:
    images = torch.from_numpy(np.random.default_rng(0).standard_normal((len(SHAPES), 1, 32, 32), dtype=np.float32))
    masks = sample_dropout_masks(model, SAMPLES, len(SHAPES), SEED)
    return mc_region_pass(
        model, images, masks, SHAPES, RegionGrid(4), predictive_entropy, batch_size=BATCH, positions=POSITIONS
    ).scores


def tiny_model():
    torch.manual_seed(0)
    return build_model(ModelConfig(width=8, dropout=0.5))


@pytest.mark.parametrize(
    ("count", "world_size", "expected"),
    [
        (5, 2, [[0, 2, 4], [1, 3]]),
        (5, 3, [[0, 3], [1, 4], [2]]),
        (2, 3, [[0], [1], []]),
        (4, 1, [[0, 1, 2, 3]]),
    ],
)
def test_shards_take_every_nth_item_and_partition_the_items(count, world_size, expected):
    items = [f"s{i}" for i in range(count)]
    shards = [shard_for_rank(items, rank, world_size) for rank in range(world_size)]
    assert shards == [[f"s{i}" for i in shard] for shard in expected]
    assert sorted(item for shard in shards for item in shard) == sorted(items)


@pytest.mark.parametrize(("rank", "world_size"), [(2, 2), (-1, 2), (0, 0)])
def test_bad_rank_or_world_size_is_refused(rank, world_size):
    with pytest.raises(ValueError, match="outside a world"):
        shard_for_rank([1, 2, 3], rank, world_size)


def test_without_a_process_group_the_world_is_one_process():
    assert distributed_world() == (0, 1)


def test_scores_sharded_over_two_gloo_processes_equal_one_process(tmp_path, single_thread_torch):
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node=2",
        __file__,
        str(tmp_path),
    ]
    finished = subprocess.run(
        command, check=False, capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert finished.returncode == 0, finished.stderr[-3000:]

    expected = tiny_scores(tiny_model())
    assert expected.max() > 0 and len(np.unique(expected)) > 1  # real uncertainty, not zeros
    for rank in range(2):
        gathered = torch.load(tmp_path / f"rank{rank}.pt", weights_only=False)
        # each rank ran the network on its own shard only (3 and 2 slices), yet returns every slice's scores
        assert gathered["images_run"] == [3, 2][rank]
        np.testing.assert_allclose(gathered["scores"], expected, atol=1e-6)


def _score_as_rank(out: Path) -> None:
    """torchrun worker: score the pool inside a 2-process gloo group and save this rank's result."""
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    try:
        rank, world_size = distributed_world()
        assert world_size == 2
        model, images_run = tiny_model(), []
        model.trunk.register_forward_hook(lambda _module, inputs, _output: images_run.append(len(inputs[0])))
        scores = tiny_scores(model)
        torch.save({"images_run": sum(images_run), "scores": scores}, out / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    _score_as_rank(Path(sys.argv[1]))
