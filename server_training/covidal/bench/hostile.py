"""The whole hostile set against a real ``covidal serve`` on loopback, in one run (``covidal bench-hostile``).

Phases, on a server started for the run (a second one for the last phase):

1. **Hostile requests**: every known reproducer of :mod:`covidal.bench.hostile_inputs` (reader crashes, server
   files read through ``data file``, bodies decoding past the limits, NaN voxels), ``mutations`` random damages
   of valid files, and edge requests (a foreign ``Host`` or ``Origin``, form uploads, NaN in JSON). Counted:
   server crashes (the process gone; it is started again to go on), 5xx answers, answers other than the one
   expected, refusals that are not one line, and files or rows the refusals left (checked after the phase).
2. **Stalls**: ``stalled`` uploads send 4 KiB of their body and stop; meanwhile ordinary requests are sent.
   Counted: how many of them were answered (and the slowest), how many uploads were held or refused (503).
3. **Normal uploads**: real and synthetic volumes, each uploaded ``repeats`` times to new projects. With a
   ``baseline`` (the ``server_training`` folder of another checkout, e.g. the commit before the hardening),
   a server of that checkout runs beside this one and each upload goes to both, alternately first: the change
   is the median of the pairs' ratios. Without one, the same run times, in this process, ``3 * repeats``
   times each and side by side, the in-process read the service did before (``read_stored_volume``) and the
   safe read it does now (``read_upload_safely``: header check, child decode); the safe read's extra time is
   the median of the pairs' differences, and the upload time before is estimated as the median upload time
   less that extra time (an estimate: the direct read reuses memory it has just freed, which a service that
   keeps its volumes cannot).
4. **kill -9**: a client answers suggestions while the server is killed (SIGKILL) ``kills`` times; after each
   restart on the same folder the acknowledged answers are looked up. Counted: acknowledged and lost.

Peak memory: the service process's peak resident size (``VmHWM``) after phases 1-2 and at the end, and the
peak of the service with its children (the decoders' fork server and decoders), sampled every 50 ms. Linux.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import SimpleITK as sitk

from covidal.bench.hostile_inputs import (
    HostileUpload,
    bomb_uploads,
    crash_uploads,
    file_reading_uploads,
    mutated_uploads,
    nan_uploads,
)
from covidal.bench.kill import Submitter, lost_answers
from covidal.bench.raw_http import raw_request, stalled_upload
from covidal.bench.service import write_synthetic_ct
from covidal.client import CovidalClient, zip_dicom_folder
from covidal.errors import CovidalError
from covidal.service.local import LocalService, running_service
from covidal.service.settings import DEFAULT_DECODE_TIMEOUT_S, DEFAULT_MAX_VOXELS
from covidal.service.store.records import VolumeFormat
from covidal.service.store.store import Store
from covidal.service.uploads.limits import DecodeLimits
from covidal.service.uploads.sandbox import read_upload_safely, start_decoder
from covidal.service.volumes import read_stored_volume

OCTET_STREAM = {"Content-Type": "application/octet-stream"}
STALL_PROBES = 20
READ_REPEATS = 3  # in-process reads per upload: cheaper, and their small difference needs more of them
SAMPLE_EVERY_S = 0.05
LIMITS = DecodeLimits(DEFAULT_MAX_VOXELS, DEFAULT_DECODE_TIMEOUT_S)  # covidal serve's defaults, as run here


@dataclass(frozen=True)
class HostileBenchConfig:
    """What to run.

    Attributes:
        mutations: random damages of valid files to send (phase 1).
        stalled: uploads that stall (phase 2).
        repeats: uploads (and in-process reads) of each normal file (phase 3); 0 skips the phase.
        slices: axial slices of the synthetic 512 x 512 CT of phase 3.
        dicom: a folder holding one real DICOM series for phase 3 (None: none).
        demo: whether phase 3 uploads the demo CT (NRRD) and its source CT (NIfTI), made or fetched if missing.
        kills: times the server is killed during submits (phase 4).
        seed: seeds the mutations and the kill points.
        baseline: the ``server_training`` folder of another checkout whose service phase 3 compares upload
            times with (None: the in-process estimate).

    Raises:
        CovidalError: a negative count, a ``dicom`` folder that does not exist, a ``baseline`` without a
            ``covidal`` package.
    """

    mutations: int = 1000
    stalled: int = 40
    repeats: int = 3
    slices: int = 120
    dicom: Path | None = None
    demo: bool = True
    kills: int = 3
    seed: int = 0
    baseline: Path | None = None

    def __post_init__(self) -> None:
        for name in ("mutations", "stalled", "repeats", "slices", "kills", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise CovidalError(f"bench-hostile: {name} must be a non-negative integer, got {value!r}")
        if self.dicom is not None and not Path(self.dicom).is_dir():
            raise CovidalError(f"bench-hostile: --dicom {self.dicom} is not a folder")
        if self.baseline is not None and not (Path(self.baseline) / "covidal" / "__init__.py").is_file():
            raise CovidalError(
                f"bench-hostile: --baseline {self.baseline} holds no covidal package (give a checkout's "
                "server_training folder)"
            )


@dataclass
class HostileCounts:
    """Phase 1's tally."""

    tried: int = 0
    known: int = 0
    crashes: int = 0
    server_errors: int = 0
    unexpected: list[str] = field(default_factory=list)
    unclear: list[str] = field(default_factory=list)
    accepted: int = 0
    left_behind: list[str] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class StallResult:
    stalled: int
    held: int
    refused: int
    probes: int
    answered: int
    slowest_ms: float


