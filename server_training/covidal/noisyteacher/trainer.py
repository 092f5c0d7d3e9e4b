"""Train the 3D teacher (expert volumes only) or a student (expert + weighted pseudo-labelled volumes); either may
also learn from answered volumes (a clinician's clicks and background answers, by the point loss), and a run may
have answered volumes instead of expert ones.

A resumable run (``train_3d(..., resumable=True)``, as the service's jobs use it) also keeps its
training state after every epoch and continues from it after an interruption, ending exactly as
an uninterrupted run would (see :func:`train_3d`).
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from covidal.errors import CovidalError
from covidal.models.volumes.unet import build_unet3d, final_layer_parameter_names
from covidal.noisyteacher.run import CONFIG_FILE, HISTORY_FILE, MODEL_FILE, STEPS_FILE, save_model
from covidal.noisyteacher.run_config import Train3DConfig
from covidal.noisyteacher.step import StepRecord, TrainingStep
from covidal.noisyteacher.stream import BatchStream
from covidal.noisyteacher.student_modes import build_weighting, uses_pseudo_labels
from covidal.training.train_config import resolve_device
from covidal.utils.atomic import atomic_write, atomic_write_json
from covidal.utils.checkpoint_file import read_checkpoint
from covidal.volumes.patches import AnsweredPatchSampler, PatchSampler
from covidal.volumes.preprocess import PreparedCase

# Seeds of the patch streams, offset from the run seed so they never share draws.
EXPERT_STREAM_OFFSET = 1
PSEUDO_STREAM_OFFSET = 2
ANSWERED_STREAM_OFFSET = 3

STATE_FILE = "training_state.pt"
STATE_FORMAT = "covidal.train3d-state"
STATE_VERSION = 1


@dataclass
class EpochSummary:
    """Means over one epoch's steps (a loss is None when the run has no such batches)."""

    epoch: int
    expert_loss: float | None
    pseudo_loss: float | None
    skipped_steps: int
    seconds: float
    answer_loss: float | None = None


@dataclass
class Train3DResult:
    run_dir: Path
    epochs: list[EpochSummary] = field(default_factory=list)


@dataclass(frozen=True)
class StepProgress:
    """Where a run is after one optimiser step (what ``train_3d``'s ``on_step`` receives).

    Attributes:
        step: steps done, ``1..steps`` (a resumed run counts the steps of its earlier epochs).
        steps: ``epochs * steps_per_epoch``.
        record: what this step did.
        epoch_done: the epoch's summary when this step ended an epoch whose files (``model.pt``, and the
            training state of a resumable run) are written; None otherwise.
    """

    step: int
    steps: int
    record: StepRecord
    epoch_done: EpochSummary | None = None


