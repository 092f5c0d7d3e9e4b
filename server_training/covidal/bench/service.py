"""Latency and throughput of ``covidal serve`` under concurrent annotators, measured in one run.

A real server runs in a subprocess (``covidal serve`` on a free loopback port over a
temporary project folder), so the clients do not share its interpreter. The
benchmark uploads one volume, opens a cycle with one region per annotation to make,
then ``clients`` threads each lease batches of suggestions and answer every region
they get, through :class:`covidal.client.CovidalClient`. Latencies are those a client
sees (request sent to reply decoded); throughput counts both kinds of request over
the annotating phase's wall time.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from covidal.client import ClientError, CovidalClient
from covidal.errors import CovidalError
from covidal.service.local import local_service
from covidal.service.schemas import MAX_CYCLE_REGIONS
from covidal.validation import check_int

SYNTHETIC_SHAPE = (64, 256, 256)  # [K, J, I]


@dataclass(frozen=True)
class ServiceBenchConfig:
    """What to run.

    Attributes:
        clients: concurrent annotator threads.
        requests: annotations to submit in all (the cycle's region count; fewer if the volume has fewer regions).
        volume: a CT to upload (NRRD, NIfTI, a DICOM zip or folder); None: a synthetic int16 CT of
            :data:`SYNTHETIC_SHAPE`.
        grid_k: regions per slice of the benchmark's project.
        batch: suggestions leased per "get suggestions" request.
        seed: seeds the synthetic CT.

    Raises:
        CovidalError: a count below 1, more requests than a cycle can hold, a missing volume.
    """

    clients: int = 8
    requests: int = 2000
    volume: Path | None = None
    grid_k: int = 64
    batch: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("clients", "requests", "grid_k", "batch"):
            check_int(f"bench-service: {name}", getattr(self, name), minimum=1)
        if self.requests > MAX_CYCLE_REGIONS:
            raise CovidalError(
                f"bench-service: --requests is at most {MAX_CYCLE_REGIONS} (the regions of one cycle), "
                f"got {self.requests}"
            )
        if self.volume is not None and not Path(self.volume).exists():
            raise CovidalError(f"bench-service: --volume {self.volume} does not exist")


@dataclass(frozen=True)
class ServiceBenchResult:
    """Figures of one run; latencies in milliseconds, as the clients saw them."""

    clients: int
    annotations: int
    lease_requests: int
    volume_dims: tuple[int, int, int]  # (i, j, k)
    grid_k: int
    batch: int
    upload_s: float
    create_cycle_s: float
    suggestions_p50_ms: float
    suggestions_p99_ms: float
    submit_p50_ms: float
    submit_p99_ms: float
    wall_s: float
    requests_per_s: float


@dataclass
class _Timings:
    lock: threading.Lock
    lease_ms: list[float]
    submit_ms: list[float]
    errors: list[BaseException]


def bench_service(config: ServiceBenchConfig) -> ServiceBenchResult:
    """Run the benchmark of ``config`` against a fresh server; CovidalError if the server or an upload fails."""
    with tempfile.TemporaryDirectory(prefix="covidal-bench-service-") as folder:
        folder = Path(folder)
        volume = config.volume or write_synthetic_ct(folder / "synthetic-ct.nrrd", config.seed)
        # One thread per server unless told otherwise: the clients share the same cores.
        threads = {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        with (
            local_service(folder / "project", folder / "server.log", environment=threads) as client,
            _refusals_as_errors(),
        ):
            project = client.create_project(
                "bench", model_kind="unet", grid_k=config.grid_k, strategy="entropy", mc_samples=1, loss="point"
            )
            start = time.perf_counter()
            uploaded, _ = client.upload_volume(project["id"], volume)
            upload_s = time.perf_counter() - start
            start = time.perf_counter()
            cycle = client.create_cycle(project["id"], count=config.requests)
            create_cycle_s = time.perf_counter() - start
            annotations = len(cycle["suggestions"])
            timings, wall_s = _annotate(client.base_url, project["id"], cycle["id"], config, annotations)
    if timings.errors:
        raise CovidalError(f"bench-service: a client failed: {timings.errors[0]!r}")
    if len(timings.submit_ms) != annotations:
        raise CovidalError(f"bench-service: {len(timings.submit_ms)} of {annotations} annotations were accepted")
    requests = len(timings.lease_ms) + len(timings.submit_ms)
    return ServiceBenchResult(
        clients=config.clients,
        annotations=annotations,
        lease_requests=len(timings.lease_ms),
        volume_dims=tuple(uploaded["dims"]),
        grid_k=config.grid_k,
        batch=config.batch,
        upload_s=upload_s,
        create_cycle_s=create_cycle_s,
        suggestions_p50_ms=percentile(timings.lease_ms, 50),
        suggestions_p99_ms=percentile(timings.lease_ms, 99),
        submit_p50_ms=percentile(timings.submit_ms, 50),
        submit_p99_ms=percentile(timings.submit_ms, 99),
        wall_s=wall_s,
        requests_per_s=requests / wall_s,
    )


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile of ``values`` (linear interpolation between order statistics); ValueError if empty."""
    if not values:
        raise ValueError("no values to take a percentile of")
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def write_synthetic_ct(path: Path, seed: int = 0, shape: tuple[int, int, int] = SYNTHETIC_SHAPE) -> Path:
    """An int16 CT ``[K, J, I]`` = ``shape`` in HU: air around a soft-tissue body holding two lungs, plus noise.

    Noise is drawn slice by slice (the same values as one draw of the whole volume), so a
    300 x 512 x 512 CT needs no float copy of the whole volume.
    """
    k, j, i = shape
    rng = np.random.default_rng(seed)
    jj, ii = np.mgrid[0:j, 0:i] / np.array([j, i])[:, None, None]
    body = ((ii - 0.5) / 0.45) ** 2 + ((jj - 0.5) / 0.35) ** 2 <= 1
    lungs = (((ii - 0.3) / 0.15) ** 2 + ((jj - 0.5) / 0.25) ** 2 <= 1) | (
        ((ii - 0.7) / 0.15) ** 2 + ((jj - 0.5) / 0.25) ** 2 <= 1
    )
    slice_hu = np.where(lungs, -850, np.where(body, 40, -1000))
    ct = np.empty((k, j, i), dtype=np.int16)
    for index in range(k):
        ct[index] = (slice_hu + rng.normal(0, 20, (j, i))).astype(np.int16)
    image = sitk.GetImageFromArray(ct)
    image.SetSpacing((0.8, 0.8, 2.5))
    sitk.WriteImage(image, str(path), True)
    return path


@contextmanager
def _refusals_as_errors() -> Iterator[None]:
    """A setup request the server refused (e.g. --volume is not a readable CT) as CovidalError."""
    try:
        yield
    except ClientError as error:
        raise CovidalError(f"bench-service: the server refused a setup request: {error}") from None


def _annotate(
    base_url: str, project_id: int, cycle_id: int, config: ServiceBenchConfig, annotations: int
) -> tuple[_Timings, float]:
    """Run the client threads until every region is answered: their timings and the wall time (s)."""
    timings = _Timings(threading.Lock(), [], [], [])
    threads = [
        threading.Thread(
            target=_client_loop,
            daemon=True,
            args=(CovidalClient(base_url, timeout=60), project_id, cycle_id, f"annotator-{n}", config.batch, timings),
        )
        for n in range(config.clients)
    ]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return timings, time.perf_counter() - start


def _client_loop(
    client: CovidalClient, project_id: int, cycle_id: int, annotator: str, batch: int, timings: _Timings
) -> None:
    """Lease ``batch`` regions and answer each (an infection click at its centre) until none is left."""
    try:
        while True:
            start = time.perf_counter()
            leased = client.lease_suggestions(project_id, cycle_id, annotator, limit=batch)
            lease_ms = (time.perf_counter() - start) * 1000
            submit_ms = []
            for suggestion in leased:
                point = box_centre(suggestion)
                start = time.perf_counter()
                client.submit_annotation(
                    project_id,
                    suggestion["id"],
                    annotator=annotator,
                    answer="infection",
                    points=[point],
                    effort_seconds=1.0,
                )
                submit_ms.append((time.perf_counter() - start) * 1000)
            with timings.lock:
                timings.lease_ms.append(lease_ms)
                timings.submit_ms += submit_ms
            if not leased:
                return
    except Exception as error:  # noqa: BLE001 - reported by bench_service, not lost in the thread
        with timings.lock:
            timings.errors.append(error)


def summary(result: ServiceBenchResult) -> str:
    """The printed report: setup, p50/p99 per request kind, and throughput."""
    di, dj, dk = result.volume_dims
    return "\n".join(
        [
            (
                f"service: {result.clients} clients, {result.annotations} annotations on a {di}x{dj}x{dk} (i, j, k) "
                f"volume, grid {result.grid_k}, {result.batch} suggestions per lease"
            ),
            f"setup: upload {result.upload_s:.2f} s, create cycle {result.create_cycle_s:.2f} s",
            (
                f"get suggestions:   p50 {result.suggestions_p50_ms:.1f} ms, p99 {result.suggestions_p99_ms:.1f} ms "
                f"({result.lease_requests} requests)"
            ),
            (
                f"submit annotation: p50 {result.submit_p50_ms:.1f} ms, p99 {result.submit_p99_ms:.1f} ms "
                f"({result.annotations} requests)"
            ),
            (
                f"throughput: {result.requests_per_s:.0f} requests/s "
                f"({result.lease_requests + result.annotations} requests in {result.wall_s:.2f} s)"
            ),
        ]
    )


def box_centre(suggestion: dict) -> list[int]:
    """``[i, j, k]``: the voxel at the centre of a suggestion's box (as the API returns it), on its slice."""
    box = suggestion["box"]
    return [(box["i0"] + box["i1"]) // 2, (box["j0"] + box["j1"]) // 2, suggestion["k"]]
