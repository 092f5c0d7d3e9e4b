"""Time from "start cycle" to suggestions ready, with a warm model, for one CT of many slices.

A real ``covidal serve`` runs in a subprocess on the device asked for. The benchmark
writes a synthetic CT (air, body and lungs in HU), uploads it to a new ``unet`` project,
opens a first cycle (lung-fraction regions: the project has no model yet), answers its
regions, and runs a short training job, which gives the project a current model. Then
it times what an annotator waits for when starting a cycle: ``POST /cycles`` (the
service reads the CT, scores every region of every slice by MC dropout with the model
and stores the best ``regions``) followed by the ``GET .../suggestions`` lease of them
all. The first timed call is *cold*: the service process runs a network for the first
time (on a GPU that includes creating its CUDA context). The ``repeats`` calls after it
are *warm*: the service's cache (:class:`covidal.service.cache.ServiceCache`) then holds the decoded
CT, its network input and the model, unless ``cache`` is off (``covidal serve --cache-mb 0``): then
every cycle reads the CT and the model file and prepares the network input again.

The service reports no breakdown of a cycle, so the times are end to end, as the client
sees them; the first cycle's time (same reading and storing, lung-fraction scores instead
of the network) shows how much of a cycle is not the network.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from covidal.bench.service import box_centre, write_synthetic_ct
from covidal.client import BackendUnreachable, ClientError, CovidalClient
from covidal.errors import CovidalError
from covidal.regions.grid import RegionGrid
from covidal.service.defaults import CPU_DEFAULTS
from covidal.service.local import local_service
from covidal.service.project.layout import ProjectLayout
from covidal.service.schemas import MAX_CYCLE_REGIONS
from covidal.validation import check_int

GOAL_S = 3.0  # the goal for 512 x 512 x 300 on one H100 with a warm model
LEASE_LIMIT = 1000  # the most suggestions the service leases per request
ANNOTATOR = "bench-cycle"
JOB_POLL_S = 0.5
JOB_TIMEOUT_S = 3600.0
SERVER_START_TIMEOUT_S = 300.0  # importing torch on a busy machine can be slow


@dataclass(frozen=True)
class CycleBenchConfig:
    """What to run.

    Attributes:
        slices: axial slices of the synthetic CT (K).
        size: its in-plane size ``(I, J)`` in voxels.
        regions: suggestions per cycle.
        grid_k: regions per slice, a perfect square.
        mc_samples: MC-dropout samples per slice when scoring.
        device: ``"cpu"`` or ``"cuda"``, where the service runs its models.
        train_steps: steps of the training job that gives the project its model.
        repeats: warm cycles timed after the cold one.
        image_size: the model's square input grid (a multiple of 32).
        width: the U-Net's base channel count.
        seed: seeds the synthetic CT and the training job.
        cache: False runs the service with its cache off (``--cache-mb 0``), for a same-run comparison.

    Raises:
        CovidalError: a count below 1, a grid that is not a perfect square or does not fit the slices,
            more regions than a cycle or a lease holds, a pool too small for two cycles, an unknown device.
    """

    slices: int = 300
    size: tuple[int, int] = (512, 512)
    regions: int = CPU_DEFAULTS.regions_per_cycle
    grid_k: int = CPU_DEFAULTS.grid_k
    mc_samples: int = CPU_DEFAULTS.mc_samples
    device: str = "cpu"
    train_steps: int = 2
    repeats: int = 3
    image_size: int = CPU_DEFAULTS.image_size
    width: int = CPU_DEFAULTS.width
    seed: int = 0
    cache: bool = True

    def __post_init__(self) -> None:
        for name in ("slices", "regions", "grid_k", "mc_samples", "train_steps", "repeats", "image_size", "width"):
            check_int(f"bench-cycle: {name}", getattr(self, name), minimum=1)
        check_int("bench-cycle: seed", self.seed, minimum=0)
        if not isinstance(self.cache, bool):
            raise CovidalError(f"bench-cycle: cache must be True or False, got {self.cache!r}")
        if len(self.size) != 2:
            raise CovidalError(f"bench-cycle: size takes two numbers, I and J, got {self.size!r}")
        for value in self.size:
            check_int("bench-cycle: size", value, minimum=1)
        if self.device not in ("cpu", "cuda"):
            raise CovidalError(f"bench-cycle: device must be 'cpu' or 'cuda', got {self.device!r}")
        if self.image_size % 32:
            raise CovidalError(f"bench-cycle: --image-size must be a multiple of 32, got {self.image_size}")
        self._check_regions()

    def _check_regions(self) -> None:
        try:
            side = RegionGrid(self.grid_k).side
        except ValueError as error:
            raise CovidalError(f"bench-cycle: --grid-k: {error}") from None
        if min(self.size) < side:
            raise CovidalError(
                f"bench-cycle: --size {self.size[0]} {self.size[1]} is too small for a grid of "
                f"{side} x {side} regions per slice"
            )
        if self.regions > min(MAX_CYCLE_REGIONS, LEASE_LIMIT):
            raise CovidalError(
                f"bench-cycle: --regions is at most {min(MAX_CYCLE_REGIONS, LEASE_LIMIT)}, got {self.regions}"
            )
        # The first cycle's regions are answered, and answered regions are never suggested again.
        if self.slices * self.grid_k < 2 * self.regions:
            raise CovidalError(
                f"bench-cycle: {self.slices} slices of {self.grid_k} regions are fewer than two "
                f"cycles of {self.regions} regions: raise --slices or --grid-k, or lower --regions"
            )

    @property
    def shape(self) -> tuple[int, int, int]:
        """The synthetic CT's array shape ``[K, J, I]``."""
        return self.slices, self.size[1], self.size[0]


