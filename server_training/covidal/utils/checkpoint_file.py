"""Reading a covidal checkpoint file: a dict saved with ``torch.save`` that names its format and version."""

from __future__ import annotations

from pathlib import Path

import torch

from covidal.errors import CovidalError


def read_checkpoint(path: Path, expected_format: str, version: int, what: str, how_to_train: str) -> dict:
    """Load the payload of ``path`` (on the CPU, tensors only) and check its format and version.

    Args:
        path: the ``.pt`` file.
        expected_format: the payload's ``format`` field, e.g. ``covidal.model3d``.
        version: the only version this code reads.
        what: for messages, e.g. ``3D model``.
        how_to_train: for messages, the command that makes such a file.

    Raises:
        CovidalError: missing file, unreadable bytes, another format, or another version.
    """
    path = Path(path)
    if not path.is_file():
        raise CovidalError(f"no trained {what} at {path}; train one with {how_to_train}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CovidalError(f"{path} is not a readable covidal model ({error.__class__.__name__})") from error
    if not isinstance(payload, dict) or payload.get("format") != expected_format:
        raise CovidalError(f"{path} is not a covidal {what} checkpoint (train one with {how_to_train})")
    if payload.get("version") != version:
        raise CovidalError(f"{path} has checkpoint version {payload.get('version')}; this covidal reads {version}")
    return payload
