"""Predicted pain (NRS 0-10) and the figures a clinician reads from it.

Pain combines the layers multiplicatively, as independent fractional reductions of the
patient's baseline score:

    NRS(t) = NRS0 * (1 - acute(t)) * (1 - sustained(t)) * (1 - placebo)

where ``acute`` is the relief while drug is present (Olofsen 2022 model), ``sustained``
the relief of a responder (Dahan 2011 model, 0 for a non-responder) and ``placebo`` the
placebo response (0 unless modelled). A patient is relieved while NRS is at least 30%
below baseline, the IMMPACT "much improved" threshold (Farrar 2001).

>>> import numpy as np
>>> t = np.array([0.0, 24.0, 48.0, 72.0])
>>> nrs = np.array([[8.0, 4.0, 5.0, 7.0]])
>>> time_to_relief_h(t, nrs, np.array([8.0]))
array([14.4])
>>> d, censored = relief_duration_days(t, nrs, np.array([8.0]), after_h=24.0)
>>> round(float(d[0]), 3), bool(censored[0])
(1.3, False)
"""

from __future__ import annotations

from typing import Final

import numpy as np
from numpy.typing import ArrayLike

from ketapain.errors import InvalidValueError
from ketapain.pharmacology._types import BoolArray, FloatArray

__all__ = [
    "NRS_MAX",
    "RELIEF_THRESHOLD",
    "predicted_nrs",
    "relief_duration_days",
    "time_to_relief_h",
]

NRS_MAX: Final = 10.0  # 11-point numerical rating scale, 0-10
RELIEF_THRESHOLD: Final = 0.30  # Farrar 2001: a 30% reduction is "much improved"


def check_baseline(baseline_nrs: ArrayLike) -> FloatArray:
    """Return baseline NRS as an array, or raise naming the field and range."""
    b = np.asarray(baseline_nrs, dtype=float)
    bad = ~np.isfinite(b) | (b < 0) | (b > NRS_MAX)
    if np.any(bad):
        raise InvalidValueError("baseline_nrs", "between 0 and 10", b[bad].flat[0])
    return b


def predicted_nrs(
    baseline_nrs: ArrayLike,
    *,
    acute_relief: ArrayLike = 0.0,
    sustained_relief: ArrayLike = 0.0,
    placebo_relief: ArrayLike = 0.0,
) -> FloatArray:
    """Return predicted NRS (0-10), broadcasting baseline (N, 1) against (N, T) layers."""
    b = check_baseline(baseline_nrs)
    out = (
        b
        * (1.0 - np.asarray(acute_relief, dtype=float))
        * (1.0 - np.asarray(sustained_relief, dtype=float))
        * (1.0 - np.asarray(placebo_relief, dtype=float))
    )
    return np.clip(out, 0.0, NRS_MAX)


def _threshold(baseline_nrs: ArrayLike, threshold: float) -> FloatArray:
    if not 0.0 < threshold < 1.0:
        raise InvalidValueError("threshold", "between 0 and 1 (exclusive)", threshold)
    return (1.0 - threshold) * check_baseline(baseline_nrs)


def _levels(baseline_nrs: ArrayLike, threshold: float, n_rows: int) -> FloatArray:
    """Relief level per row, shape (n_rows, 1); one baseline applies to every row."""
    level = _threshold(baseline_nrs, threshold).reshape(-1)
    if level.size not in (1, n_rows):
        raise InvalidValueError("baseline_nrs", f"one value or {n_rows} values", level.size)
    return np.broadcast_to(level, (n_rows,)).reshape(-1, 1).copy()


def time_to_relief_h(
    time_h: FloatArray,
    nrs: FloatArray,
    baseline_nrs: ArrayLike,
    *,
    threshold: float = RELIEF_THRESHOLD,
) -> FloatArray:
    """First time (h) NRS falls to ``(1 - threshold) * baseline``; NaN if it never does.

    ``nrs`` has shape (N, T); the crossing is interpolated linearly between samples.
    """
    level = _levels(baseline_nrs, threshold, nrs.shape[0])
    below = nrs <= level
    hit = below.any(axis=1)
    k = np.argmax(below, axis=1)
    out = np.full(nrs.shape[0], np.nan)
    rows = np.flatnonzero(hit)
    out[rows] = _crossing(time_h, nrs, level[:, 0], rows, k[rows])
    return out


def relief_duration_days(
    time_h: FloatArray,
    nrs: FloatArray,
    baseline_nrs: ArrayLike,
    *,
    after_h: float,
    threshold: float = RELIEF_THRESHOLD,
) -> tuple[FloatArray, BoolArray]:
    """Days after ``after_h`` (end of treatment) until NRS returns within ``threshold``.

    Relief ends at the last time NRS is at least ``threshold`` below baseline (the
    crossing is interpolated). A patient not relieved after ``after_h`` has duration 0.
    Returns ``(duration_days, censored)``: censored is true for patients still relieved
    at the last sample, whose duration is then a lower bound.
    """
    level = _levels(baseline_nrs, threshold, nrs.shape[0])
    relieved = (nrs <= level) & (time_h >= after_h)[None, :]
    any_relief = relieved.any(axis=1)
    last = nrs.shape[1] - 1 - np.argmax(relieved[:, ::-1], axis=1)
    censored = any_relief & (last == nrs.shape[1] - 1)
    end_h = np.full(nrs.shape[0], float(after_h))
    rows = np.flatnonzero(any_relief & ~censored)
    if rows.size:
        end_h[rows] = _crossing(time_h, nrs, level[:, 0], rows, last[rows] + 1)
    end_h[censored] = time_h[-1]
    return np.maximum(end_h - after_h, 0.0) / 24.0, censored


def _crossing(
    time_h: FloatArray, nrs: FloatArray, level: FloatArray, rows: np.ndarray, k: np.ndarray
) -> FloatArray:
    """Interpolated time where row ``rows`` crosses ``level`` between samples k-1 and k."""
    t = np.asarray(time_h, dtype=float)
    k = np.asarray(k)
    out: FloatArray = t[k].astype(float)
    inner = k > 0
    r, kk = rows[inner], k[inner]
    y0, y1 = nrs[r, kk - 1], nrs[r, kk]
    lv = level[r]
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(y1 != y0, (lv - y0) / (y1 - y0), 1.0)
    out[inner] = t[kk - 1] + np.clip(frac, 0.0, 1.0) * (t[kk] - t[kk - 1])
    return out