def train_3d(
    config: Train3DConfig,
    expert: Sequence[PreparedCase],
    out: Path,
    pseudo: Sequence[PreparedCase] = (),
    log: Callable[[str], None] | None = None,
    on_step: Callable[[StepProgress], None] | None = None,
    resumable: bool = False,
    answered: Sequence[PreparedCase] = (),
) -> Train3DResult:
    """Train for ``config.epochs * config.steps_per_epoch`` steps and write the run folder.

    ``out`` receives ``config.json`` first, then after every epoch ``model.pt`` (atomic),
    ``history.json`` (epoch means and the mean weight each pseudo-labelled case received)
    and the epoch's lines of ``steps.jsonl`` (losses, weights and case names per step).

    A resumable run also writes ``training_state.pt`` (atomic) at the end of every epoch, after the
    other files: the weights, Adam's state, the epoch summaries and the weights per case. Started again
    on a folder holding one, it continues after that epoch: ``steps.jsonl`` drops the lines of any later
    epoch, and the patch streams are replayed up to that step (patches are the only random draws of
    training: the network has no dropout), so the run ends with exactly the weights of an uninterrupted
    one. A run whose state holds every epoch returns at once.

    Args:
        config: the run's configuration; ``config.mode`` decides teacher or student.
        expert: expert-labelled volumes (the validation batches of the re-weighting too); may be empty when
            ``answered`` is not.
        out: run folder.
        pseudo: pseudo-labelled volumes; required for every mode but ``supervised``.
        log: receives one line per epoch (default: printed).
        on_step: called after every step (an exception it raises stops the run; the last finished
            epoch's files stay).
        resumable: keep the training state, and continue from the one in ``out`` if there is one.
        answered: volumes whose ``label`` is an answer label (:mod:`covidal.volumes.answer_labels`); every step
            adds the point loss of a batch of patches centred on their answers, and its gradient joins the
            validation gradient of the re-weighting.

    Raises:
        CovidalError: neither expert nor answered volumes, pseudo-labelled volumes missing for a student
            (or given to the teacher), a non-finite loss (diverged), or a training state in ``out``
            written with another configuration or other volumes (resumable runs).
    """
    log = log or (lambda line: print(line, flush=True))
    _check_inputs(config, expert, pseudo, answered)
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    model = build_unet3d(config.network).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    weighting = build_weighting(config.mode, final_layer_parameter_names(model), config.lam)
    step = TrainingStep(model, optimiser, weighting, device, amp=config.amp, chunk_size=config.chunk_size)
    expert_stream = _stream(expert, config, EXPERT_STREAM_OFFSET) if expert else None
    pseudo_stream = _stream(pseudo, config, PSEUDO_STREAM_OFFSET) if weighting is not None else None
    answered_stream = _answered_stream(answered, config) if answered else None
    streams = [stream for stream in (expert_stream, pseudo_stream, answered_stream) if stream is not None]

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cases = {"expert_cases": [case.name for case in expert], "pseudo_cases": [case.name for case in pseudo]}
    if answered:  # only then: a state saved before answered volumes existed still resumes
        cases["answered_cases"] = [case.name for case in answered]
    result = Train3DResult(run_dir=out)
    weight_totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    saved = _read_state(out / STATE_FILE, config, cases) if resumable else None
    if saved is None:
        (out / STEPS_FILE).unlink(missing_ok=True)
        atomic_write_json(out / CONFIG_FILE, {"config": config.to_dict(), "device": str(device), **cases})
        done = 0
    else:
        done = _restore_state(saved, model, optimiser, result, weight_totals)
        if done == config.epochs:
            log(f"already trained: {done}/{config.epochs} epochs in {out}")
            return result
        _keep_steps_of_epochs(out / STEPS_FILE, done)
        log(
            f"resuming after epoch {done}/{config.epochs}: replaying {done * config.steps_per_epoch} batches "
            "of the patch streams"
        )
        for _ in range(done * config.steps_per_epoch):
            for stream in streams:
                stream.next()
    steps = config.epochs * config.steps_per_epoch
    batch_streams = (expert_stream, pseudo_stream, answered_stream)  # in TrainingStep's argument order
    started = time.perf_counter()
    for epoch in range(done + 1, config.epochs + 1):
        epoch_started = time.perf_counter()
        records = []
        for index in range(1, config.steps_per_epoch + 1):
            records.append(step(*(None if stream is None else stream.next() for stream in batch_streams)))
            if on_step is not None and index < config.steps_per_epoch:
                on_step(StepProgress((epoch - 1) * config.steps_per_epoch + index, steps, records[-1]))
        _check_finite(records, epoch)
        _accumulate_weights(records, weight_totals)
        summary = _summarise(epoch, records, time.perf_counter() - epoch_started)
        result.epochs.append(summary)
        save_model(out / MODEL_FILE, model, config, epoch)
        _append_steps(out / STEPS_FILE, epoch, records, config.steps_per_epoch)
        atomic_write_json(
            out / HISTORY_FILE,
            {
                "mode": config.mode.value,
                "epochs": [asdict(e) for e in result.epochs],
                "pseudo_weight_by_case": {
                    name: {"mean": total / count, "patches": count}
                    for name, (total, count) in sorted(weight_totals.items())
                },
            },
        )
        if resumable:
            _write_state(out / STATE_FILE, config, cases, model, optimiser, result, weight_totals)
        log(_progress_line(summary, config.epochs, (time.perf_counter() - started) / (epoch - done)))
        if on_step is not None:
            on_step(StepProgress(epoch * config.steps_per_epoch, steps, records[-1], summary))
    return result


def _write_state(
    path: Path,
    config: Train3DConfig,
    cases: dict[str, list[str]],
    model: torch.nn.Module,
    optimiser: torch.optim.Optimizer,
    result: Train3DResult,
    weight_totals: dict[str, list[float]],
) -> None:
    """The training state after ``result.epochs[-1]``, atomically (a crash keeps the previous epoch's)."""
    payload = {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "config": config.to_dict(),
        **cases,
        "epochs": [asdict(e) for e in result.epochs],
        "weight_totals": {name: list(total) for name, total in weight_totals.items()},
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimiser.state_dict(),
    }
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def _read_state(path: Path, config: Train3DConfig, cases: dict[str, list[str]]) -> dict | None:
    """The saved training state, or None when the run has none yet.

    Raises:
        CovidalError: unreadable, or saved by a run with another configuration or other volumes.
    """
    if not path.is_file():
        return None
    saved = read_checkpoint(path, STATE_FORMAT, STATE_VERSION, "3D training state", "a resumable 3D run")
    if saved.get("config") != config.to_dict() or any(saved.get(key) != names for key, names in cases.items()):
        raise CovidalError(
            f"{path} was saved by a run with another configuration or other volumes; "
            "it cannot be resumed with these (start it in a new folder)"
        )
    return saved


