"""The settings a project gets when its creator does not choose: one place, read by the service when it creates a
project, by the Slicer module (which leaves the loss, strategy and MC samples to it) and by ``covidal demo``.

This module imports no torch (the HTTP routes and the job config read it), so names are plain strings; the
service checks them like any creator's choice. They differ by device: a GPU trains a wider network on a finer
grid in the time a CPU takes for a small one. Why these values, and what is measured and what is not:
``server_training/BENCHMARKS.md``, "Served defaults" (the CUDA values are not measured: no GPU was lent).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class ServedDefaults(BaseModel):
    """A project's defaults on one device.

    Attributes:
        model_kind: the network (a 2D U-Net).
        loss: the training loss.
        strategy: how regions are ranked once a model exists.
        grid_k: regions per slice (a perfect square): the unit a suggestion asks about.
        mc_samples: MC-dropout samples per slice when ranking regions.
        regions_per_cycle: suggestions per cycle (the count a client asks for by default).
        image_size: side of the square grid slices are resized to for training and prediction.
        width: the U-Net's base channel count.
        steps: optimiser steps per training job.
        background_prior: background labelled without an answer on the answered slices (``intensity``: aerated
            lung, air and bone; ``none``).
    """

    model_config = ConfigDict(frozen=True)

    model_kind: str
    loss: str
    strategy: str
    grid_k: int
    mc_samples: int
    regions_per_cycle: int
    image_size: int
    width: int
    steps: int
    background_prior: str

    def training_settings(self) -> dict[str, Any]:
        """The project settings its training jobs read (``TrainJobConfig`` fields), recorded at creation."""
        return {
            "image_size": self.image_size,
            "width": self.width,
            "steps": self.steps,
            "background_prior": self.background_prior,
        }

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()


CPU_DEFAULTS = ServedDefaults(
    model_kind="unet",
    loss="cb-flip-rot",
    strategy="entropy",
    grid_k=16,
    mc_samples=4,
    regions_per_cycle=48,
    image_size=128,
    width=16,
    steps=100,
    background_prior="intensity",
)
CUDA_DEFAULTS = CPU_DEFAULTS.model_copy(update={"mc_samples": 8, "image_size": 256, "width": 32, "steps": 200})


def served_defaults(device: str) -> ServedDefaults:
    """The defaults for ``device`` (``"cpu"`` or ``"cuda"``; anything else gets the CPU's)."""
    return CUDA_DEFAULTS if device == "cuda" else CPU_DEFAULTS


# The options of a 2D project's 'clicks-to-3d' job (a 3D model from its answers) on each device, sized so that the
# CPU trains it in minutes: 48^3 patches instead of the paper's 96^3, 400 steps. BENCHMARKS.md, "From clicks to a
# 3D model", has the experiment that chose the mode; the CUDA values are not measured (no GPU was lent).
CLICKS_TO_3D_CPU: dict[str, Any] = {
    "mode": "rgs",
    "patch_size": [48, 48, 48],
    "batch_size": 2,
    "epochs": 16,
    "steps_per_epoch": 25,
}
CLICKS_TO_3D_CUDA: dict[str, Any] = {**CLICKS_TO_3D_CPU, "patch_size": [96, 96, 96], "epochs": 40}


def clicks_to_3d_defaults(device: str) -> dict[str, Any]:
    """The 'clicks-to-3d' job options for ``device`` (``"cuda"``, else the CPU's); a job's config overrides them."""
    return dict(CLICKS_TO_3D_CUDA if device == "cuda" else CLICKS_TO_3D_CPU)
