"""Learning curves of simulated active-learning runs, stored in ``curve.json``.

One file may hold several runs (strategies, losses, seeds sharing an output
folder)::

    {"format": "covidal.curve", "version": 1, "runs": [RunCurve, ...]}

Each run lists, per cycle, how much was labelled, what it cost the annotator
and the test metrics. Simulations sharing a folder merge their runs with
:func:`update_curve_file`, which holds an exclusive lock on ``curve.json.lock``
around the read-modify-write so that no run is lost.

Runs are compared in groups (:func:`group_runs`): the seeds of one strategy and
loss whose other settings are the same.
"""

from __future__ import annotations

import fcntl
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from covidal.errors import CovidalError
from covidal.utils.atomic import atomic_write_json
from covidal.utils.documents import read_document
from covidal.validation import check_int, check_real

CURVE_FORMAT = "covidal.curve"
CURVE_VERSION = 1
TEST_METRICS = ("dice", "iou", "ppv", "sensitivity", "specificity")
# Settings that do not make a different experiment: the seed varies within a group,
# strategy and loss name the group, and the device does not change what is learnt.
SETTINGS_OUTSIDE_GROUP = frozenset({"seed", "strategy", "loss.name", "device"})


@dataclass
class CycleRecord:
    """The state of a run after one cycle (label, retrain, evaluate).

    Attributes:
        cycle: 0 for the initial training, then 1, 2, ...
        labelled_regions: regions answered so far (all cycles).
        labelled_slices: slices with at least one answered region.
        effort_seconds: simulated annotation time spent so far.
        test: test-set metrics, at least the keys of ``TEST_METRICS``; a value is
            None (or NaN) where undefined, e.g. PPV with no predicted foreground.
        train_seconds: wall time of this cycle's training.
        score_seconds: wall time of this cycle's scoring, selection and answers.

    Raises:
        ValueError: a count or time that is negative or of the wrong type, or a missing test metric.
    """

    cycle: int
    labelled_regions: int
    labelled_slices: int
    effort_seconds: float
    test: dict[str, float | None]
    train_seconds: float
    score_seconds: float

    def __post_init__(self) -> None:
        for name in ("cycle", "labelled_regions", "labelled_slices"):
            _check_count(name, getattr(self, name))
        for name in ("effort_seconds", "train_seconds", "score_seconds"):
            _check_seconds(name, getattr(self, name))
        if not isinstance(self.test, dict):
            raise ValueError(f"test must be an object of metrics, got {type(self.test).__name__}")
        missing = [key for key in TEST_METRICS if key not in self.test]
        if missing:
            raise ValueError(f"test lacks the metric(s) {', '.join(missing)}")
        for key, value in self.test.items():
            if value is not None and not _is_number(value):
                raise ValueError(f"test metric {key!r} must be a number or null, got {value!r}")

    def metric(self, name: str) -> float | None:
        """The test metric ``name``; None where undefined (stored as null or NaN).

        Raises:
            KeyError: no such metric in this record.
        """
        value = self.test[name]
        return None if value is None or math.isnan(value) else float(value)


