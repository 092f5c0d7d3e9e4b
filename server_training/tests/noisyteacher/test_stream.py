"""Batches of patches that cycle through every volume before any repeats."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from covidal.data.volume import Volume
from covidal.noisyteacher.stream import BatchStream
from covidal.volumes.patches import PatchConfig, PatchSampler
from covidal.volumes.preprocess import PreparedCase


def _case(name: str, labelled: bool = True) -> PreparedCase:
    image = np.random.default_rng(len(name)).random((6, 10, 12)).astype(np.float32)
    label = (image > 0.7).astype(np.uint8) if labelled else None
    grid = Volume(image)
    return PreparedCase(name=name, image=image, label=label, grid=grid, source=grid)


def _stream(cases, batch_size: int, seed: int = 0) -> BatchStream:
    return BatchStream(cases, batch_size, PatchSampler(PatchConfig(size=(4, 8, 8)), seed=seed), seed=seed)


@pytest.mark.parametrize(("cases", "batch_size"), [(5, 2), (3, 3), (2, 4), (7, 1)])
def test_every_case_is_used_once_per_round(cases, batch_size):
    stream = _stream([_case(f"c{i}") for i in range(cases)], batch_size)
    names = [name for _ in range(cases * 3) for name in stream.next().names]
    for start in range(0, len(names) - cases + 1, cases):  # any aligned window of one round holds every case once
        assert Counter(names[start : start + cases]) == Counter(f"c{i}" for i in range(cases))


def test_batches_have_the_patch_shape_and_come_from_the_named_case():
    cases = [_case("a"), _case("bb")]
    batch = _stream(cases, batch_size=2).next()
    assert batch.images.shape == (2, 1, 4, 8, 8) and batch.labels.shape == (2, 4, 8, 8)
    assert str(batch.images.dtype) == "torch.float32" and str(batch.labels.dtype) == "torch.int64"
    assert sorted(batch.names) == ["a", "bb"]


def test_the_same_seed_gives_the_same_batches():
    cases = [_case(f"c{i}") for i in range(4)]
    first, second = _stream(cases, 3, seed=7), _stream(cases, 3, seed=7)
    for _ in range(3):
        a, b = first.next(), second.next()
        assert a.names == b.names and bool((a.images == b.images).all())


@pytest.mark.parametrize(
    ("cases", "batch_size", "message"),
    [
        ([], 2, "at least one case"),
        ([_case("a", labelled=False)], 2, "need labels.*a"),
        ([_case("a")], 0, "at least 1"),
    ],
)
def test_bad_streams_are_refused(cases, batch_size, message):
    with pytest.raises(ValueError, match=message):
        _stream(cases, batch_size)