@dataclass(frozen=True)
class UploadTiming:
    """One normal file's times (seconds): its uploads, and its direct and safe reads in this process."""

    name: str
    dims: tuple[int, int, int]
    megabytes: float
    upload_s: tuple[float, ...]
    direct_read_s: tuple[float, ...] = ()
    safe_read_s: tuple[float, ...] = ()
    baseline_upload_s: tuple[float, ...] = ()

    @property
    def baseline_change(self) -> float:
        """The upload time's relative change against the baseline service: the median of the pairs' ratios, less 1
        (each pair timed back to back, so a slow spell of the machine hits both)."""
        return statistics.median(ours / theirs for ours, theirs in zip(self.upload_s, self.baseline_upload_s)) - 1

    @property
    def baseline_change_of_minima(self) -> float:
        """The same from the fastest upload of each service."""
        return min(self.upload_s) / min(self.baseline_upload_s) - 1

    @property
    def extra_s(self) -> float:
        """The safe read's extra time: the median of the differences of reads timed side by side (so a slow spell
        of the machine, which hits both of a pair, cancels out)."""
        return statistics.median(safe - direct for direct, safe in zip(self.direct_read_s, self.safe_read_s))

    @property
    def change(self) -> float:
        """The upload time's relative change: :attr:`extra_s` over the upload time before (the median upload less
        the extra time)."""
        return self.extra_s / (statistics.median(self.upload_s) - self.extra_s)

    @property
    def change_of_minima(self) -> float:
        """The same from the minimum of each time (the runs least disturbed by other work)."""
        upload, direct, safe = (min(times) for times in (self.upload_s, self.direct_read_s, self.safe_read_s))
        return (safe - direct) / (upload - safe + direct)


@dataclass(frozen=True)
class HostileBenchResult:
    counts: HostileCounts
    stall: StallResult | None
    uploads: list[UploadTiming]
    acknowledged: int
    lost: int
    kills: int
    idle_mib: float
    peak_hostile_mib: float
    peak_end_mib: float
    peak_tree_mib: float
    wall_s: float


class MemorySampler(threading.Thread):
    """Samples, every 50 ms, the resident memory of a process and its descendants (Linux /proc); the peak sum.

    ``pid`` None pauses it: its scans of /proc take CPU time and this process's GIL, which would disturb reads
    timed in this process.
    """

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.pid: int | None = None
        self.peak_tree_bytes = 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(SAMPLE_EVERY_S):
            pid = self.pid
            if pid is not None:
                self.peak_tree_bytes = max(self.peak_tree_bytes, sum(_rss_bytes(pid) for pid in _tree(pid)))

    def stop(self) -> None:
        self._done.set()
        self.join()


