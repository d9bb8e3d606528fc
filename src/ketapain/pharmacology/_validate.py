"""Checks shared by the pharmacology values: each raises InvalidValueError naming the field."""

from __future__ import annotations

import math

import numpy as np

from ketapain.errors import InvalidValueError
from ketapain.pharmacology._types import FloatArray


def finite_in_range(
    field: str,
    value: object,
    *,
    low: float,
    high: float,
    low_inclusive: bool = True,
) -> float:
    """Return ``value`` as float if it is finite and within [low, high] (or (low, high])."""
    allowed = f"{'at least' if low_inclusive else 'greater than'} {low:g} and at most {high:g}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidValueError(field, f"a number {allowed}", value)
    number = float(value)  # an int or a float, checked above
    too_low = number < low if low_inclusive else number <= low
    if not math.isfinite(number) or too_low or number > high:
        raise InvalidValueError(field, allowed, value)
    return number


def array_in_range(
    field: str,
    values: FloatArray,
    *,
    low: float,
    high: float,
    low_inclusive: bool = True,
) -> None:
    """Raise InvalidValueError if any element of ``values`` is not finite or out of range."""
    too_low = values < low if low_inclusive else values <= low
    bad = ~np.isfinite(values) | too_low | (values > high)
    if np.any(bad):
        first = float(values[np.argmax(bad)])
        word = "at least" if low_inclusive else "greater than"
        raise InvalidValueError(field, f"{word} {low:g} and at most {high:g}", first)
