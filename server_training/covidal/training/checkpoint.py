"""A run directory: ``model.pt`` (weights + the configs that built them) and ``train.json``."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch

from covidal.data.window import ImageKind
from covidal.errors import CovidalError
from covidal.models.slices.build import build_model
from covidal.models.slices.network import SegmentationNet
from covidal.training.train_config import TrainConfig
from covidal.utils.atomic import atomic_write
from covidal.utils.checkpoint_file import read_checkpoint

CHECKPOINT_FORMAT = "covidal.model2d"
CHECKPOINT_VERSION = 1
MODEL_FILE = "model.pt"
HISTORY_FILE = "train.json"


@dataclass
class LoadedRun:
    """A trained model ready for inference, with the configuration it was trained with."""

    model: SegmentationNet
    config: TrainConfig
    step: int
    val_dice: float | None
    image_kind: ImageKind | None = None  # what it was trained on; None: not known (a file from before it was saved)


def save_checkpoint(
    path: Path,
    model: SegmentationNet,
    config: TrainConfig,
    step: int,
    val_dice: float | None,
    image_kind: ImageKind | None,
) -> None:
    """Write weights and configs atomically (a crash never leaves a half-written model.pt): the model after
    ``step`` optimiser steps, with its validation Dice and the kind of images it was trained on (None: mixed or
    not known)."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "config": config.to_dict(),
        "step": step,
        "val_dice": val_dice,
        "image_kind": None if image_kind is None else str(image_kind),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_run(run_dir: Path, device: torch.device | str = "cpu") -> LoadedRun:
    """Load ``run_dir/model.pt`` (or a direct path to a ``.pt`` file).

    Raises:
        CovidalError: missing, unreadable, foreign or damaged checkpoint.
    """
    run_dir = Path(run_dir)
    path = run_dir if run_dir.is_file() else run_dir / MODEL_FILE
    payload = read_checkpoint(
        path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, "2D model", f"`covidal train ... --out {run_dir}`"
    )
    try:
        config = TrainConfig.from_dict(payload["config"])
        # The saved weights already hold any pretrained initialisation: do not read that file again.
        model = build_model(replace(config.model, pretrained=None))
        model.load_state_dict(payload["state_dict"])
        # Files written before training counted steps name it "epoch".
        step = payload["step"] if "step" in payload else payload["epoch"]
        kind = payload.get("image_kind")  # absent from files written before it was recorded
        run = LoadedRun(model, config, step, payload["val_dice"], None if kind is None else ImageKind(kind))
    except (KeyError, TypeError, ValueError, RuntimeError, CovidalError) as error:
        # Only the class: load_state_dict's message spans many lines.
        raise CovidalError(f"{path} is a damaged covidal checkpoint ({error.__class__.__name__})") from error
    run.model.to(device).eval()
    return run