class _Server:
    """The phase 1-3 server; started again (and counted) when a request takes it down."""

    def __init__(self, stack: ExitStack, folder: Path, sampler: MemorySampler) -> None:
        self.stack, self.folder, self.sampler = stack, folder, sampler
        self.start()

    def start(self) -> None:
        self.running: LocalService = self.stack.enter_context(
            running_service(self.folder / "project", self.folder / "serve.log")
        )
        self.sampler.pid = self.running.process.pid

    @property
    def base_url(self) -> str:
        return self.running.client.base_url

    def survived(self) -> bool:
        """False (and a fresh server started) when the process has died."""
        if self.running.process.poll() is None:
            return True
        self.start()
        return False

    def peak_mib(self) -> float:
        return _status_kib(self.running.process.pid, "VmHWM") / 1024


def bench_hostile(config: HostileBenchConfig, out: Path | None = None) -> HostileBenchResult:
    """Run every phase of ``config`` (the module docstring) in ``out`` (default: a temporary folder).

    Raises:
        CovidalError: a server that does not start, or a setup request it refuses.
    """
    start = time.perf_counter()
    with ExitStack() as stack:
        folder = (
            Path(out)
            if out is not None
            else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="covidal-bench-hostile-")))
        )
        folder.mkdir(parents=True, exist_ok=True)
        sampler = MemorySampler()
        sampler.start()
        stack.callback(sampler.stop)
        server = _Server(stack, folder, sampler)
        idle = _status_kib(server.running.process.pid, "VmRSS") / 1024
        counts = _hostile_phase(server, folder, config)
        stall = _stall_phase(server, config.stalled) if config.stalled else None
        peak_hostile = server.peak_mib()
        baseline = _baseline_service(stack, folder, config.baseline) if config.repeats else None
        uploads = _normal_uploads(server, _normal_files(folder, config), config.repeats, baseline)
        peak_end = server.peak_mib()
        acknowledged, lost = _kill_phase(folder / "kill", config.kills, config.seed, sampler)
    return HostileBenchResult(
        counts,
        stall,
        uploads,
        acknowledged,
        lost,
        config.kills,
        idle,
        peak_hostile,
        peak_end,
        sampler.peak_tree_bytes / 2**20,
        time.perf_counter() - start,
    )


# Phase 1


@dataclass(frozen=True)
class _EdgeRequest:
    name: str
    method: str
    path: str
    body: bytes | None
    headers: dict[str, str]
    status: int


def _hostile_phase(server: _Server, folder: Path, config: HostileBenchConfig) -> HostileCounts:
    client = server.running.client
    project = client.create_project(
        "hostile", model_kind="unet", grid_k=4, strategy="entropy", mc_samples=1, loss="point"
    )
    project3d = client.create_project(
        "hostile-3d", model_kind="unet3d", grid_k=4, strategy="entropy", mc_samples=1, loss="point"
    )
    ct = write_synthetic_ct(folder / "small-ct.nrrd", config.seed, (4, 32, 32))
    volume, _ = client.upload_volume(project3d["id"], ct)
    routes = (f"/projects/{project['id']}/volumes", f"/projects/{project3d['id']}/volumes/{volume['id']}/label")
    known = [
        *crash_uploads(),
        *file_reading_uploads(folder / "project" / "store.sqlite3"),
        *bomb_uploads(LIMITS.max_voxels, LIMITS.max_zip_bytes),
        *nan_uploads(folder),
    ]
    edges = _edge_requests(project["id"], ct.read_bytes())
    counts = HostileCounts(known=len(known) + len(edges))
    for upload in [*known, *mutated_uploads(config.seed, config.mutations)]:
        _tally(server, counts, upload.name, upload.status, lambda upload=upload: _send(server.base_url, routes, upload))
    for edge in edges:
        _tally(
            server,
            counts,
            edge.name,
            edge.status,
            lambda edge=edge: raw_request(server.base_url, edge.method, edge.path, edge.body, edge.headers),
        )
    counts.left_behind = _unreferenced_files(folder / "project")
    return counts


def _send(base_url: str, routes: tuple[str, str], upload: HostileUpload) -> tuple[int, object]:
    if upload.label:
        return raw_request(base_url, "PUT", f"{routes[1]}?format={upload.format}", upload.make(), OCTET_STREAM)
    return raw_request(
        base_url, "POST", f"{routes[0]}?name={upload.name}&format={upload.format}", upload.make(), OCTET_STREAM
    )


