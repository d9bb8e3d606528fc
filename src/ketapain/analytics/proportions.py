"""Rates and means with their 95% confidence intervals.

>>> p = Proportion(8, 10)
>>> round(p.rate, 2), [round(x, 3) for x in wilson_interval(8, 10)]
(0.8, [0.49, 0.943])
>>> m = mean_ci([4.0, 5.0, 6.0])
>>> m.mean, round(m.ci_low, 3)
(5.0, 2.516)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
from scipy import stats

__all__ = ["Mean", "Proportion", "finite", "mean_ci", "wilson_interval"]

_Z95: Final = 1.959963984540054  # 97.5th percentile of the standard normal


def finite(value: float) -> float | None:
    """``value``, or None where it is NaN or infinite (JSON has no NaN)."""
    return float(value) if np.isfinite(value) else None


def wilson_interval(successes: int, n: int) -> tuple[float, float]:
    """Wilson score 95% interval of a proportion (Wilson 1927, J Am Stat Assoc 22:209)."""
    if n <= 0:
        return (float("nan"), float("nan"))
    p = successes / n
    z2 = _Z95**2
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = _Z95 * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    lo = 0.0 if successes <= 0 else max(centre - half, 0.0)
    hi = 1.0 if successes >= n else min(centre + half, 1.0)
    return (float(lo), float(hi))


@dataclass(frozen=True, slots=True)
class Proportion:
    """A rate with its Wilson 95% interval."""

    count: int
    n: int

    @property
    def rate(self) -> float:
        return self.count / self.n if self.n else float("nan")

    def as_dict(self) -> dict[str, float | int | None]:
        """JSON values (None, not NaN, for an empty sample)."""
        lo, hi = wilson_interval(self.count, self.n)
        return {
            "rate": finite(self.rate),
            "ci_low": finite(lo),
            "ci_high": finite(hi),
            "count": self.count,
            "n": self.n,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Mean:
    """A mean with its t-based 95% interval (NaN bounds for fewer than two values)."""

    mean: float
    ci_low: float
    ci_high: float
    n: int

    def as_dict(self) -> dict[str, float | int | None]:
        """JSON values (None, not NaN, where undefined)."""
        return {
            "mean": finite(self.mean),
            "ci_low": finite(self.ci_low),
            "ci_high": finite(self.ci_high),
            "n": self.n,
        }


def mean_ci(values: Sequence[float] | np.ndarray) -> Mean:
    """Mean of ``values`` with Student's t 95% interval."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return Mean(mean=float("nan"), ci_low=float("nan"), ci_high=float("nan"), n=0)
    m = float(x.mean())
    if x.size < 2:
        return Mean(mean=m, ci_low=float("nan"), ci_high=float("nan"), n=1)
    half = float(stats.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size))
    return Mean(mean=m, ci_low=m - half, ci_high=m + half, n=int(x.size))
