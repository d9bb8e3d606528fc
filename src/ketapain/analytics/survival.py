"""Kaplan-Meier estimation of time-to-event data with right censoring.

The product-limit estimator S(t) = prod over event times t_i <= t of (1 - d_i / n_i),
with Greenwood's variance and the log(-log) 95% confidence interval (Kalbfleisch &
Prentice 2002, The Statistical Analysis of Failure Time Data, 2nd ed., section 1.4), the
interval lifelines and R's survival package report by default.

>>> km = kaplan_meier(np.array([1.0, 2, 2, 3, 4]), np.array([True, True, False, True, False]))
>>> km.time.tolist(), km.survival.round(3).tolist()
([0.0, 1.0, 2.0, 3.0, 4.0], [1.0, 0.8, 0.6, 0.3, 0.3])
>>> km.median()
3.0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from ketapain.errors import InvalidValueError
from ketapain.pharmacology._types import BoolArray, FloatArray

__all__ = ["KaplanMeier", "kaplan_meier"]

_Z95: Final = 1.959963984540054  # 97.5th percentile of the standard normal


@dataclass(frozen=True, slots=True)
class KaplanMeier:
    """Step function: survival holds from ``time[i]`` until the next time.

    Times are 0, every event time, and the last follow-up time when it is later than the
    last event (the curve carries on, flat, to the end of observation).
    """

    time: FloatArray
    survival: FloatArray
    ci_low: FloatArray
    ci_high: FloatArray
    at_risk: FloatArray
    n: int

    def median(self) -> float | None:
        """First time survival drops to 0.5 or below; None if it never does."""
        return _first_at_or_below(self.time, self.survival)

    def median_ci(self) -> tuple[float | None, float | None]:
        """95% CI of the median: where the lower and upper survival bounds reach 0.5."""
        return (
            _first_at_or_below(self.time, self.ci_low),
            _first_at_or_below(self.time, self.ci_high),
        )

    def at(self, t: float) -> float:
        """Survival at time ``t``."""
        i = int(np.searchsorted(self.time, t, side="right")) - 1
        return float(self.survival[max(i, 0)])


def _first_at_or_below(time: FloatArray, values: FloatArray) -> float | None:
    hit = np.flatnonzero(values <= 0.5)
    return None if hit.size == 0 else float(time[hit[0]])


def kaplan_meier(durations: FloatArray, events: BoolArray) -> KaplanMeier:
    """Estimate survival from ``durations`` (>= 0) and ``events`` (False = censored).

    The estimate is lifelines' ``KaplanMeierFitter`` (Davidson-Pilon 2019, J Open Source
    Softw 4:1317); this keeps the event times, the bounds and the numbers at risk.
    """
    d = np.asarray(durations, dtype=float)
    e = np.asarray(events, dtype=bool)
    if d.ndim != 1 or d.shape != e.shape or d.size == 0:
        raise InvalidValueError(
            "durations/events", "two 1-D arrays of one non-zero length", d.shape
        )
    if np.any(~np.isfinite(d) | (d < 0)):
        raise InvalidValueError("durations", "finite and >= 0", d[~np.isfinite(d) | (d < 0)][0])
    from lifelines import KaplanMeierFitter  # pandas comes with it: load on first use

    fit = KaplanMeierFitter(alpha=0.05).fit(d, event_observed=e)
    table = fit.event_table
    times = table.index.to_numpy(dtype=float)
    keep = table["observed"].to_numpy() > 0
    surv = fit.survival_function_.iloc[:, 0].to_numpy(dtype=float)
    bounds = fit.confidence_interval_survival_function_.to_numpy(dtype=float)
    at_risk_all = table["at_risk"].to_numpy(dtype=float)
    t = times[keep]
    # lifelines' survival function also has a row at 0 (first) when no event is at 0.
    rows = np.searchsorted(fit.survival_function_.index.to_numpy(dtype=float), t)
    time = np.concatenate(([0.0], t))
    survival = np.concatenate(([1.0], surv[rows]))
    ci_low = np.concatenate(([1.0], np.nan_to_num(bounds[rows, 0], nan=0.0)))
    ci_high = np.concatenate(([1.0], np.nan_to_num(bounds[rows, 1], nan=1.0)))
    ci_low = np.where(survival > 0, ci_low, 0.0)
    ci_high = np.where(survival > 0, ci_high, 0.0)
    at_risk = np.concatenate(([float(d.size)], at_risk_all[keep]))
    if t.size and t[0] == 0.0:  # an event at 0: its row replaces the start
        time, survival, ci_low, ci_high = time[1:], survival[1:], ci_low[1:], ci_high[1:]
        at_risk = at_risk[1:]
    last = float(d.max())
    if last > time[-1]:  # carry the curve on to the last follow-up time
        time = np.append(time, last)
        survival = np.append(survival, survival[-1])
        ci_low = np.append(ci_low, ci_low[-1])
        ci_high = np.append(ci_high, ci_high[-1])
        at_risk = np.append(at_risk, float(np.sum(d >= last)))
    return KaplanMeier(
        time=time, survival=survival, ci_low=ci_low, ci_high=ci_high, at_risk=at_risk, n=int(d.size)
    )
