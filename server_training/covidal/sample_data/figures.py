"""The demo's figures: its held-out learning curve, and a prediction over the CT next to the truth."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from covidal.utils.dice_curve import dice_curve_png

# The lung window radiologists read COVID-19 infection in (level -600 HU, width 1500 HU).
WINDOW_HU = (-1350.0, 150.0)


@dataclass(frozen=True)
class HeldOutPoint:
    """The model after ``answers`` answers (``effort_seconds`` of effort) on the held-out case."""

    answers: int
    effort_seconds: float
    dice: float
    infected_ml: float


def curve_png(points: Sequence[HeldOutPoint], title: str) -> bytes:
    """PNG of the held-out Dice against annotation effort."""
    return dice_curve_png(
        [p.effort_seconds for p in points], [p.dice for p in points], title, "Dice on the held-out case"
    )


def overlay_png(hu: np.ndarray, predicted: np.ndarray, truth: np.ndarray, slice_index: int) -> bytes:
    """PNG of one axial slice twice: the prediction (red) over the CT, and the truth (green) over the CT.

    Args:
        hu: ``[J, I]`` CT in HU. predicted, truth: bool ``[J, I]``.
        slice_index: the slice's index k, for the title.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 5), dpi=100)
    for axes, mask, colour, name in zip(
        figure.subplots(1, 2), (predicted, truth), ((1.0, 0.1, 0.1), (0.1, 0.9, 0.1)), ("prediction", "truth")
    ):
        axes.imshow(hu, cmap="gray", vmin=WINDOW_HU[0], vmax=WINDOW_HU[1])
        overlay = np.zeros((*mask.shape, 4))
        overlay[mask] = (*colour, 0.45)
        axes.imshow(overlay)
        axes.set_title(f"{name}, slice {slice_index}: {int(mask.sum())} pixels")
        axes.axis("off")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
