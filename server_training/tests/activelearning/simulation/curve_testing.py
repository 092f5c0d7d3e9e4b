"""Learning curves built by hand for the plot and summary tests."""

from __future__ import annotations

from covidal.activelearning.simulation.curve import CycleRecord, RunCurve


def make_run(
    strategy: str,
    seed: int,
    points: list[tuple[float, float | None]],
    loss: str = "cb-flip-rot",
    full: float | None = 6000.0,
) -> RunCurve:
    """A run named ``<strategy>-<loss>-seed<seed>`` whose cycle ``c`` has ``(effort_seconds, dice) = points[c]``."""
    cycles = [
        CycleRecord(
            cycle=c,
            labelled_regions=c,
            labelled_slices=c,
            effort_seconds=effort,
            test={"dice": dice, "iou": 0.5, "ppv": 0.5, "sensitivity": 0.5, "specificity": 0.5},
            train_seconds=1.0,
            score_seconds=1.0,
        )
        for c, (effort, dice) in enumerate(points)
    ]
    return RunCurve(f"{strategy}-{loss}-seed{seed}", strategy, loss, seed, full, {"seed": seed}, cycles)