def _restore_state(
    saved: dict,
    model: torch.nn.Module,
    optimiser: torch.optim.Optimizer,
    result: Train3DResult,
    weight_totals: dict[str, list[float]],
) -> int:
    """Load the weights, Adam's state, the summaries and weights per case; returns the epochs done."""
    model.load_state_dict(saved["model"])
    optimiser.load_state_dict(saved["optimizer"])
    result.epochs.extend(EpochSummary(**epoch) for epoch in saved["epochs"])
    for name, (total, count) in saved["weight_totals"].items():
        weight_totals[name] = [total, count]
    return len(result.epochs)


def _keep_steps_of_epochs(path: Path, epochs: int) -> None:
    """Drop the lines of ``steps.jsonl`` written after epoch ``epochs`` (by a run that stopped before its state)."""
    if not path.is_file():
        return
    lines = [line for line in path.read_text().splitlines() if line and json.loads(line)["epoch"] <= epochs]
    atomic_write(path, lambda tmp: tmp.write_text("".join(line + "\n" for line in lines)))


def _check_inputs(
    config: Train3DConfig,
    expert: Sequence[PreparedCase],
    pseudo: Sequence[PreparedCase],
    answered: Sequence[PreparedCase],
) -> None:
    if not expert and not answered:
        raise CovidalError("no expert-labelled or answered volumes to train on")
    if uses_pseudo_labels(config.mode) and not pseudo:
        raise CovidalError(
            f"mode '{config.mode.value}' needs pseudo-labelled volumes (--pseudo-images/--pseudo-labels)"
        )
    if not uses_pseudo_labels(config.mode) and pseudo:
        raise CovidalError("mode 'supervised' trains on expert volumes only; do not give it pseudo-labelled volumes")


def _stream(cases: Sequence[PreparedCase], config: Train3DConfig, offset: int) -> BatchStream:
    seed = config.seed * 10 + offset
    return BatchStream(cases, config.batch_size, PatchSampler(config.patch, seed=seed), seed=seed)


def _answered_stream(cases: Sequence[PreparedCase], config: Train3DConfig) -> BatchStream:
    seed = config.seed * 10 + ANSWERED_STREAM_OFFSET
    return BatchStream(cases, config.batch_size, AnsweredPatchSampler(config.patch.size, seed=seed), seed=seed)


def _check_finite(records: Sequence[StepRecord], epoch: int) -> None:
    losses = [r.clean_loss for r in records] + [r.pseudo_loss for r in records if r.pseudo_loss is not None]
    if not all(math.isfinite(loss) for loss in losses):
        raise CovidalError(f"training diverged in epoch {epoch} (non-finite loss); try a lower --lr")


def _accumulate_weights(records: Sequence[StepRecord], totals: dict[str, list[float]]) -> None:
    for record in records:
        for name, weight in zip(record.pseudo_names or (), record.weights or ()):
            totals[name][0] += weight
            totals[name][1] += 1


def _summarise(epoch: int, records: Sequence[StepRecord], seconds: float) -> EpochSummary:
    return EpochSummary(
        epoch=epoch,
        expert_loss=_mean(r.expert_loss for r in records),
        pseudo_loss=_mean(r.pseudo_loss for r in records),
        skipped_steps=sum(r.skipped for r in records),
        seconds=seconds,
        answer_loss=_mean(r.answer_loss for r in records),
    )


def _mean(values: Iterable[float | None]) -> float | None:
    """The mean of the values that are not None, or None when all are."""
    present = [value for value in values if value is not None]
    return sum(present) / len(present) if present else None


def _append_steps(path: Path, epoch: int, records: Sequence[StepRecord], steps_per_epoch: int) -> None:
    with open(path, "a") as handle:
        for index, record in enumerate(records, start=1):
            line = {"epoch": epoch, "step": (epoch - 1) * steps_per_epoch + index, **asdict(record)}
            handle.write(json.dumps(line) + "\n")


def _progress_line(summary: EpochSummary, epochs: int, seconds_per_epoch: float) -> str:
    eta = seconds_per_epoch * (epochs - summary.epoch)
    losses = [
        f"{name} loss {value:.4f}"
        for name, value in (
            ("expert", summary.expert_loss),
            ("answer", summary.answer_loss),
            ("pseudo", summary.pseudo_loss),
        )
        if value is not None
    ]
    skipped = f", {summary.skipped_steps} steps skipped (all weights 0)" if summary.skipped_steps else ""
    return f"epoch {summary.epoch}/{epochs}: {', '.join(losses)}{skipped} ({summary.seconds:.1f} s, ETA {eta:.0f} s)"