@dataclass(frozen=True)
class CycleCall:
    """One timed "start cycle, then fetch its suggestions".

    Attributes:
        create_s: ``POST /cycles``: read the CT, score the pool, store the cycle.
        lease_s: ``GET .../suggestions`` of all the cycle's regions.
        suggestions: regions the cycle suggested (and the lease returned).
    """

    create_s: float
    lease_s: float
    suggestions: int

    @property
    def total_s(self) -> float:
        return self.create_s + self.lease_s


@dataclass(frozen=True)
class CycleBenchResult:
    """Figures of one run, in seconds.

    Attributes:
        config: what was run.
        dims: the uploaded CT's ``(i, j, k)`` voxels, as the service reports them.
        write_ct_s, upload_s: writing the synthetic CT (NRRD, gzip) and uploading it.
        initial_cycle_s: the first cycle (lung-fraction scores, no model), created and leased.
        train_s: the training job, from its request until it was done.
        cold: the first cycle scored by the model.
        warm: the ``repeats`` cycles after it.
    """

    config: CycleBenchConfig
    dims: tuple[int, int, int]
    write_ct_s: float
    upload_s: float
    initial_cycle_s: float
    train_s: float
    cold: CycleCall
    warm: tuple[CycleCall, ...]

    @property
    def warm_s(self) -> list[float]:
        return [call.total_s for call in self.warm]

    @property
    def min_s(self) -> float:
        return min(self.warm_s)

    @property
    def median_s(self) -> float:
        return statistics.median(self.warm_s)

    def to_dict(self) -> dict:
        """The figures as JSON-ready values; ``shape`` is ``(i, j, k)``."""
        config = self.config
        return {
            "slices": config.slices,
            "shape": list(self.dims),
            "device": config.device,
            "regions": config.regions,
            "grid_k": config.grid_k,
            "mc_samples": config.mc_samples,
            "image_size": config.image_size,
            "width": config.width,
            "train_steps": config.train_steps,
            "repeats": config.repeats,
            "write_ct_s": self.write_ct_s,
            "upload_s": self.upload_s,
            "initial_cycle_s": self.initial_cycle_s,
            "train_s": self.train_s,
            "cold_s": self.cold.total_s,
            "warm_s": self.warm_s,
            "min_s": self.min_s,
            "median_s": self.median_s,
            "goal_s": GOAL_S,
            "cache": config.cache,
            "calls": [
                {"kind": kind, **asdict(call), "total_s": call.total_s}
                for kind, call in [("cold", self.cold), *(("warm", call) for call in self.warm)]
            ],
        }


def bench_cycle(config: CycleBenchConfig, out: Path | None = None) -> CycleBenchResult:
    """Run the benchmark of ``config`` against a fresh server.

    Args:
        out: keeps the synthetic CT, the service's project folder and its log; None: a temporary folder.

    Raises:
        CovidalError: the server failed to start or refused a request, the training job failed,
            or a cycle suggested fewer regions than asked for.
    """
    with _work_folder(out) as folder:
        start = time.perf_counter()
        volume = write_synthetic_ct(folder / "synthetic-ct.nrrd", config.seed, config.shape)
        write_ct_s = time.perf_counter() - start
        with (
            local_service(
                folder / "project",
                folder / "server.log",
                config.device,
                start_timeout=SERVER_START_TIMEOUT_S,
                serve_options=() if config.cache else ("--cache-mb", "0"),
            ) as client,
            _request_failures_as_errors(
                f"see {folder / 'server.log'}" if out else "rerun with --out DIR to keep the server's log"
            ),
        ):
            project_id = _create_project(client, config)
            start = time.perf_counter()
            uploaded, _ = client.upload_volume(project_id, volume)
            upload_s = time.perf_counter() - start
            initial = _timed_cycle(client, project_id, config.regions)
            _answer_all(client, project_id, initial.suggestions)
            train_s = _train(client, project_id, config.train_steps)
            if not ProjectLayout(folder / "project").current_model(project_id).is_file():
                raise CovidalError("bench-cycle: the training job finished but the project has no current model")
            cold = _timed_cycle(client, project_id, config.regions).call
            warm = tuple(_timed_cycle(client, project_id, config.regions).call for _ in range(config.repeats))
    return CycleBenchResult(
        config, tuple(uploaded["dims"]), write_ct_s, upload_s, initial.call.total_s, train_s, cold, warm
    )


