"""Building a config dataclass from a JSON object, refusing keys it does not have."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import TypeVar

from covidal.errors import CovidalError

Config = TypeVar("Config")


def config_from_mapping(cls: type[Config], values: object, what: str) -> Config:
    """``cls(**values)``; missing keys take their defaults.

    Args:
        cls: a dataclass whose ``__post_init__`` validates the values.
        values: the JSON object.
        what: the config's name in messages, e.g. ``"model config"``.

    Raises:
        CovidalError: ``values`` is not a mapping or has keys ``cls`` does not have (both named).
    """
    if not isinstance(values, Mapping):
        raise CovidalError(f"{what} must be a JSON object, got {type(values).__name__}")
    known = {field.name for field in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise CovidalError(f"unknown {what} keys {unknown}; allowed: {sorted(known)}")
    return cls(**values)
