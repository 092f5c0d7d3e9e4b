"""A 3D run folder: ``model.pt`` (weights + the config that built them), ``config.json``,
``history.json`` (one entry per epoch) and ``steps.jsonl`` (one line per step, with the weights).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from covidal.errors import CovidalError
from covidal.models.volumes.unet import build_unet3d
from covidal.noisyteacher.run_config import Train3DConfig
from covidal.utils.atomic import atomic_write
from covidal.utils.checkpoint_file import read_checkpoint

CHECKPOINT_FORMAT = "covidal.model3d"
CHECKPOINT_VERSION = 1
MODEL_FILE = "model.pt"
CONFIG_FILE = "config.json"
HISTORY_FILE = "history.json"
STEPS_FILE = "steps.jsonl"


@dataclass
class Loaded3DRun:
    """A trained 3D model ready for inference, with the configuration it was trained with."""

    model: nn.Module
    config: Train3DConfig
    epoch: int


def save_model(path: Path, model: nn.Module, config: Train3DConfig, epoch: int) -> None:
    """Write weights and config atomically (a crash never leaves a half-written model.pt)."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "config": config.to_dict(),
        "epoch": epoch,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_model(run_dir: Path, device: torch.device | str = "cpu") -> Loaded3DRun:
    """Load ``run_dir/model.pt`` (or a direct path to a ``.pt`` file) in eval mode on ``device``.

    Raises:
        CovidalError: missing, unreadable, foreign (e.g. a 2D model) or damaged checkpoint.
    """
    run_dir = Path(run_dir)
    path = run_dir if run_dir.is_file() else run_dir / MODEL_FILE
    payload = read_checkpoint(
        path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, "3D model", f"`covidal train-3d ... --out {run_dir}`"
    )
    try:
        config = Train3DConfig.from_dict(payload["config"])
        model = build_unet3d(config.network)
        model.load_state_dict(payload["state_dict"])
        loaded = Loaded3DRun(model=model, config=config, epoch=int(payload["epoch"]))
    except (KeyError, TypeError, ValueError, RuntimeError, CovidalError) as error:
        raise CovidalError(f"{path} is a damaged covidal checkpoint ({error.__class__.__name__})") from error
    loaded.model.to(device).eval()
    return loaded