def summary(result: CycleBenchResult) -> str:
    """The printed report: what ran, the set-up times, one row per timed cycle, min and median of the warm ones."""
    config = result.config
    di, dj, dk = result.dims
    rows = [("cold (first use of the model)", result.cold)] + [
        (f"warm {n}", call) for n, call in enumerate(result.warm, 1)
    ]
    return "\n".join(
        [
            (
                f"cycle: {di}x{dj}x{dk} (i, j, k) CT, {config.grid_k} regions per slice, {config.regions} suggestions, "
                f"{config.mc_samples} MC-dropout samples, U-Net width {config.width} on a {config.image_size} px grid, "
                f"device {config.device}, service cache {'on' if config.cache else 'off (--cache-mb 0)'}"
            ),
            (
                f"setup: write CT {result.write_ct_s:.2f} s, upload {result.upload_s:.2f} s, first cycle without a model "
                f"(CT prior) {result.initial_cycle_s:.2f} s, training job ({_count(config.train_steps, 'step')}) "
                f"{result.train_s:.2f} s"
            ),
            "",
            "| call | start cycle (s) | get suggestions (s) | total (s) |",
            "|---|---:|---:|---:|",
            *(f"| {name} | {call.create_s:.2f} | {call.lease_s:.3f} | {call.total_s:.2f} |" for name, call in rows),
            "",
            (
                f"warm: min {result.min_s:.2f} s, median {result.median_s:.2f} s over {_count(len(result.warm), 'cycle')} "
                f"(goal: under {GOAL_S:g} s for 512x512x300 on one H100)"
            ),
        ]
    )


@dataclass(frozen=True)
class _TimedCycle:
    call: CycleCall
    suggestions: list[dict]


def _create_project(client: CovidalClient, config: CycleBenchConfig) -> int:
    project = client.create_project(
        "bench-cycle",
        model_kind="unet",
        grid_k=config.grid_k,
        strategy=CPU_DEFAULTS.strategy,
        mc_samples=config.mc_samples,
        loss=CPU_DEFAULTS.loss,
        settings={"image_size": config.image_size, "width": config.width, "seed": config.seed},
    )
    return project["id"]


def _timed_cycle(client: CovidalClient, project_id: int, regions: int) -> _TimedCycle:
    """Open a cycle of ``regions`` suggestions and lease them all, timing both requests.

    Raises:
        CovidalError: the cycle or the lease holds fewer than ``regions`` suggestions.
    """
    start = time.perf_counter()
    cycle = client.create_cycle(project_id, count=regions)
    create_s = time.perf_counter() - start
    start = time.perf_counter()
    leased = client.lease_suggestions(project_id, cycle["id"], ANNOTATOR, limit=regions)
    lease_s = time.perf_counter() - start
    if len(cycle["suggestions"]) != regions or len(leased) != regions:
        raise CovidalError(
            f"bench-cycle: cycle {cycle['number']} suggested {len(cycle['suggestions'])} and leased "
            f"{len(leased)} regions, not {regions}"
        )
    return _TimedCycle(CycleCall(create_s, lease_s, regions), leased)


def _answer_all(client: CovidalClient, project_id: int, suggestions: list[dict]) -> None:
    """Answer every region so training has labels: every second one a click at its centre, the others background."""
    for number, suggestion in enumerate(suggestions):
        points = [box_centre(suggestion)] if number % 2 else []
        answer = "infection" if points else "background"
        client.submit_annotation(
            project_id, suggestion["id"], annotator=ANNOTATOR, answer=answer, points=points, effort_seconds=1.0
        )


def _train(client: CovidalClient, project_id: int, steps: int) -> float:
    """Run a training job of ``steps`` steps to its end: the seconds it took.

    Raises:
        CovidalError: the job did not end as done (with its log's tail), or not within :data:`JOB_TIMEOUT_S`.
    """
    start = time.perf_counter()
    job = client.start_training(project_id, steps=steps)
    while job["status"] not in ("done", "failed", "cancelled", "interrupted"):
        if time.perf_counter() - start > JOB_TIMEOUT_S:
            raise CovidalError(f"bench-cycle: training job {job['id']} did not finish within {JOB_TIMEOUT_S:g} s")
        time.sleep(JOB_POLL_S)
        job = client.get_job(project_id, job["id"])
    if job["status"] != "done":
        log_tail = client.job_log(project_id, job["id"]).strip().splitlines()[-1:] or ["(empty log)"]
        raise CovidalError(
            f"bench-cycle: training job {job['id']} {job['status']}: {job.get('error')} (its log ends: {log_tail[0]})"
        )
    return time.perf_counter() - start


@contextmanager
def _work_folder(out: Path | None) -> Iterator[Path]:
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        yield out
        return
    with tempfile.TemporaryDirectory(prefix="covidal-bench-cycle-") as folder:
        yield Path(folder)


@contextmanager
def _request_failures_as_errors(log_hint: str) -> Iterator[None]:
    """A refused or unanswered request as a one-line CovidalError ending with ``log_hint``."""
    try:
        yield
    except ClientError as error:
        raise CovidalError(f"bench-cycle: the server refused a request: {error} ({log_hint})") from None
    except BackendUnreachable as error:
        raise CovidalError(f"bench-cycle: {error} ({log_hint})") from None


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")
