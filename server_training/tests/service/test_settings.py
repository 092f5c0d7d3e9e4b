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


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_voxels", 0), ("max_concurrent_uploads", 0), ("decode_timeout_s", float("nan")), ("body_timeout_s", 0)],
)
def test_bad_upload_limits_are_refused(tmp_path, field, value):
    with pytest.raises(ValueError, match=field):
        ServiceSettings(tmp_path, **{field: value})


@pytest.mark.parametrize(
    ("given", "kept"),
    [("CT-Server.local", "ct-server.local"), ("::1", "[::1]"), ("[fe80::1]", "[fe80::1]"), ("10.0.0.5", "10.0.0.5")],
)
def test_allowed_hosts_are_kept_as_the_host_header_carries_them(tmp_path, given, kept):
    settings = ServiceSettings(tmp_path, allowed_hosts=(given,))
    assert settings.allowed_hosts == (kept,) and {kept, "127.0.0.1", "localhost", "[::1]"} == settings.hosts


@pytest.mark.parametrize("host", ["", "a b", "evil/x", "user@host", "[::1"])
def test_bad_host_names_are_refused(tmp_path, host):
    with pytest.raises(ValueError, match="host"):
        ServiceSettings(tmp_path, allowed_hosts=(host,))
