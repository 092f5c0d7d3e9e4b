"""The benchmark's fixed split (by numeric stem) and its Markdown table."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from covidal.bench.losses import markdown_table, split_for_bench
from covidal.data.slices import SliceRecord
from covidal.errors import CovidalError


def records(ids) -> list[SliceRecord]:
    return [SliceRecord(i, np.zeros((2, 2), np.float32), np.zeros((2, 2), np.uint8), i, None) for i in ids]


def shuffled_numbers(count: int) -> list[SliceRecord]:
    ids = [str(n) for n in range(1, count + 1)]
    random.Random(0).shuffle(ids)
    return records(ids)


def ids(part) -> list[str]:
    return [r.slice_id for r in part]


@pytest.mark.parametrize(
    ("count", "val_count", "test_count", "val", "train", "test"),
    [
        (12, 2, 3, ["1", "2"], ["3", "4", "5", "6", "7", "8", "9"], ["10", "11", "12"]),
        (3, 1, 1, ["1"], ["2"], ["3"]),
        (5, 0, 2, [], ["1", "2", "3"], ["4", "5"]),
        (5, 2, 0, ["1", "2"], ["3", "4", "5"], []),
    ],
)
def test_split_counts_and_natural_order(count, val_count, test_count, val, train, test):
    split = split_for_bench(shuffled_numbers(count), val_count, test_count)
    assert (ids(split.val), ids(split.train), ids(split.test)) == (val, train, test)


def test_volume_slice_ids_sort_numerically():
    split = split_for_bench(records(["ct:10", "ct:2", "ct:1", "ct:20", "ct:3"]), 1, 1)
    assert (ids(split.val), ids(split.train), ids(split.test)) == (["ct:1"], ["ct:2", "ct:3", "ct:10"], ["ct:20"])


@pytest.mark.parametrize(("count", "val_count", "test_count"), [(5, 3, 2), (5, 5, 0), (5, 0, 5), (2, 4, 4), (0, 0, 0)])
def test_too_many_held_out_slices(count, val_count, test_count):
    with pytest.raises(CovidalError, match=f"{count} slices cannot hold"):
        split_for_bench(shuffled_numbers(count), val_count, test_count)


def test_markdown_table_one_row_per_loss():
    row = {
        "loss": "point",
        "dice": 0.5,
        "iou": 1 / 3,
        "ppv": math.nan,
        "sensitivity": 0.25,
        "specificity": 1.0,
        "best_step": 7,
        "val_dice": 0.4567,
        "seconds": 12.4,
    }
    lines = markdown_table([row, {**row, "loss": "full"}]).splitlines()
    assert len(lines) == 4
    assert lines[0].count("|") == lines[1].count("|") == lines[2].count("|") == 10
    assert lines[2] == "| point | 0.500 | 0.333 | nan | 0.250 | 1.000 | 7 | 0.457 | 12 |"
    assert lines[3].startswith("| full |")
