"""Pool scoring split over 2 gloo processes (torchrun on the CPU) equals scoring in one process.

Run as a script under torchrun, this file is also the worker: each rank scores the
same pool inside a gloo process group and saves what ``score_pool`` returned.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from covidal.activelearning.pool import Pool
from covidal.activelearning.scoring import score_pool
from covidal.activelearning.sharding import distributed_world, shard_for_rank
from covidal.data.slices import SliceRecord
from covidal.models.registry import ModelConfig, build_model
from covidal.regions.grid import RegionGrid
from covidal.strategies.entropy import EntropyStrategy

INDICES = [4, 0, 3, 1, 2]  # odd count: the ranks' shards differ in size (3 and 2)
SAMPLES, SEED, BATCH = 4, 7, 2


def tiny_pool() -> Pool:
    rng = np.random.default_rng(0)
    shapes = [(40, 48), (33, 33), (40, 48), (36, 30), (32, 32)]
    records = [SliceRecord(str(i), rng.random(s, dtype=np.float32), np.zeros(s, np.uint8), str(i), None)
               for i, s in enumerate(shapes)]
    return Pool.build(records, 32)


def tiny_model():
    torch.manual_seed(0)
    return build_model(ModelConfig(width=8, dropout=0.5))


def scores_as_arrays(scores) -> list[tuple[tuple[str, str], np.ndarray]]:
    return [(s.key, s.pixel_scores) for s in scores]


@pytest.mark.parametrize(("count", "world_size", "expected"), [
    (5, 2, [[0, 2, 4], [1, 3]]),
    (5, 3, [[0, 3], [1, 4], [2]]),
    (2, 3, [[0], [1], []]),
    (4, 1, [[0, 1, 2, 3]]),
])
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
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
               __file__, str(tmp_path)]
    finished = subprocess.run(command, check=False, capture_output=True, text=True, timeout=120,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert finished.returncode == 0, finished.stderr[-3000:]

    expected = scores_as_arrays(score_pool(tiny_model(), tiny_pool(), INDICES, EntropyStrategy(RegionGrid(4)),
                                           SAMPLES, SEED, BATCH))
    assert max(scores.max() for _, scores in expected) > 0  # a real uncertainty map, not zeros
    for rank in range(2):
        gathered = torch.load(tmp_path / f"rank{rank}.pt", weights_only=False)
        # each rank ran the network on its own shard only (3 and 2 slices), yet returns every slice's scores
        assert gathered["images_run"] == [3, 2][rank]
        assert [key for key, _ in gathered["scores"]] == [key for key, _ in expected]
        for (_, got), (_, want) in zip(gathered["scores"], expected):
            np.testing.assert_allclose(got, want, atol=1e-6)


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
        scores = score_pool(model, tiny_pool(), INDICES, EntropyStrategy(RegionGrid(4)), SAMPLES, SEED, BATCH)
        torch.save({"images_run": sum(images_run), "scores": scores_as_arrays(scores)}, out / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    _score_as_rank(Path(sys.argv[1]))
