"""One optimiser step of the teacher or the student.

The update is the gradient of ``clean loss + sum_i w_i * L_i(pseudo)``, where the clean loss is the mean combo
loss of an expert batch, the point loss of a batch of answered patches (clicks and background answers,
:func:`~covidal.noisyteacher.gradients.point_batch_gradient`), or their sum when a run has both:

* ``supervised`` (the teacher): the expert term only;
* ``semi``: uniform weights ``w_i = 1 / B``, so expert and pseudo-labelled batches count equally;
* ``rgs``, ``rgm``, ``rgsm`` and their ``-al`` variants: weights from the per-sample gradients.

The clean batches are also the validation batch of the re-weighting: their gradient is needed
for the update anyway, so RGS costs only the per-sample gradients of the pseudo-labelled
batch, and those give the pseudo-labelled term of the update too
(``sum_i w_i g_i``), so no second backward pass is made.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace

import torch
from torch import nn

from covidal.noisyteacher.gradients import GradientDict, batch_gradient, per_sample_gradients, point_batch_gradient
from covidal.noisyteacher.stream import PatchBatch
from covidal.noisyteacher.student_modes import SampleWeighting
from covidal.training.inference import autocast_for


@dataclass(frozen=True)
class StepRecord:
    """What one step did.

    Attributes:
        expert_loss: mean combo loss of the expert batch (None without one).
        pseudo_loss: ``sum_i w_i L_i`` of the pseudo-labelled batch (None without one).
        weights: ``w_i`` per pseudo-labelled patch (None without one).
        pseudo_names: the case of each pseudo-labelled patch.
        skipped: every weight was zero, so the pseudo-labelled batch did not count.
        answer_loss: point loss of the answered batch (None without one).
    """

    expert_loss: float | None
    pseudo_loss: float | None = None
    weights: tuple[float, ...] | None = None
    pseudo_names: tuple[str, ...] | None = None
    skipped: bool = False
    answer_loss: float | None = None

    @property
    def clean_loss(self) -> float:
        """The clean part of the step's loss: expert and answer losses summed."""
        return (self.expert_loss or 0.0) + (self.answer_loss or 0.0)


def _autocast(device: torch.device, amp: bool) -> AbstractContextManager:
    return autocast_for(device) if amp else nullcontext()


class TrainingStep:
    """Applies one update to ``model`` from an expert batch and, for a student, a pseudo-labelled batch.

    Args:
        model: the 3D network, on ``device``.
        optimiser: over ``model``'s trainable parameters.
        weighting: how pseudo-labelled patches are weighted; None for the teacher.
        device: where batches are moved to.
        amp: bf16 autocast on CUDA.
        chunk_size: per-sample gradients this many samples at a time (None: all).
    """

    def __init__(
        self,
        model: nn.Module,
        optimiser: torch.optim.Optimizer,
        weighting: SampleWeighting | None,
        device: torch.device,
        amp: bool = True,
        chunk_size: int | None = None,
    ) -> None:
        self.model = model
        self.optimiser = optimiser
        self.weighting = weighting
        self.device = device
        self.amp = amp
        self.chunk_size = chunk_size

    def __call__(
        self, expert: PatchBatch | None, pseudo: PatchBatch | None = None, answered: PatchBatch | None = None
    ) -> StepRecord:
        """Update the model once.

        Args:
            expert: a batch of expert-labelled patches (labels in {0, 1}), or None.
            pseudo: a batch of pseudo-labelled patches (a student's), or None (the teacher's).
            answered: a batch of answered patches (labels in {-1, 0, 1}: unanswered, background, click), or None.

        Raises:
            ValueError: no clean batch (expert or answered), or a pseudo-labelled batch given to the teacher or
                missing for a student.
        """
        if (pseudo is None) != (self.weighting is None):
            raise ValueError("a student step needs a pseudo-labelled batch and a teacher step must not get one")
        if expert is None and answered is None:
            raise ValueError("a step needs a clean batch: expert-labelled or answered patches")
        self.model.train()
        record, gradient = self._clean_term(expert, answered)
        if pseudo is not None:
            pseudo_gradient, record = self._pseudo_term(pseudo.to(self.device), gradient, record)
            if pseudo_gradient is not None:
                gradient = {name: gradient[name] + pseudo_gradient[name] for name in gradient}
        self._apply(gradient)
        return record

    def _clean_term(self, expert: PatchBatch | None, answered: PatchBatch | None) -> tuple[StepRecord, GradientDict]:
        """The losses and summed gradient of the clean batches (the re-weighting's validation gradient)."""
        terms: dict[str, tuple[torch.Tensor, GradientDict]] = {}
        with _autocast(self.device, self.amp):
            if expert is not None:
                expert = expert.to(self.device)
                terms["expert_loss"] = batch_gradient(self.model, expert.images, expert.labels)
            if answered is not None:
                answered = answered.to(self.device)
                terms["answer_loss"] = point_batch_gradient(self.model, answered.images, answered.labels)
        gradients = [gradient for _, gradient in terms.values()]
        summed = {name: sum(gradient[name] for gradient in gradients) for name in gradients[0]}
        record = StepRecord(**{"expert_loss": None, **{name: float(loss) for name, (loss, _) in terms.items()}})
        return record, summed

    def _pseudo_term(
        self, pseudo: PatchBatch, validation_gradient: GradientDict, record: StepRecord
    ) -> tuple[GradientDict | None, StepRecord]:
        """The weighted pseudo-labelled gradient (None when every weight is zero) and the updated record."""
        weighting = self.weighting
        assert weighting is not None
        batch_size = len(pseudo.names)
        with _autocast(self.device, self.amp):
            if weighting.needs_per_sample_gradients:
                losses, per_sample = per_sample_gradients(self.model, pseudo.images, pseudo.labels, self.chunk_size)
                weights = weighting(per_sample, validation_gradient, batch_size).to(losses.dtype)
                gradient = {
                    name: torch.tensordot(weights, g.to(weights.dtype), dims=1) for name, g in per_sample.items()
                }
                pseudo_loss = float((weights * losses).sum())
            else:
                weights = weighting(None, None, batch_size).to(self.device)
                mean_loss, gradient = batch_gradient(self.model, pseudo.images, pseudo.labels)
                pseudo_loss = float(mean_loss)
        skipped = not bool(weights.sum() > 0)
        record = replace(
            record, pseudo_loss=pseudo_loss, weights=tuple(weights.tolist()), pseudo_names=pseudo.names, skipped=skipped
        )
        return (None if skipped else gradient), record

    def _apply(self, gradient: GradientDict) -> None:
        for name, parameter in self.model.named_parameters():
            if parameter.requires_grad:
                parameter.grad = gradient[name].to(parameter.dtype)
        self.optimiser.step()
        self.optimiser.zero_grad(set_to_none=True)
