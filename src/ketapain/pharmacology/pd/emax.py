"""The sigmoid Emax (Hill) concentration-effect relation shared by every PD layer.

E = Emax * (C / C50)^gamma / (1 + (C / C50)^gamma), with C >= 0. Arrays broadcast, so
one C50 per subject of shape (N, 1) applies along a (N, T) concentration array.

>>> float(sigmoid_emax(121.0, c50_ng_per_ml=121.0))
0.5
>>> round(float(sigmoid_emax(300.0, c50_ng_per_ml=100.0, gamma=2.0, emax=0.8)), 3)
0.72
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ketapain.errors import InvalidValueError
from ketapain.pharmacology._types import FloatArray

__all__ = ["check_gamma", "check_positive", "check_probability", "sigmoid_emax"]


def check_positive(field: str, value: ArrayLike, *, high: float = 1.0e6) -> None:
    """Raise :class:`InvalidValueError` unless every value is finite, > 0 and <= high."""
    arr = np.asarray(value, dtype=float)
    bad = ~np.isfinite(arr) | (arr <= 0) | (arr > high)
    if np.any(bad):
        raise InvalidValueError(field, f"greater than 0 and at most {high:g}", arr[bad].flat[0])


def check_probability(field: str, value: float) -> None:
    """Raise :class:`InvalidValueError` unless ``value`` lies in [0, 1]."""
    if not (np.isfinite(value) and 0.0 <= value <= 1.0):
        raise InvalidValueError(field, "between 0 and 1", value)


def check_gamma(field: str, value: float) -> None:
    """Hill coefficients outside 0.1-10 are almost always unit or typing errors."""
    if not (np.isfinite(value) and 0.1 <= value <= 10.0):
        raise InvalidValueError(field, "between 0.1 and 10", value)


def sigmoid_emax(
    conc_ng_per_ml: ArrayLike,
    *,
    c50_ng_per_ml: ArrayLike,
    gamma: float = 1.0,
    emax: float = 1.0,
) -> FloatArray:
    """Return the sigmoid Emax effect of ``conc_ng_per_ml`` (any shape, broadcasting).

    Negative concentrations (round-off after a drug is gone) count as zero.
    """
    conc = np.maximum(np.asarray(conc_ng_per_ml, dtype=float), 0.0)
    c50 = np.asarray(c50_ng_per_ml, dtype=float)
    check_positive("c50_ng_per_ml", c50)
    check_gamma("gamma", gamma)
    ratio = (conc / c50) ** gamma
    return np.asarray(emax * ratio / (1.0 + ratio), dtype=float)