def _tally(
    server: _Server, counts: HostileCounts, name: str, expected: int | None, send: Callable[[], tuple[int, object]]
) -> None:
    counts.tried += 1
    try:
        status, answer = send()
    except OSError as error:
        status, answer = None, repr(error)
    if not server.survived():
        counts.crashes += 1
        return
    if status is None:
        counts.unexpected.append(f"{name}: no answer ({answer})")
        return
    counts.statuses[status] = counts.statuses.get(status, 0) + 1
    if status >= 500:
        counts.server_errors += 1
    if status in (200, 201):
        counts.accepted += 1
    if expected is not None and status != expected or expected is None and status >= 500:
        counts.unexpected.append(f"{name}: {status} {str(answer)[:200]}")
    detail = answer.get("detail") if isinstance(answer, dict) else None
    if status >= 400 and (not isinstance(detail, str | list) or "\n" in str(detail) or "Traceback" in str(detail)):
        counts.unclear.append(f"{name}: {str(answer)[:200]}")


def _edge_requests(project_id: int, ct: bytes) -> list[_EdgeRequest]:
    """Requests a web page, a rebinding attack or a careless script would send, and the answer each must get."""
    upload = f"/projects/{project_id}/volumes?name=edge&format=nrrd"
    json_body = {"Content-Type": "application/json"}
    return [
        _EdgeRequest("foreign-host-upload", "POST", upload, ct, {**OCTET_STREAM, "Host": "evil.example"}, 400),
        _EdgeRequest("foreign-host-read", "GET", "/projects", None, {"Host": "evil.example:8765"}, 400),
        _EdgeRequest(
            "foreign-origin-upload", "POST", upload, ct, {**OCTET_STREAM, "Origin": "http://evil.example"}, 403
        ),
        _EdgeRequest("null-origin-read", "GET", "/projects", None, {"Origin": "null"}, 403),
        _EdgeRequest("text-plain-upload", "POST", upload, ct, {"Content-Type": "text/plain"}, 415),
        _EdgeRequest("form-upload", "POST", upload, ct, {"Content-Type": "application/x-www-form-urlencoded"}, 415),
        _EdgeRequest(
            "nan-json",
            "POST",
            "/projects",
            b'{"name": "n", "model_kind": "unet", "grid_k": 4, '
            b'"strategy": "entropy", "mc_samples": NaN, "loss": "point"}',
            json_body,
            422,
        ),
        _EdgeRequest("infinity-json", "POST", f"/projects/{project_id}/cycles", b'{"count": Infinity}', json_body, 422),
        _EdgeRequest(
            "overflow-json", "PATCH", f"/projects/{project_id}/settings", b'{"window": [1e999, 0]}', json_body, 422
        ),
        _EdgeRequest(
            "huge-image-size",
            "POST",
            f"/projects/{project_id}/jobs",
            b'{"kind": "train", "config": {"image_size": 1048576}}',
            json_body,
            422,
        ),
        _EdgeRequest(
            "huge-grid",
            "POST",
            "/projects",
            b'{"name": "g", "model_kind": "unet", "grid_k": 1000000000000,'
            b' "strategy": "entropy", "mc_samples": 1, "loss": "point"}',
            json_body,
            422,
        ),
    ]


def _unreferenced_files(project_dir: Path) -> list[str]:
    """Files of the store no volume or label row refers to (and leftovers of interrupted writes)."""
    with Store(project_dir) as store:
        referenced = set()
        for project in store.list_projects():
            referenced |= {volume.path for volume in store.list_volumes(project.id)}
            referenced |= {label.path for label in store.list_labels(project.id)}
        stored = store.files.files("volumes") + store.files.files("labels") + store.files.temporaries()
        return sorted(set(stored) - referenced) + [f"integrity: {problem}" for problem in store.integrity_check()]


# Phase 2


