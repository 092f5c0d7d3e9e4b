"""Student training modes and the sample weighting each one applies to a pseudo-labelled mini-batch.

A :class:`SampleWeighting` turns the batch's per-sample gradients (and the validation gradient) into ``[B]``
weights for ``ComboLoss(..., weights)``. The base class runs the shared pipeline (score, check, optional
rectification); subclasses write only their score. :func:`build_weighting` picks one by mode name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from enum import StrEnum

import torch
from torch import Tensor

from covidal.errors import CovidalError
from covidal.noisyteacher.gradients import GradientDict
from covidal.noisyteacher.sample_weights import (
    check_lambda,
    combine_weights,
    rectify,
    rgm_weights,
    rgs_weights,
)


class StudentMode(StrEnum):
    """How the student is trained.

    ``supervised``: expert-labelled data only. ``semi``: expert + pseudo-labelled data, uniform weights.
    ``rgs`` / ``rgm`` / ``rgsm``: pseudo-labelled samples weighted by trustworthiness, informativeness, or
    both. ``-al`` modes additionally rectify: only samples weighted at least ``1/C_p`` count.
    """

    SUPERVISED = "supervised"
    SEMI = "semi"
    RGS = "rgs"
    RGM = "rgm"
    RGSM = "rgsm"
    RGS_AL = "rgs-al"
    RGSM_AL = "rgsm-al"


def parse_student_mode(mode: object) -> StudentMode:
    """``mode`` (a :class:`StudentMode` or its string value) as a StudentMode.

    Raises:
        CovidalError: listing the valid modes.
    """
    try:
        return StudentMode(mode)
    except ValueError:
        choices = ", ".join(StudentMode)
        raise CovidalError(f"unknown student mode {mode!r}; choose one of: {choices}") from None


class SampleWeighting(ABC):
    """Weights ``[B]`` for a pseudo-labelled batch of ``B`` samples.

    Attributes:
        needs_per_sample_gradients: whether :meth:`score` reads the per-sample gradients.
        needs_validation_gradient: whether :meth:`score` reads the validation (expert batch) gradient.
        rectified: whether the score is rectified (:func:`~covidal.noisyteacher.sample_weights.rectify`).
    """

    needs_per_sample_gradients: bool = True
    needs_validation_gradient: bool = False

    def __init__(self, rectified: bool = False) -> None:
        self.rectified = rectified

    def __call__(
        self, per_sample: GradientDict | None, validation_gradient: GradientDict | None, batch_size: int
    ) -> Tensor:
        """``[batch_size]`` weights: the score, rectified if :attr:`rectified`.

        Args:
            per_sample: ``{name: [B, *shape]}`` per-sample gradients (None if not needed).
            validation_gradient: ``{name: [*shape]}`` gradient of the mean validation loss (None if not needed).
            batch_size: ``B``.

        Raises:
            ValueError: if a needed gradient is missing, or the score is not ``[batch_size]``.
        """
        if self.needs_per_sample_gradients and per_sample is None:
            raise ValueError(f"{type(self).__name__} needs per-sample gradients")
        if self.needs_validation_gradient and validation_gradient is None:
            raise ValueError(f"{type(self).__name__} needs the validation gradient")
        score = self.score(per_sample, validation_gradient, batch_size)
        if score.shape != (batch_size,):
            raise ValueError(f"weights are {tuple(score.shape)} for a batch of {batch_size} samples")
        return rectify(score) if self.rectified else score

    @abstractmethod
    def score(
        self, per_sample: GradientDict | None, validation_gradient: GradientDict | None, batch_size: int
    ) -> Tensor:
        """Unrectified ``[batch_size]`` weights (the arguments needed are not None)."""


class UniformWeighting(SampleWeighting):
    """Every sample ``1/B`` (plain semi-supervised training), as a float32 CPU tensor."""

    needs_per_sample_gradients = False

    def score(
        self, per_sample: GradientDict | None, validation_gradient: GradientDict | None, batch_size: int
    ) -> Tensor:
        return torch.full((batch_size,), 1.0 / batch_size)


class RGSWeighting(SampleWeighting):
    """Trustworthiness: learning-to-reweight against the validation gradient (:func:`rgs_weights`)."""

    needs_validation_gradient = True

    def score(
        self, per_sample: GradientDict | None, validation_gradient: GradientDict | None, batch_size: int
    ) -> Tensor:
        return rgs_weights(per_sample, validation_gradient)


class RGMWeighting(SampleWeighting):
    """Informativeness: each sample's final-layer gradient norm (:func:`rgm_weights`)."""

    def __init__(self, final_layer_names: Sequence[str], rectified: bool = False) -> None:
        """Raises: ValueError if ``final_layer_names`` is empty."""
        super().__init__(rectified)
        if not final_layer_names:
            raise ValueError("RGM needs the names of the final layer's parameters")
        self.final_layer_names = tuple(final_layer_names)

    def score(
        self, per_sample: GradientDict | None, validation_gradient: GradientDict | None, batch_size: int
    ) -> Tensor:
        return rgm_weights(per_sample, self.final_layer_names)


class RGSMWeighting(RGMWeighting):
    """``lam * RGS + (1 - lam) * RGM`` (:func:`combine_weights`)."""

    needs_validation_gradient = True

    def __init__(self, final_layer_names: Sequence[str], lam: float = 0.5, rectified: bool = False) -> None:
        """Raises: ValueError if ``final_layer_names`` is empty or ``lam`` is not in ``[0, 1]``."""
        super().__init__(final_layer_names, rectified)
        self.lam = check_lambda(lam)

    def score(
        self, per_sample: GradientDict | None, validation_gradient: GradientDict | None, batch_size: int
    ) -> Tensor:
        rgs = rgs_weights(per_sample, validation_gradient)
        return combine_weights(rgs, rgm_weights(per_sample, self.final_layer_names), self.lam)


WEIGHTINGS: dict[StudentMode, Callable[[Sequence[str], float], SampleWeighting]] = {
    StudentMode.SEMI: lambda names, lam: UniformWeighting(),
    StudentMode.RGS: lambda names, lam: RGSWeighting(),
    StudentMode.RGM: lambda names, lam: RGMWeighting(names),
    StudentMode.RGSM: lambda names, lam: RGSMWeighting(names, lam),
    StudentMode.RGS_AL: lambda names, lam: RGSWeighting(rectified=True),
    StudentMode.RGSM_AL: lambda names, lam: RGSMWeighting(names, lam, rectified=True),
}


def uses_pseudo_labels(mode: StudentMode | str) -> bool:
    """Whether ``mode`` trains on pseudo-labelled data (every mode but ``supervised``).

    Raises:
        CovidalError: on an unknown mode, listing the valid ones.
    """
    return parse_student_mode(mode) is not StudentMode.SUPERVISED


def build_weighting(
    mode: StudentMode | str, final_layer_names: Sequence[str], lam: float = 0.5
) -> SampleWeighting | None:
    """The weighting of ``mode``, or None for ``supervised`` (no pseudo-labelled data to weight).

    Args:
        mode: a :class:`StudentMode` or its string value.
        final_layer_names: the final layer's parameter names (used by the RGM modes).
        lam: the RGS share in the ``rgsm`` modes, in ``[0, 1]`` (checked for every mode).

    Raises:
        CovidalError: on an unknown mode, listing the valid ones.
        ValueError: if ``lam`` is not in ``[0, 1]``.
    """
    mode = parse_student_mode(mode)
    lam = check_lambda(lam)
    if mode is StudentMode.SUPERVISED:
        return None
    return WEIGHTINGS[mode](final_layer_names, lam)
