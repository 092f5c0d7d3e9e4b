"""K-fold cross-validation of point-supervision methods on a set of slices with reference masks.

The folds are fixed and documented: slices sorted by their numeric stem, cut into ``folds`` contiguous blocks
(neighbouring numbers often come from one patient, so a block keeps them on one side). Each fold trains on the
other blocks for a fixed number of passes and keeps the last model (no validation slices to overfit: selection
on five slices was seen to pick noise), then predicts its own block. The confusion counts of all held-out
slices are summed before Dice, IoU, PPV and sensitivity are taken (micro averaging over the whole set).

A method is a named change of the training config (:data:`METHODS`). Methods that differ only in how they
predict (TTA, lung restriction, decision threshold) share one trained model per fold. Every finished fold of every method is
written to ``out/<method>/fold<k>.json``; a rerun with the same settings reads it back instead of training again.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

from covidal.bench.losses import natural_key
from covidal.data.slices import SliceRecord
from covidal.errors import CovidalError
from covidal.losses.registry import LossName
from covidal.metrics.segmentation import (
    ConfusionCounts,
    compute_dice,
    compute_iou,
    compute_ppv,
    compute_sensitivity,
)
from covidal.training.augment_kind import Augment
from covidal.training.background_prior import BackgroundPrior
from covidal.training.checkpoint import load_run
from covidal.training.inference import evaluate
from covidal.training.train_config import TrainConfig, resolve_device
from covidal.training.train_run import for_epochs, train
from covidal.utils.atomic import atomic_write_json

FOLD_FILE = "fold{}.json"
BACKGROUND_WEIGHTS = (4, 8)
THRESHOLDS = ("0.6", "0.7", "0.8", "0.9")
EMA_DECAY = 0.99
# CB (flip, rot) trained with the averaged weights, the augmentation, both; with background weight 8 too.
SCHEDULES = (
    "cb+ema",
    "cb+augment",
    "cb+ema+augment",
    "cb+background-weight-8+augment",
    "cb+background-weight-8+ema+augment",
)
# Methods predicted at each threshold (each group one trained model): its name -> {candidate: threshold}, and the
# rows choosing among a group's candidates fold by fold.
THRESHOLD_BASES = (
    "cb+tta",
    *(f"cb+background-weight-{weight}+tta" for weight in BACKGROUND_WEIGHTS),
    *(f"{name}+tta" for name in SCHEDULES),
)
THRESHOLD_GROUPS = {
    base: {base: 0.5, **{f"{base}+threshold-{t}": float(t) for t in THRESHOLDS}} for base in THRESHOLD_BASES
}
NESTED_SUFFIX = "+threshold-chosen-on-other-folds"
NESTED_ROWS = frozenset(base + NESTED_SUFFIX for base in THRESHOLD_BASES)
MetricFn = Callable[[ConfusionCounts], float]
METRICS: dict[str, MetricFn] = {
    "dice": compute_dice,
    "iou": compute_iou,
    "ppv": compute_ppv,
    "sensitivity": compute_sensitivity,
}


def _loss(config: TrainConfig, **values: object) -> TrainConfig:
    return replace(config, loss=replace(config.loss, **values))


def _cb(config: TrainConfig) -> TrainConfig:
    return _loss(config, name=LossName.CB_FLIP_ROT)


def _combined(config: TrainConfig) -> TrainConfig:
    """CB (flip, rot) with the intensity background prior, pseudo-masks, self-training and TTA."""
    config = replace(_cb(config), background_prior=BackgroundPrior.INTENSITY, pseudo_masks=True, tta=True)
    return _loss(config, self_training_weight=1.0)


def _loss_of_cb(config: TrainConfig, **values: object) -> TrainConfig:
    return _loss(_cb(config), **values)


def _schedule(
    method: Callable[[TrainConfig], TrainConfig], ema: bool, augment: bool
) -> Callable[[TrainConfig], TrainConfig]:
    """``method`` with the averaged weights (decay :data:`EMA_DECAY`) and/or intensity and scale augmentation."""
    return lambda config: replace(
        method(config),
        ema_decay=EMA_DECAY if ema else None,
        augment=Augment.INTENSITY_SCALE if augment else Augment.NONE,
    )


def _with_tta(method: Callable[[TrainConfig], TrainConfig]) -> Callable[[TrainConfig], TrainConfig]:
    return lambda config: replace(method(config), tta=True)


_TRAINED: dict[str, Callable[[TrainConfig], TrainConfig]] = {
    "full": lambda c: _loss(c, name=LossName.FULL),
    "point": lambda c: _loss(c, name=LossName.POINT),
    "cb-flip-rot": _cb,
    "cb+background-prior": lambda c: replace(_cb(c), background_prior=BackgroundPrior.INTENSITY),
    "cb+pseudo-masks": lambda c: replace(_cb(c), pseudo_masks=True),
    "cb+self-training": lambda c: _loss(_cb(c), self_training_weight=1.0),
    **{
        f"cb+background-weight-{weight}": partial(_loss_of_cb, background_weight=float(weight))
        for weight in BACKGROUND_WEIGHTS
    },
}
_TRAINED.update(
    {
        "cb+ema": _schedule(_cb, ema=True, augment=False),
        "cb+augment": _schedule(_cb, ema=False, augment=True),
        "cb+ema+augment": _schedule(_cb, ema=True, augment=True),
        "cb+background-weight-8+augment": _schedule(_TRAINED["cb+background-weight-8"], ema=False, augment=True),
        "cb+background-weight-8+ema+augment": _schedule(_TRAINED["cb+background-weight-8"], ema=True, augment=True),
    }
)
# Each method: the base config -> the config it trains and predicts with. "+tta" and "+lungs" only change how
# the trained model of the same name predicts.
METHODS: dict[str, Callable[[TrainConfig], TrainConfig]] = {
    "full": _TRAINED["full"],
    "full+tta": _with_tta(_TRAINED["full"]),
    "point": _TRAINED["point"],
    "point+tta": _with_tta(_TRAINED["point"]),
    "cb-flip-rot": _cb,
    "cb+tta": _with_tta(_cb),
    "cb+lungs": lambda c: replace(_cb(c), lung_restriction=True),
    **{name: _TRAINED[name] for name in ("cb+background-prior", "cb+pseudo-masks", "cb+self-training")},
    **{
        f"{name}+tta": _with_tta(_TRAINED[name])
        for name in ("cb+background-prior", "cb+pseudo-masks", "cb+self-training")
    },
    "cb+all": _combined,
    "cb+all+lungs": lambda c: replace(_combined(c), lung_restriction=True),
    **{f"cb+background-weight-{weight}": _TRAINED[f"cb+background-weight-{weight}"] for weight in BACKGROUND_WEIGHTS},
    **{
        f"cb+background-weight-{weight}+tta": _with_tta(_TRAINED[f"cb+background-weight-{weight}"])
        for weight in BACKGROUND_WEIGHTS
    },
    **{name: _TRAINED[name] for name in SCHEDULES},
    **{f"{name}+tta": _with_tta(_TRAINED[name]) for name in SCHEDULES},
    **{
        f"cb-flip-rot+threshold-{threshold}": lambda c, t=threshold: replace(_cb(c), threshold=float(t))
        for threshold in THRESHOLDS
    },
}
METHODS.update(
    {
        candidate: lambda c, base=METHODS[base], t=threshold: replace(base(c), threshold=t)
        for base, group in THRESHOLD_GROUPS.items()
        for candidate, threshold in group.items()
        if candidate != base
    }
)


@dataclass(frozen=True)
class FoldResult:
    """One method on one held-out fold: its summed confusion counts and the training seconds."""

    counts: ConfusionCounts
    seconds: float


def fixed_folds(records: Sequence[SliceRecord], folds: int) -> list[list[SliceRecord]]:
    """``folds`` contiguous blocks of the slices sorted by numeric stem (sizes differ by at most one).

    Raises:
        CovidalError: fewer than 2 folds, or fewer slices than folds.
    """
    if folds < 2 or len(records) < folds:
        raise CovidalError(f"{len(records)} slices cannot be cut into {folds} folds (need 2 <= folds <= slices)")
    ordered = sorted(records, key=lambda r: natural_key(r.slice_id))
    bounds = [round(k * len(ordered) / folds) for k in range(folds + 1)]
    return [ordered[bounds[k] : bounds[k + 1]] for k in range(folds)]


def cross_validate(
    records: Sequence[SliceRecord],
    methods: Sequence[str],
    base_config: TrainConfig,
    out_dir: Path,
    folds: int,
    epochs: int,
    progress: bool = False,
    log: Callable[[str], None] = print,
) -> list[dict]:
    """Every method on every fold; one row per method with the micro metrics over all held-out slices.

    Args:
        records: slices with reference masks.
        methods: names in :data:`METHODS`.
        base_config: what every method starts from (grid, width, batch, seed, device...).
        out_dir: one folder per trained model and per method's fold results.
        folds: number of folds.
        epochs: passes over each fold's training slices.
        progress: progress bars while training.
        log: receives one line per finished fold and method.

    Raises:
        CovidalError: an unknown method, slices without masks, or too few slices for the folds.
    """
    unknown = [name for name in methods if name not in METHODS]
    if unknown:
        raise CovidalError(f"unknown method(s) {', '.join(unknown)}; choose from: {', '.join(METHODS)}")
    missing = [r.slice_id for r in records if r.mask is None]
    if missing:
        raise CovidalError(f"cross-validation needs a mask for every slice; {len(missing)} have none")
    blocks = fixed_folds(records, folds)
    results: dict[str, list[FoldResult]] = {name: [] for name in methods}
    for k, held_out in enumerate(blocks):
        training = [r for block in blocks[:k] + blocks[k + 1 :] for r in block]
        for name in methods:
            result = _fold(name, METHODS[name](base_config), training, held_out, out_dir, k, epochs, progress)
            results[name].append(result)
            log(f"fold {k + 1}/{folds} {name}: Dice {compute_dice(result.counts):.3f} ({result.seconds:.0f} s)")
    rows = [_row(name, results[name], base_config) for name in methods]
    for base, group in THRESHOLD_GROUPS.items():
        candidates = [name for name in methods if name in group]
        if len(candidates) > 1:
            rows.append(nested_threshold_row(base, {name: results[name] for name in candidates}, log))
    return rows


def nested_threshold_row(base: str, results: dict[str, list[FoldResult]], log: Callable[[str], None] = print) -> dict:
    """The decision threshold chosen without looking at the fold it is scored on: for each fold, the candidate
    (a method of ``THRESHOLD_GROUPS[base]``, all of one trained model) whose summed counts over the *other*
    folds give the best Dice; that fold then counts with the chosen candidate's counts. An honest estimate of
    a threshold tuned on other data, unlike the best row of the sweep, which is chosen on the scored folds.

    Args:
        base: the group's method at 0.5 (a key of :data:`THRESHOLD_GROUPS`); the row is named after it.
        results: candidate name -> its fold results, every candidate with the same number of folds.
    """
    folds = len(next(iter(results.values())))
    chosen, counts = [], []
    for k in range(folds):
        others = {
            name: sum((fold.counts for j, fold in enumerate(runs) if j != k), ConfusionCounts())
            for name, runs in results.items()
        }
        best = max(others, key=lambda name: compute_dice(others[name]))
        chosen.append(THRESHOLD_GROUPS[base][best])
        counts.append(results[best][k])
    log(f"{base}: threshold chosen on the other folds, per fold: {' '.join(f'{t:g}' for t in chosen)}")
    return {**_summed(base + NESTED_SUFFIX, counts), "chosen_thresholds": chosen, "config": None}


def _fold(
    name: str,
    config: TrainConfig,
    training: list[SliceRecord],
    held_out: list[SliceRecord],
    out_dir: Path,
    k: int,
    epochs: int,
    progress: bool,
) -> FoldResult:
    """Train (or reuse) the fold's model for ``config`` and score its prediction of ``held_out``."""
    path = out_dir / name / FOLD_FILE.format(k)
    config = for_epochs(config, epochs, len(training))
    config = replace(config, validate_every=config.steps)  # the last model, no selection
    settings = config.to_dict()
    if path.exists():
        saved = json.loads(path.read_text())
        if _same_config(saved["config"], settings):
            return FoldResult(ConfusionCounts(**saved["counts"]), saved["seconds"])
    # Methods that only predict differently share the trained model of their training config.
    trained = replace(config, tta=False, lung_restriction=False, threshold=0.5)
    run_dir = out_dir / "models" / _training_key(trained) / f"fold{k}"
    seconds = _train_once(trained, training, run_dir, progress)
    device = resolve_device(config.device)
    model = load_run(run_dir, device).model
    counts = evaluate(model, held_out, config.image_size, device, options=config.prediction).metrics["counts"]
    atomic_write_json(path, {"config": settings, "counts": counts, "seconds": seconds, "slices": len(held_out)})
    return FoldResult(ConfusionCounts(**counts), seconds)


