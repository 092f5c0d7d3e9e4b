import numpy as np
import pytest

from covidal.activelearning.simulation.pool import Pool, slice_key
from covidal.data.slices import SliceRecord
from covidal.errors import CovidalError


def record(stem: str, shape=(20, 30), mask=True) -> SliceRecord:
    image = np.random.default_rng(int(stem)).random(shape, dtype=np.float32)
    return SliceRecord(stem, image, np.zeros(shape, np.uint8) if mask else None, stem, None)


def test_builds_inputs_in_order_and_maps_keys():
    records = [record("3"), record("1", shape=(25, 17)), record("2")]
    pool = Pool.build(records, 32)
    assert pool.images.shape == (3, 1, 32, 32)
    assert pool.keys == [("3", "3"), ("1", "1"), ("2", "2")]
    assert pool.shapes[("1", "1")] == (25, 17)
    assert pool.index_of([("2", "2"), ("3", "3")]) == [2, 0]
    assert slice_key(records[1]) == ("1", "1") and len(pool) == 3


@pytest.mark.parametrize(
    ("records", "message"),
    [([], "no slices"), ([record("1"), record("1")], "twice"), ([record("1"), record("2", mask=False)], "masks")],
)
def test_rejects_bad_pools(records, message):
    with pytest.raises(CovidalError, match=message):
        Pool.build(records, 32)
