"""The service cache: hits and misses, eviction by the byte budget, models reloaded when a job publishes a new
file, and many threads at once."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from covidal.data.volume import Volume
from covidal.service.cache import ByteBudgetCache, FileStamp, ServiceCache, VolumeKey
from covidal.service.jobs.progress import publish_model


class CountingLoader:
    """``loader(key)()`` makes a fresh ``[size]`` uint8 array and counts the loads of each key."""

    def __init__(self, sizes: dict[str, int], delay: float = 0.0) -> None:
        self.sizes, self.delay = sizes, delay
        self.loads: dict[str, int] = {}
        self._lock = threading.Lock()

    def __call__(self, key: str):
        def load() -> np.ndarray:
            with self._lock:
                self.loads[key] = self.loads.get(key, 0) + 1
            time.sleep(self.delay)
            return np.zeros(self.sizes[key], dtype=np.uint8)

        return load


def nbytes(array: np.ndarray) -> int:
    return array.nbytes


def test_a_hit_returns_the_kept_value_without_loading():
    cache, loader = ByteBudgetCache(1000), CountingLoader({"a": 10, "b": 20})
    first = cache.get_or_load("a", loader("a"), nbytes)
    assert cache.get_or_load("a", loader("a"), nbytes) is first
    cache.get_or_load("b", loader("b"), nbytes)
    assert loader.loads == {"a": 1, "b": 1}
    assert cache.nbytes == 30 and cache.keys() == ["a", "b"]


def test_the_least_recently_used_entries_go_first_when_over_budget():
    cache, loader = ByteBudgetCache(100), CountingLoader({"a": 40, "b": 40, "c": 40, "d": 90})
    for key in ("a", "b"):
        cache.get_or_load(key, loader(key), nbytes)
    cache.get_or_load("a", loader("a"), nbytes)  # a is now used more recently than b
    cache.get_or_load("c", loader("c"), nbytes)
    assert cache.keys() == ["a", "c"] and cache.nbytes == 80
    cache.get_or_load("b", loader("b"), nbytes)  # evicted above: loaded again, evicting a
    assert loader.loads == {"a": 1, "b": 2, "c": 1}
    assert cache.keys() == ["c", "b"]
    cache.get_or_load("d", loader("d"), nbytes)  # 90 bytes: everything else goes
    assert cache.keys() == ["d"] and cache.nbytes == 90


def test_a_value_over_the_budget_and_a_budget_of_zero_keep_nothing():
    loader = CountingLoader({"big": 101, "small": 1})
    cache = ByteBudgetCache(100)
    for _ in range(2):
        cache.get_or_load("big", loader("big"), nbytes)
    assert loader.loads == {"big": 2} and cache.keys() == [] and cache.nbytes == 0
    off = ByteBudgetCache(0)
    for _ in range(2):
        off.get_or_load("small", loader("small"), nbytes)
    assert loader.loads["small"] == 2 and off.keys() == []


def test_a_failed_load_keeps_nothing():
    cache = ByteBudgetCache(100)

    def failing() -> np.ndarray:
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        cache.get_or_load("a", failing, nbytes)
    assert cache.keys() == []
    assert cache.get_or_load("a", lambda: np.zeros(3), nbytes).tolist() == [0, 0, 0]


@pytest.mark.parametrize("budget", [-1, 1.5, True])
def test_a_bad_budget_is_refused(budget):
    with pytest.raises(ValueError, match="integer >= 0"):
        ByteBudgetCache(budget)


def test_concurrent_requests_for_one_key_load_it_once():
    cache, loader = ByteBudgetCache(1000), CountingLoader({"a": 10}, delay=0.2)
    with ThreadPoolExecutor(8) as pool:
        values = list(pool.map(lambda _: cache.get_or_load("a", loader("a"), nbytes), range(8)))
    assert loader.loads == {"a": 1}
    assert all(value is values[0] for value in values)


def test_many_threads_over_a_small_budget_keep_the_books_right():
    sizes = {f"k{n}": 10 + n for n in range(12)}
    cache, loader = ByteBudgetCache(60), CountingLoader(sizes)
    order = np.random.default_rng(0).choice(sorted(sizes), 2000)

    def use(key: str) -> int:
        return len(cache.get_or_load(key, loader(key), nbytes))

    with ThreadPoolExecutor(8) as pool:
        lengths = list(pool.map(use, order))
    assert lengths == [sizes[key] for key in order]  # every caller got its own key's value
    kept = cache.keys()
    assert len(set(kept)) == len(kept)
    assert cache.nbytes == sum(sizes[key] for key in kept) <= 60


def test_a_volume_is_kept_by_its_content_and_made_read_only():
    cache = ServiceCache(10**6)
    reads = []

    def read() -> Volume:
        reads.append(1)
        return Volume(np.zeros((2, 3, 4), dtype=np.int16))

    first = cache.volume(VolumeKey(1, "ab"), read)
    assert cache.volume(VolumeKey(1, "ab"), read) is first and len(reads) == 1
    assert not first.array.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        first.array[0, 0, 0] = 1
    cache.volume(VolumeKey(1, "cd"), read)  # other content under the same id: another entry
    assert len(reads) == 2 and cache.arrays.nbytes == 2 * first.array.nbytes


def test_a_newly_published_model_file_is_loaded_again(tmp_path):
    current, loads = tmp_path / "current" / "model.pt", []

    def load(path):
        loads.append(path)
        return path.read_bytes()

    publish_model(write(tmp_path / "job1.pt", b"first model"), current)
    cache = ServiceCache(10**6)
    assert cache.model(current, load) == b"first model"
    assert cache.model(current, load) == b"first model" and len(loads) == 1
    publish_model(write(tmp_path / "job2.pt", b"second model"), current)  # the job runner's atomic replace
    assert cache.model(current, load) == b"second model"
    assert cache.model(current, load) == b"second model" and len(loads) == 2


def test_a_rewritten_model_file_is_loaded_again(tmp_path):
    path = write(tmp_path / "model.pt", b"first")
    cache = ServiceCache(10**6)
    assert cache.model(path, lambda p: p.read_bytes()) == b"first"
    stamp = FileStamp.of(path)
    write(path, b"second, longer")  # in place: same inode, another size and mtime
    assert FileStamp.of(path) != stamp
    assert cache.model(path, lambda p: p.read_bytes()) == b"second, longer"


def test_a_missing_model_file_is_the_loaders_error(tmp_path):
    def load(path):
        raise FileNotFoundError(f"no model at {path.name}")

    with pytest.raises(FileNotFoundError, match="no model at gone.pt"):
        ServiceCache(10**6).model(tmp_path / "gone.pt", load)


def test_a_cache_of_zero_bytes_reads_everything_every_time(tmp_path):
    path, loads = write(tmp_path / "model.pt", b"model"), []
    cache = ServiceCache(0)
    for _ in range(2):
        cache.model(path, lambda p: loads.append(p) or p.read_bytes())
        cache.volume(VolumeKey(1, "ab"), lambda: loads.append("volume") or Volume(np.zeros((1, 2, 2))))
    assert len(loads) == 4 and not cache.enabled and cache.arrays.keys() == []


def test_concurrent_cycles_load_a_model_once(tmp_path):
    path, loads = write(tmp_path / "model.pt", b"model"), []

    def slow_load(p):
        loads.append(p)
        time.sleep(0.2)
        return object()

    cache = ServiceCache(10**6)
    with ThreadPoolExecutor(6) as pool:
        models = list(pool.map(lambda _: cache.model(path, slow_load), range(6)))
    assert len(loads) == 1 and all(model is models[0] for model in models)


def write(path, content: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path