def _stall_phase(server: _Server, stalled: int) -> StallResult:
    client = server.running.client
    project = client.create_project(
        "stalls", model_kind="unet", grid_k=4, strategy="entropy", mc_samples=1, loss="point"
    )
    path = f"/projects/{project['id']}/volumes?name=stalled&format=nrrd"
    connections = [stalled_upload(server.base_url, path) for _ in range(stalled)]
    try:
        time.sleep(1.0)  # every stalled upload has reached its route
        paths = ["/health", "/projects", f"/projects/{project['id']}", f"/projects/{project['id']}/volumes"]
        latencies = []
        for number in range(STALL_PROBES):
            start = time.perf_counter()
            try:
                status, _ = raw_request(server.base_url, "GET", paths[number % len(paths)], timeout=10)
            except OSError:
                continue
            if status == 200:
                latencies.append((time.perf_counter() - start) * 1000)
        refused = sum(_answered_503(connection) for connection in connections)
    finally:
        for connection in connections:
            connection.close()
    return StallResult(stalled, stalled - refused, refused, STALL_PROBES, len(latencies), max(latencies, default=0))


def _answered_503(connection: socket.socket) -> bool:
    connection.settimeout(0.2)
    try:
        return connection.recv(64).startswith(b"HTTP/1.1 503")
    except OSError:
        return False


# Phase 3


@dataclass(frozen=True)
class _NormalFile:
    name: str
    path: Path
    format: VolumeFormat


def _normal_files(folder: Path, config: HostileBenchConfig) -> list[_NormalFile]:
    if not config.repeats:
        return []
    files = []
    if config.dicom is not None:
        count = len([path for path in Path(config.dicom).iterdir() if path.is_file()])
        files.append(
            _NormalFile(
                f"real DICOM series ({count} files, zip)",
                zip_dicom_folder(Path(config.dicom), folder / "dicom.zip"),
                VolumeFormat.DICOM_ZIP,
            )
        )
    if config.demo:
        from covidal.sample_data.demo import fetch_reference_ct, make_demo_case

        files.append(_NormalFile("demo CT (gzip NRRD)", make_demo_case().ct, VolumeFormat.NRRD))
        files.append(_NormalFile("demo CT source (.nii.gz)", fetch_reference_ct(), VolumeFormat.NIFTI))
    if config.slices:
        nrrd = write_synthetic_ct(folder / "synthetic.nrrd", config.seed, (config.slices, 512, 512))
        nifti = folder / "synthetic.nii"
        sitk.WriteImage(sitk.ReadImage(str(nrrd)), str(nifti), False)
        files.append(_NormalFile(f"synthetic CT 512x512x{config.slices} (gzip NRRD)", nrrd, VolumeFormat.NRRD))
        files.append(_NormalFile(f"synthetic CT 512x512x{config.slices} (.nii)", nifti, VolumeFormat.NIFTI))
    return files


def _normal_uploads(
    server: _Server, files: list[_NormalFile], repeats: int, baseline: LocalService | None
) -> list[UploadTiming]:
    """Each file uploaded ``repeats`` times; with ``baseline``, to it too, each pair alternately first; else the
    in-process reads of the module docstring."""
    start_decoder()
    timings = []
    for number, normal in enumerate(files):
        ours, theirs, dims = [], [], None
        for repeat in range(repeats):
            order = [(server.running, ours), (baseline, theirs)] if baseline is not None else [(server.running, ours)]
            for service, times in order[:: -1 if repeat % 2 else 1]:
                seconds, dims = _timed_upload(service.client, normal, f"normal-{number}-{repeat}")
                times.append(seconds)
        megabytes = normal.path.stat().st_size / 2**20
        if baseline is not None:
            timings.append(UploadTiming(normal.name, dims, megabytes, tuple(ours), baseline_upload_s=tuple(theirs)))
        else:
            direct, safe = _paired_reads(server, normal, READ_REPEATS * repeats)
            timings.append(UploadTiming(normal.name, dims, megabytes, tuple(ours), direct, safe))
    return timings


def _timed_upload(client: CovidalClient, normal: _NormalFile, project: str) -> tuple[float, tuple[int, int, int]]:
    """``(seconds, dims)`` of one upload of ``normal`` to a new project of ``client``'s service."""
    project_id = client.create_project(
        project, model_kind="unet", grid_k=4, strategy="entropy", mc_samples=1, loss="point"
    )["id"]
    start = time.perf_counter()
    volume, created = client.upload_volume(project_id, normal.path, volume_format=normal.format.value)
    seconds = time.perf_counter() - start
    if not created:
        raise CovidalError(f"bench-hostile: {normal.name} was not created anew")
    return seconds, tuple(volume["dims"])


