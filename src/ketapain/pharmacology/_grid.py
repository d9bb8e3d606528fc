"""The event grid: breakpoints where the input changes or an output is read.

Between consecutive breakpoints every input is constant, so the exact solution of a
linear system advances interval by interval. Input rates and jumps are stored per route
(IV, oral) and per kind (absolute mg, or per kg of the subject's weight) so that one grid
serves N subjects of different weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ketapain.errors import InvalidValueError
from ketapain.pharmacology._types import FloatArray, IntArray
from ketapain.pharmacology.compartments import InputRoute
from ketapain.pharmacology.schedules import Bolus, Infusion, OralDose, Schedule

ROUTES = (InputRoute.IV, InputRoute.ORAL)
# Steps whose lengths differ by less than this relative amount share one propagator. It
# absorbs the rounding noise of a computed time grid (eps x t, below 1e-12 of a 5-minute
# step over a year) while the time drift it allows stays below 1e-12 of the elapsed time.
_STEP_RELATIVE_TOLERANCE = 1e-12


@dataclass(frozen=True, slots=True)
class EventGrid:
    """Breakpoints and the piecewise-constant inputs between them.

    Attributes
    ----------
    t : ndarray, shape (K,)
        Sorted breakpoints, h.
    output_index : ndarray of int, shape (K,)
        Index into the requested times of each breakpoint, or -1.
    step_index : ndarray of int, shape (K-1,)
        Index into ``step_h`` of each interval's length.
    step_h : ndarray, shape (H,)
        Distinct interval lengths, h.
    rate_index : ndarray of int, shape (K-1,)
        Index into ``rates`` of each interval's inputs.
    rates : ndarray, shape (R, 2, 2)
        Distinct input rates by [route (IV, oral), kind (mg/h, mg/kg/h)].
    jumps : dict of int to ndarray (2, 2)
        Instantaneous inputs (mg, mg/kg) at a breakpoint index.
    """

    t: FloatArray
    output_index: IntArray
    step_index: IntArray
    step_h: FloatArray
    rate_index: IntArray
    rates: FloatArray
    jumps: dict[int, FloatArray]

    @property
    def zero_rate_index(self) -> int:
        """Index of the all-zero input row, or -1."""
        if self.rates.shape[0] == 0:  # a single breakpoint has no interval
            return -1
        zero = np.flatnonzero(~self.rates.reshape(len(self.rates), -1).any(axis=1))
        return int(zero[0]) if zero.size else -1


def check_times(times_h: FloatArray) -> FloatArray:
    """Return ``times_h`` as a float array if finite and strictly increasing."""
    times = np.asarray(times_h, dtype=np.float64)
    if times.ndim != 1 or times.size == 0:
        raise InvalidValueError("times_h", "a non-empty one-dimensional array", times.shape)
    if not np.all(np.isfinite(times)):
        raise InvalidValueError("times_h", "finite numbers", times[~np.isfinite(times)][0])
    if np.any(np.diff(times) <= 0):
        raise InvalidValueError("times_h", "strictly increasing", "a repeated or decreasing time")
    return times


def build_grid(schedule: Schedule, times_h: FloatArray, *, oral_zero_order_h: float) -> EventGrid:
    """Build the event grid of ``schedule`` read at ``times_h``."""
    segments: list[tuple[float, float, int, int, float]] = []  # start, end, route, kind, rate
    impulses: list[tuple[float, int, int, float]] = []  # time, route, kind, amount
    for dose in schedule.doses:
        if isinstance(dose, Infusion):
            kind = 1 if dose.rate_mg_per_kg_h is not None else 0
            rate = dose.rate_mg_per_kg_h if kind else dose.rate_mg_per_h
            segments.append((dose.start_h, dose.end_h, 0, kind, float(rate or 0.0)))
        elif isinstance(dose, Bolus | OralDose):
            route = 0 if isinstance(dose, Bolus) else 1
            kind = 1 if dose.dose_mg_per_kg is not None else 0
            amount = float((dose.dose_mg_per_kg if kind else dose.dose_mg) or 0.0)
            if route == 1 and oral_zero_order_h > 0:
                end = dose.time_h + oral_zero_order_h
                segments.append((dose.time_h, end, 1, kind, amount / oral_zero_order_h))
            else:
                impulses.append((dose.time_h, route, kind, amount))
    edges = [s[0] for s in segments] + [s[1] for s in segments] + [i[0] for i in impulses]
    t = np.unique(np.concatenate([times_h, np.asarray(edges, dtype=np.float64)]))
    k = t.size
    rate_grid = np.zeros((max(k - 1, 0), 2, 2))
    for start, end, route, kind, rate in segments:
        i0, i1 = np.searchsorted(t, [start, end])
        rate_grid[i0:i1, route, kind] += rate
    rates, rate_index = np.unique(rate_grid.reshape(-1, 4), axis=0, return_inverse=True)
    jumps: dict[int, FloatArray] = {}
    for time, route, kind, amount in impulses:
        i = int(np.searchsorted(t, time))
        jumps.setdefault(i, np.zeros((2, 2)))[route, kind] += amount
    output_index = np.full(k, -1, dtype=np.intp)
    output_index[np.searchsorted(t, times_h)] = np.arange(times_h.size)
    step_h, step_index = _group_steps(np.diff(t))
    return EventGrid(
        t=t,
        output_index=output_index,
        step_index=step_index,
        step_h=step_h,
        rate_index=rate_index.reshape(-1).astype(np.intp),
        rates=rates.reshape(-1, 2, 2) if rates.size else np.zeros((0, 2, 2)),
        jumps=jumps,
    )


def _group_steps(h: FloatArray) -> tuple[FloatArray, IntArray]:
    """Group interval lengths into bins of relative width 1e-12 on a log scale.

    Steps in one bin differ by less than the tolerance, whatever their number (bins do
    not chain); the bin's first step represents it.
    """
    if h.size == 0:
        return np.zeros(0), np.zeros(0, dtype=np.intp)
    keys = np.floor(np.log(h) / _STEP_RELATIVE_TOLERANCE).astype(np.int64)
    _, first, index = np.unique(keys, return_index=True, return_inverse=True)
    return h[first], index.reshape(-1).astype(np.intp)
