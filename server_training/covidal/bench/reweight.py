"""Time of one training step per student mode, against the plain supervised step, same batch and model.

Every mode starts from the same initial weights and receives the same expert and
pseudo-labelled batches. Modes are timed in rounds (every mode once per round, the order
rotating between rounds) so that machine noise hits all alike; the figure per mode is the
median over rounds and the ratio is to the median of ``supervised`` in the same run.
"""

from __future__ import annotations

import copy
import platform
import statistics
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from covidal.models.volumes.unet import (
    UNet3DConfig,
    build_unet3d,
    count_trainable_parameters,
    final_layer_parameter_names,
)
from covidal.noisyteacher.step import TrainingStep
from covidal.noisyteacher.stream import PatchBatch
from covidal.noisyteacher.student_modes import StudentMode, build_weighting
from covidal.validation import check_int


@dataclass(frozen=True)
class ReweightBenchConfig:
    """What is timed.

    Attributes:
        patch: patch size ``(D, H, W)``.
        batch_size: patches per batch (the student also gets a pseudo-labelled batch of this size).
        network: the 3D U-Net's shape.
        modes: modes to time; ``supervised`` is always included (the reference).
        rounds: timed rounds after ``warmup`` untimed ones.
        amp: bf16 autocast on CUDA.
        seed: seeds the weights and the batches.
    """

    patch: tuple[int, int, int] = (96, 96, 96)
    batch_size: int = 4
    network: UNet3DConfig = field(default_factory=UNet3DConfig)
    modes: tuple[StudentMode, ...] = tuple(StudentMode)
    rounds: int = 5
    warmup: int = 2
    amp: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        check_int("batch size", self.batch_size, minimum=1)
        check_int("rounds", self.rounds, minimum=1)
        check_int("warmup", self.warmup, minimum=0)
        if len(self.patch) != 3 or min(self.patch) < 1:
            raise ValueError(f"patch must be three sizes of at least 1, got {self.patch}")
        modes = tuple(StudentMode(m) for m in self.modes)
        if StudentMode.SUPERVISED not in modes:
            modes = (StudentMode.SUPERVISED, *modes)
        object.__setattr__(self, "modes", modes)


@dataclass(frozen=True)
class ModeTiming:
    """Seconds per step of one mode; ``ratio`` is to the supervised step of the same run."""

    mode: StudentMode
    seconds: tuple[float, ...]
    median_s: float
    ratio: float
    peak_memory_gib: float | None


@dataclass(frozen=True)
class ReweightBenchResult:
    config: ReweightBenchConfig
    device: str
    parameters: int
    timings: tuple[ModeTiming, ...]


def make_batch(config: ReweightBenchConfig, seed: int) -> PatchBatch:
    """A batch of random CT-like patches with a random ellipsoidal lesion each (labels where it is)."""
    rng = np.random.default_rng(seed)
    depth, height, width = config.patch
    grid = np.stack(np.meshgrid(*(np.linspace(-1, 1, n) for n in config.patch), indexing="ij"))
    images, labels = [], []
    for _ in range(config.batch_size):
        centre, radii = rng.uniform(-0.5, 0.5, 3), rng.uniform(0.15, 0.4, 3)
        lesion = (((grid - centre[:, None, None, None]) / radii[:, None, None, None]) ** 2).sum(0) <= 1
        image = rng.normal(0.2, 0.05, (depth, height, width)) + 0.4 * lesion
        images.append(image[None].astype(np.float32))
        labels.append(lesion.astype(np.int64))
    return PatchBatch(
        torch.from_numpy(np.stack(images)),
        torch.from_numpy(np.stack(labels)),
        tuple(f"patch{i}" for i in range(config.batch_size)),
    )


def bench_reweight(config: ReweightBenchConfig, device: torch.device) -> ReweightBenchResult:
    """Time one training step of every mode in ``config.modes`` on ``device``."""
    torch.manual_seed(config.seed)
    initial = build_unet3d(config.network)
    expert, pseudo = make_batch(config, config.seed), make_batch(config, config.seed + 1)
    steps = {mode: _training_step(initial, mode, config, device) for mode in config.modes}
    for _ in range(config.warmup):
        for mode in config.modes:
            _time_step(steps[mode], mode, expert, pseudo, device)
    seconds: dict[StudentMode, list[float]] = {mode: [] for mode in config.modes}
    peaks: dict[StudentMode, float | None] = {}
    for round_index in range(config.rounds):
        shift = round_index % len(config.modes)
        for mode in config.modes[shift:] + config.modes[:shift]:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            seconds[mode].append(_time_step(steps[mode], mode, expert, pseudo, device))
            peaks[mode] = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    reference = statistics.median(seconds[StudentMode.SUPERVISED])
    timings = tuple(
        ModeTiming(
            mode,
            tuple(seconds[mode]),
            statistics.median(seconds[mode]),
            statistics.median(seconds[mode]) / reference,
            peaks[mode],
        )
        for mode in config.modes
    )
    return ReweightBenchResult(config, describe_device(device), count_trainable_parameters(initial), timings)


def _training_step(
    initial: torch.nn.Module, mode: StudentMode, config: ReweightBenchConfig, device: torch.device
) -> TrainingStep:
    model = copy.deepcopy(initial).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-4)
    weighting = build_weighting(mode, final_layer_parameter_names(model))
    return TrainingStep(model, optimiser, weighting, device, amp=config.amp)


def _time_step(
    step: TrainingStep, mode: StudentMode, expert: PatchBatch, pseudo: PatchBatch, device: torch.device
) -> float:
    _synchronise(device)
    started = time.perf_counter()
    step(expert, None if step.weighting is None else pseudo)
    _synchronise(device)
    return time.perf_counter() - started


def _synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads)"


def markdown_table(result: ReweightBenchResult) -> str:
    """The timings as a Markdown table, one row per mode."""
    memory = any(t.peak_memory_gib is not None for t in result.timings)
    header = "| mode | s / step (median) | ratio to supervised |" + (" peak GiB |" if memory else "")
    rule = "|---|---:|---:|" + ("---:|" if memory else "")
    rows = [
        f"| {t.mode.value} | {t.median_s:.4f} | {t.ratio:.2f}x |" + (f" {t.peak_memory_gib:.2f} |" if memory else "")
        for t in result.timings
    ]
    return "\n".join([header, rule, *rows])


def format_config(result: ReweightBenchResult) -> str:
    config = result.config
    patch = "x".join(str(n) for n in config.patch)
    return (
        f"{result.device}; batch {config.batch_size}, patch {patch}, channels {list(config.network.channels)} "
        f"({result.parameters:,} parameters), bf16 autocast {'on' if config.amp and 'CPU' not in result.device else 'off'}, "
        f"{config.rounds} rounds after {config.warmup} warm-up"
    )


def as_dict(result: ReweightBenchResult) -> dict:
    return {
        "device": result.device,
        "parameters": result.parameters,
        "config": {
            "patch": list(result.config.patch),
            "batch_size": result.config.batch_size,
            "channels": list(result.config.network.channels),
            "rounds": result.config.rounds,
            "warmup": result.config.warmup,
            "amp": result.config.amp,
            "seed": result.config.seed,
        },
        "timings": [
            {
                "mode": t.mode.value,
                "seconds": list(t.seconds),
                "median_s": t.median_s,
                "ratio": t.ratio,
                "peak_memory_gib": t.peak_memory_gib,
            }
            for t in result.timings
        ],
    }
