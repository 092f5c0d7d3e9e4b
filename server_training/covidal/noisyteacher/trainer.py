"""Train the 3D teacher (expert volumes only) or a student (expert + weighted pseudo-labelled volumes)."""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from covidal.errors import CovidalError
from covidal.models.unet3d import build_unet3d, final_layer_parameter_names
from covidal.noisyteacher.config import Train3DConfig
from covidal.noisyteacher.run import CONFIG_FILE, HISTORY_FILE, MODEL_FILE, STEPS_FILE, save_model
from covidal.noisyteacher.step import StepRecord, TrainingStep
from covidal.noisyteacher.stream import BatchStream
from covidal.noisyteacher.weighting import build_weighting, uses_pseudo_labels
from covidal.training.config import resolve_device
from covidal.utils.atomic import atomic_write_json
from covidal.volumes.patches import PatchSampler
from covidal.volumes.preprocess import PreparedCase

# Seeds of the two patch streams, offset from the run seed so they never share draws.
EXPERT_STREAM_OFFSET = 1
PSEUDO_STREAM_OFFSET = 2


@dataclass
class EpochSummary:
    """Means over one epoch's steps."""

    epoch: int
    expert_loss: float
    pseudo_loss: float | None
    skipped_steps: int
    seconds: float


@dataclass
class Train3DResult:
    run_dir: Path
    epochs: list[EpochSummary] = field(default_factory=list)


def train_3d(
    config: Train3DConfig,
    expert: Sequence[PreparedCase],
    out: Path,
    pseudo: Sequence[PreparedCase] = (),
    log: Callable[[str], None] | None = None,
) -> Train3DResult:
    """Train for ``config.epochs * config.steps_per_epoch`` steps and write the run folder.

    ``out`` receives ``config.json`` first, then after every epoch ``model.pt`` (atomic),
    ``history.json`` (epoch means and the mean weight each pseudo-labelled case received)
    and the epoch's lines of ``steps.jsonl`` (losses, weights and case names per step).

    Args:
        config: the run's configuration; ``config.mode`` decides teacher or student.
        expert: expert-labelled volumes (the validation batches of the re-weighting too).
        out: run folder.
        pseudo: pseudo-labelled volumes; required for every mode but ``supervised``.
        log: receives one line per epoch (default: printed).

    Raises:
        CovidalError: no expert volumes, pseudo-labelled volumes missing for a student
            (or given to the teacher), or a non-finite loss (diverged).
    """
    log = log or (lambda line: print(line, flush=True))
    _check_inputs(config, expert, pseudo)
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    model = build_unet3d(config.network).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    weighting = build_weighting(config.mode, final_layer_parameter_names(model), config.lam)
    step = TrainingStep(model, optimiser, weighting, device, amp=config.amp, chunk_size=config.chunk_size)
    expert_stream = _stream(expert, config, EXPERT_STREAM_OFFSET)
    pseudo_stream = _stream(pseudo, config, PSEUDO_STREAM_OFFSET) if weighting is not None else None

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / STEPS_FILE).unlink(missing_ok=True)
    atomic_write_json(out / CONFIG_FILE, {
        "config": config.to_dict(), "device": str(device),
        "expert_cases": [case.name for case in expert], "pseudo_cases": [case.name for case in pseudo],
    })
    result = Train3DResult(run_dir=out)
    weight_totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    started = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        epoch_started = time.perf_counter()
        records = [step(expert_stream.next(), None if pseudo_stream is None else pseudo_stream.next())
                   for _ in range(config.steps_per_epoch)]
        _check_finite(records, epoch)
        _accumulate_weights(records, weight_totals)
        summary = _summarise(epoch, records, time.perf_counter() - epoch_started)
        result.epochs.append(summary)
        save_model(out / MODEL_FILE, model, config, epoch)
        _append_steps(out / STEPS_FILE, epoch, records, config.steps_per_epoch)
        atomic_write_json(out / HISTORY_FILE, {
            "mode": config.mode.value, "epochs": [asdict(e) for e in result.epochs],
            "pseudo_weight_by_case": {name: {"mean": total / count, "patches": count}
                                      for name, (total, count) in sorted(weight_totals.items())},
        })
        log(_progress_line(summary, config.epochs, time.perf_counter() - started))
    return result


def _check_inputs(config: Train3DConfig, expert: Sequence[PreparedCase], pseudo: Sequence[PreparedCase]) -> None:
    if not expert:
        raise CovidalError("no expert-labelled volumes to train on")
    if uses_pseudo_labels(config.mode) and not pseudo:
        raise CovidalError(f"mode '{config.mode.value}' needs pseudo-labelled volumes (--pseudo-images/--pseudo-labels)")
    if not uses_pseudo_labels(config.mode) and pseudo:
        raise CovidalError("mode 'supervised' trains on expert volumes only; do not give it pseudo-labelled volumes")


def _stream(cases: Sequence[PreparedCase], config: Train3DConfig, offset: int) -> BatchStream:
    seed = config.seed * 10 + offset
    return BatchStream(cases, config.batch_size, PatchSampler(config.patch, seed=seed), seed=seed)


def _check_finite(records: Sequence[StepRecord], epoch: int) -> None:
    losses = [r.expert_loss for r in records] + [r.pseudo_loss for r in records if r.pseudo_loss is not None]
    if not all(math.isfinite(loss) for loss in losses):
        raise CovidalError(f"training diverged in epoch {epoch} (non-finite loss); try a lower --lr")


def _accumulate_weights(records: Sequence[StepRecord], totals: dict[str, list[float]]) -> None:
    for record in records:
        for name, weight in zip(record.pseudo_names or (), record.weights or ()):
            totals[name][0] += weight
            totals[name][1] += 1


def _summarise(epoch: int, records: Sequence[StepRecord], seconds: float) -> EpochSummary:
    pseudo = [r.pseudo_loss for r in records if r.pseudo_loss is not None]
    return EpochSummary(
        epoch=epoch,
        expert_loss=sum(r.expert_loss for r in records) / len(records),
        pseudo_loss=sum(pseudo) / len(pseudo) if pseudo else None,
        skipped_steps=sum(r.skipped for r in records),
        seconds=seconds,
    )


def _append_steps(path: Path, epoch: int, records: Sequence[StepRecord], steps_per_epoch: int) -> None:
    with open(path, "a") as handle:
        for index, record in enumerate(records, start=1):
            line = {"epoch": epoch, "step": (epoch - 1) * steps_per_epoch + index, **asdict(record)}
            handle.write(json.dumps(line) + "\n")


def _progress_line(summary: EpochSummary, epochs: int, elapsed: float) -> str:
    eta = elapsed / summary.epoch * (epochs - summary.epoch)
    pseudo = "" if summary.pseudo_loss is None else f", pseudo loss {summary.pseudo_loss:.4f}"
    skipped = f", {summary.skipped_steps} steps skipped (all weights 0)" if summary.skipped_steps else ""
    return (f"epoch {summary.epoch}/{epochs}: expert loss {summary.expert_loss:.4f}{pseudo}{skipped} "
            f"({summary.seconds:.1f} s, ETA {eta:.0f} s)")
