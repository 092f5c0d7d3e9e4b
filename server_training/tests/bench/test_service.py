"""The service benchmark's pieces: percentiles by hand, the synthetic CT, bad configurations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from covidal.bench.service import ServiceBenchConfig, percentile, write_synthetic_ct
from covidal.errors import CovidalError


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([5.0], 99, 5.0),
        ([1.0, 2.0, 3.0, 4.0], 50, 2.5),
        (list(map(float, range(101))), 99, 99.0),
        ([10.0, 0.0], 99, 9.9),  # order does not matter; linear between the two order statistics
    ],
)
def test_percentile_by_hand(values, q, expected):
    assert percentile(values, q) == pytest.approx(expected)


def test_synthetic_ct_has_air_body_and_lungs(tmp_path):
    array = sitk.GetArrayFromImage(sitk.ReadImage(str(write_synthetic_ct(tmp_path / "ct.nrrd"))))
    assert array.shape == (64, 256, 256) and array.dtype == np.int16
    assert abs(float(array[:, 0, 0].mean()) + 1000) < 5  # corner: air
    assert abs(float(array[:, 128, 77].mean()) + 850) < 5  # left lung centre
    assert abs(float(array[:, 128, 128].mean()) - 40) < 5  # mediastinum


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"clients": 0}, "clients"),
        ({"requests": 10_001}, "at most 10000"),
        ({"batch": True}, "batch"),
        ({"volume": Path("/no/such/ct.nrrd")}, "does not exist"),
    ],
)
def test_bad_config_is_a_clear_error(changes, words):
    with pytest.raises(CovidalError, match=words):
        ServiceBenchConfig(**changes)
