"""The one 2D training loop: Adam steps over endless shuffled passes of the training slices, resumable exactly.

``covidal train`` (its epochs are passes of steps), each cycle of ``covidal simulate`` and the service's
``train`` jobs all run a :class:`StepTrainer`, as the 3D jobs run :func:`covidal.noisyteacher.trainer.train_3d`.
A caller sees every step through ``on_step`` (to validate, keep the best model, report progress, checkpoint).

Its state (:meth:`StepTrainer.state_dict`) is what an exact resume needs: the weights, Adam's moments, the torch
random state (dropout), the loss's generator (the consistency losses' random transforms), the augmentation's
generator, the average of the weights (when it keeps one) and the step count.
The batch order is not stored: it is drawn again from the batch seed and the first ``step`` batches are skipped
(positions only, no data is moved). A trainer restored at step ``k`` therefore ends exactly where an
uninterrupted one ends.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from covidal.errors import CovidalError
from covidal.losses.base import Batch, LossResult, SegmentationLoss
from covidal.training.augment import BatchAugmentation
from covidal.training.dataset import TrainingSlices, batch_indices
from covidal.training.distributed import SINGLE_PROCESS, Shard
from covidal.training.ema import WeightAverage
from covidal.training.inference import autocast_for
from covidal.utils.atomic import atomic_write
from covidal.utils.checkpoint_file import read_checkpoint

# The name this file format had when only the service's jobs wrote it: their saved states still load.
STATE_FORMAT = "covidal.service.train-job-state"
STATE_VERSION = 1


@dataclass(frozen=True)
class StepReport:
    """What one step did: its number (from 1), total loss and each named term of the loss."""

    step: int
    loss: float
    parts: dict[str, float]


class StepTrainer:
    """Adam steps on ``data``, in the batch order of ``batch_seed``; see the module docstring.

    Args:
        model: trained in place, on ``device``; may be wrapped in DistributedDataParallel, then ``network`` is
            the wrapped model (whose weights the state holds).
        loss_fn: the training loss.
        data: the training slices; unlabelled pixels are -1 and ignored by the loss.
        batch_size: slices per step (per process under data-parallel training).
        learning_rate: Adam step size.
        batch_seed: seeds the order of the batches.
        device: where the batches go.
        shard: this process's part of every pass (data-parallel training), default the only process.
        loss_generator: the loss's own random generator, if it has one (saved and restored with the state).
        network: the model whose weights the state holds, when ``model`` is a wrapper; default ``model``.
        ema_decay: keep an exponential moving average of ``network``'s weights with this decay
            (:class:`~covidal.training.ema.WeightAverage`); it is then :attr:`predictor`. None: no average.
        augmentation: applied to every training batch (its generator is saved with the state); None: none.

    Raises:
        ValueError: no training slices.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: SegmentationLoss,
        data: TrainingSlices,
        batch_size: int,
        learning_rate: float,
        batch_seed: int,
        device: torch.device,
        shard: Shard = SINGLE_PROCESS,
        loss_generator: torch.Generator | None = None,
        network: nn.Module | None = None,
        ema_decay: float | None = None,
        augmentation: BatchAugmentation | None = None,
    ) -> None:
        if len(data) == 0:
            raise ValueError("no training slices: nothing to train on")
        self.model, self.loss_fn, self.data, self.device = model, loss_fn, data, device
        self.network = model if network is None else network
        self.optimiser = torch.optim.Adam(model.parameters(), lr=learning_rate)
        self.loss_generator = loss_generator
        self.average = None if ema_decay is None else WeightAverage(self.network, ema_decay)
        self.augmentation = augmentation
        self.step = 0
        self._batch_size, self._batch_seed, self._shard = batch_size, batch_seed, shard
        self._order = self._batch_order()

    def run(self, steps: int, on_step: Callable[[StepReport], None] | None = None) -> None:
        """Steps ``step + 1 .. steps`` (none when ``steps`` are done already), calling ``on_step`` after each.

        Raises:
            CovidalError: the loss is not finite (training diverged).
            Whatever ``on_step`` raises (e.g. a cancel), after the step it reports.
        """
        while self.step < steps:
            self.model.train()
            batch = self.data.batch(next(self._order), self.device)
            if self.augmentation is not None:
                batch = self.augmentation(batch)
            result = train_step(self.model, self.loss_fn, batch, self.optimiser, self.device)
            self.step += 1
            if self.average is not None:
                self.average.update(self.network, self.step)
            if on_step is not None:
                on_step(StepReport(self.step, result.total.item(), dict(result.parts)))

    @property
    def predictor(self) -> nn.Module:
        """The model to validate, save and predict with: the average of the weights if kept, else the network."""
        return self.network if self.average is None else self.average.module

    def state_dict(self) -> dict:
        """Everything an exact resume needs (CPU tensors), see the module docstring."""
        cuda = self.device.type == "cuda"
        return {
            "step": self.step,
            "model": {key: value.detach().cpu() for key, value in self.network.state_dict().items()},
            "optimizer": self.optimiser.state_dict(),
            "rng": torch.get_rng_state(),
            "loss_rng": None if self.loss_generator is None else self.loss_generator.get_state(),
            "cuda_rng": torch.cuda.get_rng_state(self.device) if cuda else None,
            "ema": None if self.average is None else self.average.state_dict(),
            "augment_rng": None if self.augmentation is None else self.augmentation.generator.get_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue from ``state`` (of :meth:`state_dict`): weights, Adam, random states, step and batch order."""
        self.network.load_state_dict(state["model"])
        self.optimiser.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        if self.loss_generator is not None and state["loss_rng"] is not None:
            self.loss_generator.set_state(state["loss_rng"])
        if state["cuda_rng"] is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        # States saved before the average and the augmentation existed have neither key.
        if self.average is not None:
            self.average.load_state_dict(state.get("ema") or state["model"])
        if self.augmentation is not None and state.get("augment_rng") is not None:
            self.augmentation.generator.set_state(state["augment_rng"])
        self.step = int(state["step"])
        self._order = self._batch_order()
        for _ in range(self.step):
            next(self._order)

    def save(self, path: Path, **extra: object) -> None:
        """Write the state and ``extra`` (e.g. a validation Dice) atomically: a crash keeps the previous file."""
        payload = {"format": STATE_FORMAT, "version": STATE_VERSION, **extra, **self.state_dict()}
        atomic_write(Path(path), lambda temporary: torch.save(payload, temporary))

    def restore(self, path: Path) -> dict:
        """Load the state saved at ``path``; returns the whole payload (with its ``extra`` values).

        Raises:
            CovidalError: a missing, unreadable or foreign file.
        """
        payload = read_checkpoint(Path(path), STATE_FORMAT, STATE_VERSION, "training state", "a 2D training")
        self.load_state_dict(payload)
        return payload

    def _batch_order(self) -> Iterator[torch.Tensor]:
        generator = torch.Generator().manual_seed(self._batch_seed)
        while True:
            yield from batch_indices(len(self.data), self._batch_size, generator, self._shard)


def train_step(
    model: nn.Module, loss_fn: SegmentationLoss, batch: Batch, optimiser: torch.optim.Optimizer, device: torch.device
) -> LossResult:
    """One optimiser step on ``batch`` (the model must already be in train mode).

    Raises:
        CovidalError: the loss is not finite (training diverged).
    """
    with autocast_for(device):
        result = loss_fn(model, batch)
    if not math.isfinite(result.total.item()):
        raise CovidalError("training diverged (non-finite loss); try a lower --lr")
    optimiser.zero_grad(set_to_none=True)
    result.total.backward()
    optimiser.step()
    return result
