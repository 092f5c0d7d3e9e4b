"""The one way configuration values are checked: each check names the field and raises :class:`ConfigError`.

``ConfigError`` is a :class:`~covidal.errors.CovidalError` (the CLI prints it in one line and exits 2; the
service answers 422) and a ``ValueError`` (what Python code expects of a bad argument).
"""

from __future__ import annotations

import math
import numbers

from covidal.errors import CovidalError


class ConfigError(CovidalError, ValueError):
    """A configuration value of the wrong type or out of range; the message names the field."""


def check_int(name: str, value: object, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` if it is an integer (not a bool: JSON ``true`` is no count) within the bounds, inclusive.

    Raises:
        ConfigError: naming ``name``, the bounds and the value.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not _within(value, minimum, maximum):
        raise ConfigError(f"{name} must be an integer{_bounds(minimum, maximum)}, got {value!r}")
    return int(value)


def check_real(name: str, value: object, minimum: float | None = None, maximum: float | None = None,
               above: float | None = None, below: float | None = None) -> float:
    """``value`` as a float if it is a finite real number (not a bool) within the bounds: ``minimum`` and
    ``maximum`` inclusive, ``above`` and ``below`` exclusive.

    Raises:
        ConfigError: naming ``name``, the bounds and the value.
    """
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not _within(value, minimum, maximum) or (above is not None and not value > above) \
            or (below is not None and not value < below):
        bounds = _bounds(minimum, maximum) + (f" above {above}" if above is not None else "") \
            + (f" below {below}" if below is not None else "")
        raise ConfigError(f"{name} must be a finite number{bounds}, got {value!r}")
    return float(value)


def _within(value, minimum, maximum) -> bool:
    return (minimum is None or value >= minimum) and (maximum is None or value <= maximum)


def _bounds(minimum, maximum) -> str:
    if minimum is not None and maximum is not None:
        return f" in [{minimum}, {maximum}]"
    if minimum is not None:
        return f" >= {minimum}"
    return "" if maximum is None else f" <= {maximum}"
