"""Loading the volumes a 3D command is pointed at, with one line of progress per volume."""

from __future__ import annotations

from pathlib import Path

from covidal.data.window import HUWindow
from covidal.volumes.cases import CaseSource, list_volume_cases
from covidal.volumes.preprocess import PreparedCase, prepare_case


def load_cases(images: Path, labels: Path | None, spacing: tuple[float, float, float], window: HUWindow,
               what: str) -> list[tuple[CaseSource, PreparedCase]]:
    """Every case of ``images`` (labels matched by name), read and resampled to ``spacing``.

    Raises:
        CovidalError: anything :func:`list_volume_cases` or :func:`prepare_case` refuses.
    """
    sources = list_volume_cases(images, labels)
    print(f"{what}: {len(sources)} volumes from {images}", flush=True)
    return [(source, prepare_case(source, spacing, window)) for source in sources]