@dataclass
class RunCurve:
    """The learning curve of one simulated run.

    Attributes:
        name: unique within a curve file (``strategy-loss-seedS`` from the simulation).
        strategy: region-ranking strategy, e.g. ``entropy``.
        loss: training loss, e.g. ``cb-flip-rot``.
        seed: the run's seed.
        full_effort_seconds: what delineating every pool slice with polygons would
            cost; None if unknown. Efforts are also shown as a percentage of it.
        config: the run's settings (``SimulationConfig.to_dict()``), free-form here.
        cycles: one record per finished cycle, in order.

    Raises:
        ValueError: a field of the wrong type, or cycles out of order.
    """

    name: str
    strategy: str
    loss: str
    seed: int
    full_effort_seconds: float | None
    config: dict
    cycles: list[CycleRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name in ("name", "strategy", "loss"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"{name} must be a non-empty string, got {getattr(self, name)!r}")
        _check_count("seed", self.seed)
        if self.full_effort_seconds is not None:
            _check_seconds("full_effort_seconds", self.full_effort_seconds)
        if not isinstance(self.config, dict):
            raise ValueError(f"config must be an object, got {type(self.config).__name__}")
        if not isinstance(self.cycles, list) or not all(isinstance(c, CycleRecord) for c in self.cycles):
            raise ValueError("cycles must be a list of cycle records")
        numbers = [record.cycle for record in self.cycles]
        if numbers != sorted(set(numbers)):
            raise ValueError(f"cycle numbers must increase, got {numbers}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> RunCurve:
        """The run stored as ``data`` (as written by :meth:`to_dict`).

        Raises:
            ValueError: a missing or unexpected key, or a bad value.
        """
        fields = _exact_keys(data, cls.__dataclass_fields__, "run")
        cycles = fields.pop("cycles")
        if not isinstance(cycles, list):
            raise ValueError(f"cycles must be a list, got {type(cycles).__name__}")
        records = [CycleRecord(**_exact_keys(cycle, CycleRecord.__dataclass_fields__, "cycle")) for cycle in cycles]
        return cls(**fields, cycles=records)


@dataclass(frozen=True)
class RunGroup:
    """The runs that differ only in their seed: one line of a plot, one row of a table.

    Attributes:
        strategy, loss: shared by the runs.
        settings: ``"key=value, ..."`` for the settings that tell this group apart
            from another of the same strategy and loss (e.g. ``warm_start=False``); "" if none.
        runs: the runs, in order of appearance.
    """

    strategy: str
    loss: str
    settings: str
    runs: tuple[RunCurve, ...]

    @property
    def label(self) -> str:
        """``entropy / cb-flip-rot``, plus ``, warm_start=False`` where settings tell groups apart."""
        base = f"{self.strategy} / {self.loss}"
        return f"{base}, {self.settings}" if self.settings else base

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(run.seed for run in self.runs)


def group_runs(runs: Sequence[RunCurve]) -> list[RunGroup]:
    """Group ``runs`` by strategy, loss and every other setting in ``config`` except the seed and device.

    Returns:
        The groups in order of first appearance.

    Raises:
        ValueError: two runs of one group have the same seed (e.g. the same
            experiment found in two folders): averaging them would count a seed twice.
    """
    keyed: dict[tuple[str, str, str], list[RunCurve]] = {}
    flat_settings: dict[tuple[str, str, str], dict[str, object]] = {}
    for run in runs:
        settings = {k: v for k, v in _flatten(run.config).items() if k not in SETTINGS_OUTSIDE_GROUP}
        key = (run.strategy, run.loss, json.dumps(settings, sort_keys=True, default=str))
        keyed.setdefault(key, []).append(run)
        flat_settings[key] = settings
    groups = []
    for key, members in keyed.items():
        _check_distinct_seeds(members)
        strategy, loss, _ = key
        rivals = [flat_settings[other] for other in keyed if other[:2] == key[:2] and other != key]
        groups.append(RunGroup(strategy, loss, _distinguishing(flat_settings[key], rivals), tuple(members)))
    return groups


def shared_full_effort(runs: Sequence[RunCurve]) -> float | None:
    """The full-delineation effort when every run has the same one (same pool), else None."""
    efforts = {run.full_effort_seconds for run in runs}
    if not efforts or None in efforts:
        return None
    low, high = min(efforts), max(efforts)
    return high if math.isclose(low, high, rel_tol=1e-9) and high > 0 else None


def load_curves(path: Path) -> list[RunCurve]:
    """The runs stored in the curve file ``path``.

    Raises:
        CovidalError: naming ``path`` if it is missing, not JSON, of another format
            or version, or holds a malformed run or two runs with the same name.
    """
    document = read_document(
        path, CURVE_FORMAT, CURVE_VERSION, "curve file", "`covidal simulate --out DIR` writes DIR/curve.json"
    )
    try:
        return _runs_from_document(document)
    except (ValueError, TypeError) as error:
        raise CovidalError(f"malformed curve file {path}: {error}") from None


def update_curve_file(path: Path, run: RunCurve) -> None:
    """Store ``run`` in the curve file ``path``: replace the run of the same name, or append it.

    The read-modify-write holds an exclusive ``flock`` on ``<path>.lock`` (left in
    place: removing it would let two writers lock different files), and the new
    file replaces the old atomically, so a reader never sees a partial file and
    concurrent writers never drop each other's runs.

    Raises:
        CovidalError: the existing file is malformed (it is left untouched).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)  # released when the file is closed
        runs = load_curves(path) if path.exists() else []
        names = [existing.name for existing in runs]
        if run.name in names:
            runs[names.index(run.name)] = run
        else:
            runs.append(run)
        atomic_write_json(path, {"format": CURVE_FORMAT, "version": CURVE_VERSION, "runs": [r.to_dict() for r in runs]})


def _runs_from_document(document: dict) -> list[RunCurve]:
    if not isinstance(document.get("runs"), list):
        raise ValueError("'runs' must be a list")
    runs = []
    for index, data in enumerate(document["runs"]):
        try:
            runs.append(RunCurve.from_dict(data))
        except (ValueError, TypeError) as error:
            raise ValueError(f"run {index}: {error}") from None
    names = [run.name for run in runs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"run name(s) stored twice: {', '.join(duplicates)}")
    return runs


def _exact_keys(data: object, expected, what: str) -> dict:
    """``data`` as a dict, checked to have exactly the ``expected`` keys."""
    if not isinstance(data, dict):
        raise ValueError(f"a {what} must be an object, got {type(data).__name__}")
    missing = [key for key in expected if key not in data]
    unexpected = [key for key in data if key not in expected]
    if missing or unexpected:
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + (
            [f"unexpected {', '.join(unexpected)}"] if unexpected else []
        )
        raise ValueError(f"a {what}: {'; '.join(parts)}")
    return dict(data)


def _is_number(value: object) -> bool:
    """A real number (NaN included: an undefined metric) that is not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_count(name: str, value: object) -> None:
    check_int(name, value, minimum=0)


def _check_seconds(name: str, value: object) -> None:
    check_real(f"{name} (seconds)", value, minimum=0.0)


def _flatten(config: dict, prefix: str = "") -> dict[str, object]:
    """``{"model": {"width": 32}}`` -> ``{"model.width": 32}``."""
    flat: dict[str, object] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _distinguishing(settings: dict[str, object], rivals: list[dict[str, object]]) -> str:
    """The settings whose value differs from at least one rival's, as ``key=value, ...``."""
    keys = sorted(
        {key for rival in rivals for key in settings.keys() | rival.keys() if settings.get(key) != rival.get(key)}
    )
    return ", ".join(f"{key}={settings.get(key, 'unset')}" for key in keys)


def _check_distinct_seeds(runs: list[RunCurve]) -> None:
    seen: dict[int, str] = {}
    for run in runs:
        if run.seed in seen:
            raise ValueError(
                f"runs {seen[run.seed]!r} and {run.name!r} are both {run.strategy} / {run.loss} "
                f"seed {run.seed} with the same settings; a group would count that seed twice"
            )
        seen[run.seed] = run.name
