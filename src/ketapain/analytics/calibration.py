"""Model calibration: the pain each plan's forecast expected, beside the pain charted.

A plan stores, before treatment, the NRS its model expects after the last session and 4
and 12 weeks after the series (:mod:`ketapain.protocols.forecast`). For each of these
anchors and each course with both values this module reports the bias (observed minus
predicted, with its 95% interval), the mean absolute and root-mean-square errors, the
calibration slope and intercept of observed on predicted (slope 1 and intercept 0 when
calibrated; Van Calster 2019, BMC Med 17:230) and the means by fifth of the prediction,
for a calibration plot. :func:`trajectory` gives the cohort's weekly NRS beside the
forecast, and :func:`per_course` each course's own predicted and observed values.

>>> from ketapain.analytics.cohort import empty_cohort
>>> [a.anchor for a in calibration(empty_cohort())]
['end', 'week_4', 'week_12']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import polars as pl

from ketapain.analytics.cohort import FOLLOW_UP_WEEKS, week_column
from ketapain.analytics.proportions import Mean, mean_ci

__all__ = ["ANCHORS", "Anchor", "TrajectoryPoint", "calibration", "per_course", "trajectory"]

# Anchor: (observed column, predicted column, days after the series end).
ANCHORS: Final = {
    "end": ("nrs_end", "predicted_nrs_end", 0.0),
    "week_4": ("nrs_week_4", "predicted_nrs_week_4", 28.0),
    "week_12": ("nrs_week_12", "predicted_nrs_week_12", 84.0),
}
_BINS: Final = 5  # fifths of the prediction for the calibration plot


@dataclass(frozen=True, slots=True, kw_only=True)
class Anchor:
    """Predicted against observed NRS at one anchor."""

    anchor: str
    n: int
    predicted: Mean
    observed: Mean
    bias: Mean
    mae: float | None
    rmse: float | None
    slope: float | None
    intercept: float | None
    bins: tuple[tuple[float, float, int], ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "anchor": self.anchor,
            "n": self.n,
            "predicted": self.predicted.as_dict(),
            "observed": self.observed.as_dict(),
            "bias": self.bias.as_dict(),
            "mae": self.mae,
            "rmse": self.rmse,
            "slope": self.slope,
            "intercept": self.intercept,
            "bins": [{"predicted": p, "observed": o, "n": k} for p, o, k in self.bins],
        }


def _pairs(table: pl.DataFrame, obs: str, pred: str) -> tuple[np.ndarray, np.ndarray]:
    t = table.filter(pl.col(obs).is_not_null() & pl.col(pred).is_not_null())
    return (
        t.get_column(pred).to_numpy().astype(float),
        t.get_column(obs).to_numpy().astype(float),
    )


def _bins(p: np.ndarray, o: np.ndarray) -> tuple[tuple[float, float, int], ...]:
    if p.size < _BINS:
        return ()
    order = np.argsort(p, kind="stable")
    return tuple(
        (float(p[i].mean()), float(o[i].mean()), int(i.size)) for i in np.array_split(order, _BINS)
    )


def calibration(table: pl.DataFrame) -> list[Anchor]:
    """Calibration at each anchor (courses with both a prediction and an observation)."""
    out = []
    for name, (obs, pred, _) in ANCHORS.items():
        p, o = _pairs(table, obs, pred)
        r = o - p
        slope = intercept = None
        if p.size >= 3 and np.ptp(p) > 0:
            slope, intercept = (float(v) for v in np.polyfit(p, o, 1))
        out.append(
            Anchor(
                anchor=name,
                n=int(p.size),
                predicted=mean_ci(p),
                observed=mean_ci(o),
                bias=mean_ci(r),
                mae=float(np.abs(r).mean()) if r.size else None,
                rmse=float(np.sqrt((r**2).mean())) if r.size else None,
                slope=slope,
                intercept=intercept,
                bins=_bins(p, o),
            )
        )
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class TrajectoryPoint:
    """Cohort NRS at one time after the series end, and the forecast where it has one."""

    label: str
    day: float
    observed: Mean
    predicted: Mean | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "day": self.day,
            "observed": self.observed.as_dict(),
            "predicted": None if self.predicted is None else self.predicted.as_dict(),
        }


def trajectory(table: pl.DataFrame) -> list[TrajectoryPoint]:
    """Mean NRS at baseline (day 0 before), the series end and each follow-up week."""
    t = table.filter(pl.col("sessions_given") > 0)

    def col(name: str) -> np.ndarray:
        return t.get_column(name).drop_nulls().to_numpy().astype(float)

    points = [
        TrajectoryPoint(label="baseline", day=0.0, observed=mean_ci(col("baseline_nrs")),
                        predicted=None),
        TrajectoryPoint(label="end of series", day=0.0, observed=mean_ci(col("nrs_end")),
                        predicted=mean_ci(col("predicted_nrs_end"))),
    ]  # fmt: skip
    predicted_at = {4: "predicted_nrs_week_4", 12: "predicted_nrs_week_12"}
    for w in FOLLOW_UP_WEEKS:
        pred = predicted_at.get(w)
        points.append(
            TrajectoryPoint(
                label=f"week {w}",
                day=7.0 * w,
                observed=mean_ci(col(week_column(w))),
                predicted=None if pred is None else mean_ci(col(pred)),
            )
        )
    return points


def per_course(table: pl.DataFrame) -> pl.DataFrame:
    """One row per course and anchor: predicted, observed and their difference."""
    frames = [
        table.select(
            "course_key",
            pl.lit(name).alias("anchor"),
            pl.lit(day).alias("day_after_series"),
            pl.col(pred).alias("predicted_nrs"),
            pl.col(obs).alias("observed_nrs"),
            (pl.col(obs) - pl.col(pred)).alias("residual_nrs"),
        )
        for name, (obs, pred, day) in ANCHORS.items()
    ]
    return pl.concat(frames).filter(
        pl.col("predicted_nrs").is_not_null() | pl.col("observed_nrs").is_not_null()
    )
