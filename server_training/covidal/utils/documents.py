"""The JSON documents covidal writes (points, annotations, learning curves): an object that names its format
and version, e.g. ``{"format": "covidal.points", "version": 1, ...}``, read back with one set of checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from covidal.errors import CovidalError
from covidal.validation import is_integer


def read_document(path: Path, format_name: str, version: int, what: str, how_to_make: str) -> dict[str, Any]:
    """The JSON object in the file ``path``, checked by :func:`check_document`.

    Args:
        what: the file in messages, e.g. ``"points file"``.
        how_to_make: advice when the file is missing, e.g. ``"check the path"``.

    Raises:
        CovidalError: naming ``path``: missing, not a file, unreadable, not JSON, another format or version.
    """
    path = Path(path)
    if not path.is_file():
        raise CovidalError(f"{what} {path} does not exist or is not a file; {how_to_make}")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CovidalError(f"{what} {path} cannot be read or is not valid JSON: {error}") from None
    return check_document(document, format_name, version, f"{what} {path}")


def check_document(document: object, format_name: str, version: int, source: str) -> dict[str, Any]:
    """``document`` if it is a JSON object of ``format_name`` and ``version``.

    Raises:
        CovidalError: naming ``source``, the format or the version found.
    """
    if not isinstance(document, dict) or document.get("format") != format_name:
        raise CovidalError(
            f'{source} is not a {format_name} document: expected a JSON object with "format": "{format_name}"'
        )
    found = document.get("version")
    if not is_integer(found) or found != version:
        raise CovidalError(f"{source} has {format_name} version {found!r}; this program reads version {version}")
    return document
