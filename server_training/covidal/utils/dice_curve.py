"""A Dice-against-annotation-effort curve as PNG bytes, the one drawing of the service's and the demo's curves."""

from __future__ import annotations

import io
from collections.abc import Sequence


def dice_curve_png(effort_seconds: Sequence[float], dice: Sequence[float], title: str, dice_label: str) -> bytes:
    """PNG of ``dice`` (y, in [0, 1], labelled ``dice_label``) against ``effort_seconds`` (x, shown in minutes)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4), dpi=100)
    axes = figure.subplots()
    axes.plot([seconds / 60 for seconds in effort_seconds], list(dice), marker="o")
    axes.set_xlabel("annotation effort (minutes)")
    axes.set_ylabel(dice_label)
    axes.set_ylim(0, 1)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
