"""The one way configuration values are checked: each check names the field and raises :class:`ConfigError`
(or the error class a caller passes, e.g. the store's ``Invalid``).

``ConfigError`` is a :class:`~covidal.errors.CovidalError` (the CLI prints it in one line and exits 2; the
service answers 422) and a ``ValueError`` (what Python code expects of a bad argument). JSON ``true`` is no
number here: a bool is refused wherever an integer or a real number is expected.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import fields
from enum import StrEnum
from typing import TypeVar

from covidal.errors import CovidalError

Config = TypeVar("Config")
Choice = TypeVar("Choice", bound=StrEnum)


class ConfigError(CovidalError, ValueError):
    """A configuration value of the wrong type or out of range; the message names the field."""


def is_integer(value: object) -> bool:
    """An integer (Python or NumPy) that is not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value: object) -> bool:
    """A finite real number that is not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def check_int(
    name: str,
    value: object,
    minimum: int | None = None,
    maximum: int | None = None,
    error: type[Exception] = ConfigError,
) -> int:
    """``value`` as an int if it is an integer within the bounds (inclusive).

    Raises:
        ``error``: naming ``name``, the bounds and the value.
    """
    if not is_integer(value) or not _within(value, minimum, maximum, None, None):
        raise error(f"{name} must be an integer{_bounds(minimum, maximum, None, None)}, got {value!r}")
    return int(value)


def check_real(
    name: str,
    value: object,
    minimum: float | None = None,
    maximum: float | None = None,
    above: float | None = None,
    below: float | None = None,
    error: type[Exception] = ConfigError,
) -> float:
    """``value`` as a float if it is a finite real number within the bounds: ``minimum`` and ``maximum``
    inclusive, ``above`` and ``below`` exclusive.

    Raises:
        ``error``: naming ``name``, the bounds and the value.
    """
    if not is_real(value) or not _within(value, minimum, maximum, above, below):
        raise error(f"{name} must be a finite number{_bounds(minimum, maximum, above, below)}, got {value!r}")
    return float(value)


def check_ints(
    name: str,
    values: object,
    count: int | None = None,
    minimum: int = 1,
    maximum: int | None = None,
    error: type[Exception] = ConfigError,
) -> tuple[int, ...]:
    """``values`` (a list or tuple) as a tuple of integers within the bounds, ``count`` of them when given.

    Raises:
        ``error``: naming ``name``, the bounds and the values.
    """
    items = tuple(values) if isinstance(values, list | tuple) else ()
    if (
        not items
        or not all(is_integer(v) and _within(v, minimum, maximum, None, None) for v in items)
        or (count is not None and len(items) != count)
    ):
        amount = "a list of" if count is None else str(count)
        raise error(f"{name} must be {amount} integers{_bounds(minimum, maximum, None, None)}, got {values!r}")
    return tuple(int(v) for v in items)


def check_choice(name: str, value: object, choices: type[Choice], error: type[Exception] = ConfigError) -> Choice:
    """``value`` as a member of the enum ``choices``.

    Raises:
        ``error``: naming ``name``, the value and the choices.
    """
    try:
        known = value in set(choices)
    except TypeError:  # unhashable, e.g. a JSON list
        known = False
    if not known:
        raise error(f"unknown {name} {value!r}; choose one of: {', '.join(choices)}")
    return choices(value)


def config_from_mapping(cls: type[Config], values: object, what: str) -> Config:
    """``cls(**values)`` of a dataclass whose ``__post_init__`` checks its values; missing keys take their
    defaults.

    Args:
        what: the config's name in messages, e.g. ``"model config"``.

    Raises:
        ConfigError: ``values`` is not a mapping or has keys ``cls`` does not have (both named), or as ``cls``.
    """
    if not isinstance(values, Mapping):
        raise ConfigError(f"{what} must be a JSON object, got {type(values).__name__}")
    known = {field.name for field in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown {what} keys {unknown}; allowed: {sorted(known)}")
    return cls(**values)


def _within(value, minimum, maximum, above, below) -> bool:
    return (
        (minimum is None or value >= minimum)
        and (maximum is None or value <= maximum)
        and (above is None or value > above)
        and (below is None or value < below)
    )


def _bounds(minimum, maximum, above, below) -> str:
    """`` >= 1``, `` in [0, 1)``, ... (inclusive bounds in square brackets, exclusive ones in round ones)."""
    low = None if minimum is None and above is None else ("[", minimum) if minimum is not None else ("(", above)
    high = None if maximum is None and below is None else ("]", maximum) if maximum is not None else (")", below)
    if low and high:
        return f" in {low[0]}{_number(low[1])}, {_number(high[1])}{high[0]}"
    if low:
        return f" {'>=' if low[0] == '[' else '>'} {_number(low[1])}"
    return f" {'<=' if high[0] == ']' else '<'} {_number(high[1])}" if high else ""


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"