def _train_once(config: TrainConfig, training: list[SliceRecord], run_dir: Path, progress: bool) -> float:
    """Train into ``run_dir`` unless a model of the same config is already there; the training seconds."""
    done = run_dir / "done.json"
    if done.exists():
        saved = json.loads(done.read_text())
        if _same_config(saved["config"], config.to_dict()):
            return saved["seconds"]
    started = time.perf_counter()
    train(training, config, run_dir, progress=progress, validation=[])
    seconds = time.perf_counter() - started
    atomic_write_json(done, {"config": config.to_dict(), "seconds": seconds})
    return seconds


def _same_config(saved: dict, settings: dict) -> bool:
    """Whether a saved config is ``settings``: read through :meth:`TrainConfig.from_dict`, so a config saved before
    an option existed (e.g. ``ema_decay``) counts as that option's default, and its finished folds are reused."""
    return TrainConfig.from_dict(saved).to_dict() == settings


def _training_key(config: TrainConfig) -> str:
    """A short stable folder name for a training config."""
    return hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True).encode()).hexdigest()[:12]


def _row(name: str, results: list[FoldResult], base_config: TrainConfig) -> dict:
    return {**_summed(name, results), "config": METHODS[name](base_config).to_dict()}


def _summed(name: str, results: list[FoldResult]) -> dict:
    """A table row's figures: the micro metrics of the folds' summed counts, each fold's Dice, the training time."""
    total = sum((r.counts for r in results), ConfusionCounts())
    return {
        "method": name,
        **{metric: fn(total) for metric, fn in METRICS.items()},
        "fold_dice": [compute_dice(r.counts) for r in results],
        "train_seconds": sum(r.seconds for r in results),
    }


def markdown_table(rows: Sequence[dict], reference: str = "full") -> str:
    """The rows as a Markdown table; with a ``reference`` row, each Dice also as a share of its Dice."""
    ref = next((row for row in rows if row["method"] == reference), None)
    lines = [
        "| method | Dice | IoU | PPV | Sens | Dice / full | fold Dice | train s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        share = "" if ref is None or not ref["dice"] else f"{100 * row['dice'] / ref['dice']:.0f}%"
        folds = " ".join(f"{dice:.2f}" for dice in row["fold_dice"])
        values = " | ".join(f"{row[key]:.3f}" for key in METRICS)
        lines.append(f"| {row['method']} | {values} | {share} | {folds} | {row['train_seconds']:.0f} |")
    return "\n".join(lines)
