"""Service settings: the cache size is a non-negative number of bytes, 2 GiB unless given."""

from __future__ import annotations

import pytest

from covidal.service.settings import DEFAULT_CACHE_BYTES, ServiceSettings


def test_the_cache_holds_2_gib_by_default_and_0_turns_it_off(tmp_path):
    assert ServiceSettings(tmp_path).cache_bytes == DEFAULT_CACHE_BYTES == 2 * 1024**3
    assert ServiceSettings(tmp_path, cache_bytes=0).cache_bytes == 0


@pytest.mark.parametrize("cache_bytes", [-1, 1.5, True, "1"])
def test_a_bad_cache_size_is_refused(tmp_path, cache_bytes):
    with pytest.raises(ValueError, match="cache_bytes must be an integer >= 0"):
        ServiceSettings(tmp_path, cache_bytes=cache_bytes)
