import sys

import pytest
import torch

from covidal.errors import CovidalError
from covidal.training.dataset import TrainingSlices
from covidal.training.distributed import (
    SINGLE_PROCESS,
    Shard,
    check_gpus,
    mean_over_ranks,
    shard_order,
    torchrun_command,
)
from covidal.training.train_config import DeviceChoice


@pytest.mark.parametrize(
    ("length", "world_size", "expected"),
    [
        (6, 2, [[0, 2, 4], [1, 3, 5]]),
        (5, 2, [[0, 2, 4], [1, 3, 0]]),  # padded by wrapping: both ranks take 3 steps' worth
        (4, 3, [[0, 3], [1, 0], [2, 1]]),
        (2, 4, [[0], [1], [0], [1]]),
    ],
)
def test_shards_stride_through_the_order_padded_to_equal_length(length, world_size, expected):
    order = torch.tensor([10 + i for i in range(length)])
    shards = [shard_order(order, Shard(rank, world_size)).tolist() for rank in range(world_size)]
    assert shards == [[10 + i for i in shard] for shard in expected]


def test_one_process_keeps_the_order_as_it_is():
    order = torch.randperm(7, generator=torch.Generator().manual_seed(3))
    assert shard_order(order, SINGLE_PROCESS) is order


def test_two_ranks_batches_partition_the_single_process_batches():
    data = TrainingSlices(torch.arange(6.0).view(6, 1, 1, 1), torch.zeros(6, 1, 1, dtype=torch.int64), None)

    def batches(shard, size):
        generator = torch.Generator().manual_seed(5)
        return [b.images.flatten().tolist() for b in data.batches(size, generator, torch.device("cpu"), shard)]

    single = batches(SINGLE_PROCESS, 4)
    rank0, rank1 = batches(Shard(0, 2), 2), batches(Shard(1, 2), 2)
    assert [sorted(a + b) for a, b in zip(rank0, rank1)] == [sorted(b) for b in single]


@pytest.mark.parametrize(("rank", "world_size", "local_rank"), [(2, 2, 0), (-1, 2, 0), (0, 0, 0), (0, 2, -1)])
def test_bad_shard_is_refused(rank, world_size, local_rank):
    with pytest.raises(ValueError, match="world"):
        Shard(rank, world_size, local_rank)


def test_shard_roles():
    assert (SINGLE_PROCESS.is_main, SINGLE_PROCESS.is_distributed) == (True, False)
    assert (Shard(1, 2).is_main, Shard(1, 2).is_distributed) == (False, True)


def test_more_gpus_than_available_is_a_user_error_unless_on_cpu():
    too_many = max(2, torch.cuda.device_count() + 1)
    for device in (DeviceChoice.AUTO, DeviceChoice.CUDA):
        with pytest.raises(CovidalError, match=rf"--gpus {too_many} needs .* --device cpu --gpus {too_many}"):
            check_gpus(too_many, device)
    check_gpus(too_many, DeviceChoice.CPU)  # N CPU processes need no GPU
    check_gpus(1, DeviceChoice.AUTO)  # one process: resolve_device decides, as before
    with pytest.raises(CovidalError, match="at least 1"):
        check_gpus(0, DeviceChoice.CPU)


def test_torchrun_command_is_standalone_with_one_process_per_gpu():
    assert torchrun_command(3, "pkg.worker", ["{}"]) == [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node=3",
        "-m",
        "pkg.worker",
        "{}",
    ]


def test_mean_over_one_rank_is_the_values_themselves():
    assert mean_over_ranks([1.5, 2.0], SINGLE_PROCESS, torch.device("cpu")) == [1.5, 2.0]