def _paired_reads(server: _Server, normal: _NormalFile, count: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``(direct, safe)`` read times of ``normal`` in this process, interleaved, each first in turn (drift hits
    both alike)."""
    direct_s, safe_s = [], []
    server.sampler.pid = None  # no /proc scans while this process times reads
    direct = partial(_timed, read_stored_volume, normal.path, normal.format, LIMITS.max_zip_bytes)
    safe = partial(_timed, read_upload_safely, normal.path, normal.format, LIMITS)
    for repeat in range(count):
        for read, times in [(direct, direct_s), (safe, safe_s)][:: -1 if repeat % 2 else 1]:
            times.append(read())
    server.sampler.pid = server.running.process.pid
    return tuple(direct_s), tuple(safe_s)


def _baseline_service(stack: ExitStack, folder: Path, source: Path | None) -> LocalService | None:
    """A service of the checkout at ``source`` (its ``server_training`` folder) beside this one, or None."""
    if source is None:
        return None
    source = Path(source).resolve()
    return stack.enter_context(
        running_service(
            folder / "baseline-project",
            folder / "baseline-serve.log",
            environment={"PYTHONPATH": str(source)},
            cwd=source,
        )
    )


def _timed(action: Callable[..., object], *args: object) -> float:
    start = time.perf_counter()
    action(*args)
    return time.perf_counter() - start


# Phase 4


def _kill_phase(folder: Path, kills: int, seed: int, sampler: MemorySampler) -> tuple[int, int]:
    """``(acknowledged, lost)`` over ``kills`` SIGKILLs of a server during submits."""
    if not kills:
        return 0, 0
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    ct = write_synthetic_ct(folder / "ct.nrrd", seed, (100, 64, 64))  # 400 regions: answers for many kills
    acknowledged: list[dict] = []
    project_id = None
    for kill in range(kills):
        with running_service(folder / "project", folder / "serve.log") as running:
            client = running.client
            if project_id is None:
                project_id = client.create_project(
                    "kill", model_kind="unet", grid_k=4, strategy="entropy", mc_samples=1, loss="point"
                )["id"]
                client.upload_volume(project_id, ct)
            cycle = client.create_cycle(project_id, count=100)
            leased = client.lease_suggestions(project_id, cycle["id"], "dr-a", limit=100)
            submitter = Submitter(client, project_id, leased, key_prefix=f"kill{kill}")
            submitter.start()
            _kill_after(running, submitter, rng.randint(3, 30))
            submitter.join(60)
            if submitter.failure is not None:
                raise CovidalError(f"bench-hostile: a submission failed: {submitter.failure!r}")
            acknowledged += submitter.acknowledged
    with running_service(folder / "project", folder / "serve.log") as running:
        stored = running.client.list_annotations(project_id)
    return len(acknowledged), len(lost_answers(acknowledged, stored))


def _kill_after(running: LocalService, submitter: Submitter, answers: int) -> None:
    deadline = time.monotonic() + 60
    while len(submitter.acknowledged) < answers and submitter.is_alive() and time.monotonic() < deadline:
        time.sleep(0.002)
    os.kill(running.process.pid, signal.SIGKILL)
    running.process.wait(30)


# /proc


def _status_kib(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _rss_bytes(pid: int) -> int:
    return _status_kib(pid, "VmRSS") * 1024


def _tree(root: int) -> Iterator[int]:
    """``root`` and its descendants (by the parent ids in /proc/<pid>/stat)."""
    parents: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat") as stat:
                    parents[int(entry.name)] = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    family, frontier = {root}, [root]
    while frontier:
        frontier = [pid for pid, parent in parents.items() if parent in frontier and pid not in family]
        family.update(frontier)
    yield from family


def summary(result: HostileBenchResult) -> str:
    """The printed report."""
    counts = result.counts
    lines = [
        (
            f"hostile inputs: {counts.tried} bad inputs tried ({counts.known} known reproducers and edge requests, "
            f"{counts.tried - counts.known} random mutations; {counts.accepted} mutations were still valid volumes, "
            "201)"
        ),
        f"server crashes: {counts.crashes}",
        f"5xx answers: {counts.server_errors}",
        (
            f"answers other than expected: {len(counts.unexpected)}; refusals not one clear line: "
            f"{len(counts.unclear)}; files or rows left by refusals: {len(counts.left_behind)}"
        ),
        "statuses: " + ", ".join(f"{status}: {count}" for status, count in sorted(counts.statuses.items())),
        *[f"  unexpected: {line}" for line in counts.unexpected[:10]],
        *[f"  unclear: {line}" for line in counts.unclear[:10]],
        *[f"  left: {line}" for line in counts.left_behind[:10]],
    ]
    if result.stall is not None:
        stall = result.stall
        lines.append(
            f"while {stall.stalled} uploads stall: {stall.answered}/{stall.probes} other requests answered "
            f"({stall.probes - stall.answered} held), slowest {stall.slowest_ms:.0f} ms; {stall.held} "
            f"uploads held, {stall.refused} refused (503)"
        )
    lines += [
        (
            f"peak server memory: {result.peak_hostile_mib:.0f} MiB resident after the hostile set ("
            f"{result.idle_mib:.0f} MiB idle after start), {result.peak_end_mib:.0f} MiB after the normal uploads "
            "(service process, VmHWM); "
            f"{result.peak_tree_mib:.0f} MiB with its decoders (sampled)"
        ),
        (
            f"kill -9 during submits: {result.kills} kills, {result.acknowledged} answers acknowledged, "
            f"{result.lost} lost"
        ),
    ]
    if result.uploads and result.uploads[0].baseline_upload_s:
        lines += _baseline_table(result.uploads)
    elif result.uploads:
        lines += _estimate_table(result.uploads)
    lines.append(f"wall time: {result.wall_s:.0f} s")
    return "\n".join(lines)


def _baseline_table(uploads: list[UploadTiming]) -> list[str]:
    title = (
        "normal uploads against the baseline service (medians; change = median of the paired ratios - 1, and "
        "from the fastest upload of each):"
    )
    rows = [
        (
            f"{statistics.median(timing.upload_s):.3f}",
            f"{statistics.median(timing.baseline_upload_s):.3f}",
            f"{timing.baseline_change:+.1%}",
            f"{timing.baseline_change_of_minima:+.1%}",
        )
        for timing in uploads
    ]
    return _upload_table(title, ("upload s", "baseline s", "change", "(min)"), uploads, rows)


def _estimate_table(uploads: list[UploadTiming]) -> list[str]:
    title = (
        "normal uploads (medians; extra = median of the paired differences safe - direct read; change = "
        "extra / (upload - extra), and from the minimum of each time):"
    )
    rows = [
        (
            *(
                f"{statistics.median(times):.3f}"
                for times in (timing.upload_s, timing.direct_read_s, timing.safe_read_s)
            ),
            f"{timing.extra_s * 1000:.0f}",
            f"{timing.change:+.1%}",
            f"{timing.change_of_minima:+.1%}",
        )
        for timing in uploads
    ]
    return _upload_table(title, ("upload s", "direct s", "safe s", "extra ms", "change", "(min)"), uploads, rows)


def _upload_table(
    title: str, headers: tuple[str, ...], uploads: list[UploadTiming], rows: list[tuple[str, ...]]
) -> list[str]:
    """``title``, then one line per upload: its name, voxels and size, then its ``rows`` entry under ``headers``."""
    widths = [max(len(header), 7) + 1 for header in headers]
    lines = [title, f"  {'file':<38} {'voxels (i, j, k)':<18} {'MiB':>6}" + _cells(headers, widths)]
    for timing, row in zip(uploads, rows):
        dims = "x".join(str(size) for size in timing.dims)
        lines.append(f"  {timing.name:<38} {dims:<18} {timing.megabytes:>6.1f}" + _cells(row, widths))
    return lines


def _cells(values: tuple[str, ...], widths: list[int]) -> str:
    return "".join(f" {value:>{width}}" for value, width in zip(values, widths))
