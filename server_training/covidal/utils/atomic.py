"""Durable file writes: a reader never sees a half-written file."""

from __future__ import annotations

import json
import math
import os
import secrets
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp_path)`` then fsync and rename onto ``path``.

    The temporary file lives in the same folder (so the rename is atomic) and keeps
    ``path``'s suffixes, so writers that choose a format by extension still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes)
    tmp = path.parent / f".{path.stem}.tmp-{secrets.token_hex(8)}{suffix}"
    # os.open applies the user's umask; tempfile.mkstemp would make every output owner-only (0600).
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: Path, content: bytes) -> None:
    """Write ``content`` atomically."""
    atomic_write(path, lambda tmp: tmp.write_bytes(content))


def atomic_write_json(path: Path, data: object) -> None:
    """Write ``data`` as standard JSON, atomically (NaN and infinities become null)."""
    text = json.dumps(_nan_to_none(data), indent=2, allow_nan=False) + "\n"
    atomic_write(path, lambda tmp: tmp.write_text(text))


def _nan_to_none(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _nan_to_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nan_to_none(item) for item in value]
    return value
